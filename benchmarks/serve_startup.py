"""Start-up of ``litforge serve`` per artifact format: seconds until /health answers, and memory.

python benchmarks/serve_startup.py                    # trains + exports a digits model to onnx and pt2
python benchmarks/serve_startup.py --repeats 5 --backend litserve --export-dir runs/classifier/version_0/export

Each format is served in turn (--repeats times, interleaved) on a free 127.0.0.1 port with one worker;
reported: the median seconds from process start to the first healthy /health, and the resident memory
(RSS, MiB) of the server and all its child processes at that moment. An ONNX artifact needs only
onnxruntime, so serving it should not pay torch's import and memory; pt2 is the torch-runtime reference.
Writes benchmarks/results/serve_startup.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from serve_load import free_port, start_server

RESULTS = Path(__file__).resolve().parent / "results" / "serve_startup.json"
FORMATS = ("onnx", "pt2")


def tree_rss_mib(pid: int) -> float:
    """RSS of ``pid`` and its descendants, from /proc (Linux)."""
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return rss_kib / 1024 + sum(tree_rss_mib(int(child)) for child in children)


def start_once(export_dir: Path, fmt: str, backend: str, log: Path) -> tuple[float, float]:
    start = time.perf_counter()
    process = start_server(export_dir, free_port(), ["--format", fmt], log, backend, poll_s=0.05)
    seconds = time.perf_counter() - start
    try:
        return seconds, tree_rss_mib(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="starts per format, interleaved")
    parser.add_argument("--backend", choices=("fastapi", "litserve"), default="fastapi")
    parser.add_argument("--export-dir", type=Path, default=None, help="export folder with onnx and pt2")
    args = parser.parse_args()
    runs: dict[str, list[tuple[float, float]]] = {fmt: [] for fmt in FORMATS}
    with tempfile.TemporaryDirectory() as tmp:
        export_dir = args.export_dir
        if export_dir is None:
            from _digits_export import digits_export

            export_dir = digits_export(Path(tmp), None, formats=",".join(FORMATS))
        for _ in range(args.repeats):
            for fmt in FORMATS:
                runs[fmt].append(start_once(export_dir, fmt, args.backend, Path(tmp) / f"{fmt}.log"))
                print(f"  {fmt}: {runs[fmt][-1][0]:.2f} s, {runs[fmt][-1][1]:.0f} MiB", flush=True)
    rows = {
        fmt: {
            "startup_s": round(statistics.median(s for s, _ in starts), 2),
            "rss_mib": round(statistics.median(m for _, m in starts), 1),
            "all_startup_s": [round(s, 2) for s, _ in starts],
        }
        for fmt, starts in runs.items()
    }
    print(f"\nlitforge serve --backend {args.backend}, medians of {args.repeats} starts:")
    for fmt, row in rows.items():
        print(f"  {fmt:<6} {row['startup_s']:>6.2f} s to healthy  {row['rss_mib']:>7.1f} MiB")
    onnx, pt2 = rows["onnx"], rows["pt2"]
    print(
        f"  onnx vs pt2: {onnx['startup_s'] / pt2['startup_s']:.2f}x the time, {onnx['rss_mib'] / pt2['rss_mib']:.2f}x the memory"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps({"backend": args.backend, "repeats": args.repeats, "formats": rows}, indent=2) + "\n"
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
