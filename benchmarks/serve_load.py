"""Loopback load on ``litforge serve``: concurrency 1, 8, 32 with dynamic batching on and off.

python benchmarks/serve_load.py                      # trains + exports a digits model, then loads it
python benchmarks/serve_load.py --backend litserve --requests 1000 --export-dir runs/classifier/version_0/export

For each mode (batching on: --max-batch-size 32 --batch-timeout 0.002; off: --max-batch-size 1) a server
starts on a free 127.0.0.1 port; keep-alive connections (one per concurrent client) each send single-row
requests in a loop until --requests have been answered. Reports requests/s, p50/p99 latency and errors;
writes benchmarks/results/serve_load.json. Targets: batching >= 3x unbatched requests/s at concurrency 32,
p99 < 50 ms, zero errors over 20,000 requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "serve_load.json"
MODES = {
    "batching on": ["--max-batch-size", "32", "--batch-timeout", "0.002"],
    "batching off": ["--max-batch-size", "1"],
}
CONCURRENCY = (1, 8, 32)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    export_dir: Path, port: int, flags: list[str], log: Path, backend: str, poll_s: float = 0.5
) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("litforge")
    process = subprocess.Popen(
        [str(exe), "serve", str(export_dir), "--port", str(port), "--threads", "1", "--backend", backend, *flags],
        stdout=log.open("w"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                if response.status == 200:
                    return process
        except OSError:
            time.sleep(poll_s)
    process.kill()
    raise SystemExit("server did not become healthy in 300 s")


async def client(port: int, body: bytes, quota: list[int], latencies: list[float], errors: list[str]) -> None:
    """One keep-alive connection sending requests until the shared quota is used up."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    try:
        while quota[0] > 0:
            quota[0] -= 1
            start = time.perf_counter()
            writer.write(head + body)
            await writer.drain()
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            payload = await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if status != 200 or b"predictions" not in payload:
                errors.append(f"{status}: {payload[:200]!r}")
    except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as err:
        errors.append(f"{type(err).__name__}: {err}")
    finally:
        writer.close()


async def load(port: int, concurrency: int, requests: int, body: bytes) -> dict[str, float]:
    latencies: list[float] = []
    errors: list[str] = []
    quota = [requests]
    start = time.perf_counter()
    await asyncio.gather(*(client(port, body, quota, latencies, errors) for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    ms = np.array(latencies) * 1e3
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "requests_per_s": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(ms, 50)) if len(ms) else None,
        "p99_ms": float(np.percentile(ms, 99)) if len(ms) else None,
    }


def metrics(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return json.loads(response.read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--export-dir", type=Path, default=None, help="export folder (default: train + export)"
    )
    parser.add_argument("--requests", type=int, default=3400, help="requests per (mode, concurrency)")
    parser.add_argument(
        "--backend", default="fastapi", choices=("fastapi", "litserve"), help="litforge serve --backend"
    )
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    body = json.dumps({"inputs": rng.integers(0, 17, size=(1, 64)).tolist()}).encode()
    results: dict[str, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        export_dir = args.export_dir
        if export_dir is None:
            from _digits_export import digits_export

            export_dir = digits_export(Path(tmp), None, formats="onnx")
        for mode, flags in MODES.items():
            port = free_port()
            log = Path(tmp) / f"server-{mode.split()[1]}.log"
            process = start_server(export_dir, port, flags, log, args.backend)
            try:
                results[mode] = {}
                asyncio.run(load(port, 8, 200, body))  # warm-up
                for concurrency in CONCURRENCY:
                    before = metrics(port)
                    figures = asyncio.run(load(port, concurrency, args.requests, body))
                    after = metrics(port)
                    calls = after["model_calls"] - before["model_calls"]
                    figures["rows_per_model_call"] = (after["rows"] - before["rows"]) / max(calls, 1)
                    results[mode][str(concurrency)] = figures
                    print(
                        f"{mode:<13} c={concurrency:<3} {figures['requests_per_s']:>8.0f} req/s  "
                        f"p50 {figures['p50_ms']:>7.2f} ms  p99 {figures['p99_ms']:>7.2f} ms  "
                        f"errors {figures['errors']}  rows/call {figures['rows_per_model_call']:.1f}",
                        flush=True,
                    )
            finally:
                process.terminate()
                process.wait(60)
    on, off = results["batching on"]["32"], results["batching off"]["32"]
    total = sum(r["requests"] for mode in results.values() for r in mode.values())
    errors = sum(r["errors"] for mode in results.values() for r in mode.values())
    summary = {
        "speedup_c32": on["requests_per_s"] / off["requests_per_s"],
        "p99_ms_c32_batching": on["p99_ms"],
        "total_requests": total,
        "total_errors": errors,
        "cpus": os.cpu_count(),
        "requests_per_config": args.requests,
    }
    print(
        f"\nbatching speedup at c=32: {summary['speedup_c32']:.2f}x (target >= 3x); p99 at c=32 with batching "
        f"{on['p99_ms']:.1f} ms (target < 50 ms); errors {errors} / {total} requests (target 0 / 20,000)"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    saved = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    saved = {k: v for k, v in saved.items() if k in ("fastapi", "litserve")}  # one entry per backend
    saved[args.backend] = {"summary": summary, "results": results}
    RESULTS.write_text(json.dumps(saved, indent=2) + "\n")
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
