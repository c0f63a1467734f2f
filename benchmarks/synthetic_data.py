"""How long ``SyntheticDataModule`` takes to generate its data, against the float64 draw it replaced.

python benchmarks/synthetic_data.py                 # 60,000 x 784, 10 classes, 5 interleaved repeats
python benchmarks/synthetic_data.py --repeats 9

Each repeat times both in a fresh process (the cost is mostly the first touch of fresh memory, which a
warm process would hide): ``litforge`` is ``SyntheticDataModule.load_arrays`` (a float32 draw, shifted in
place block by block); ``float64`` is the previous code (a float64 draw, a cast to float32 and a
full-size copy of the centroids added). Prints the medians and their ratio; writes
``benchmarks/results/synthetic_data.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from _common import print_table, run_variant, save_results

SHAPE = {"num_samples": 60_000, "num_features": 784, "num_classes": 10, "noise": 20.0}


def generate(name: str) -> float:
    """Seconds to build the arrays with the ``name`` code path, in this (fresh) process."""
    import numpy as np

    from litforge.data import SyntheticDataModule

    start = time.perf_counter()
    if name == "litforge":
        SyntheticDataModule(**SHAPE).load_arrays()
    else:
        rng = np.random.default_rng(42)
        centroids = rng.normal(0.0, 1.0, size=(SHAPE["num_classes"], SHAPE["num_features"])).astype(
            np.float32
        )
        labels = np.arange(SHAPE["num_samples"], dtype=np.int64) % SHAPE["num_classes"]
        rng.shuffle(labels)
        noise = rng.normal(0.0, SHAPE["noise"], size=(SHAPE["num_samples"], SHAPE["num_features"]))
        _ = centroids[labels] + noise.astype(np.float32)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps({"seconds": generate(json.loads(args.worker)["name"])}))
        return
    times: dict[str, list[float]] = {"float64": [], "litforge": []}
    for repeat in range(args.repeats):
        for name in times if repeat % 2 == 0 else reversed(list(times)):
            times[name].append(round(run_variant(__file__, {"name": name})["seconds"], 3))
            print(f"  repeat {repeat + 1}/{args.repeats} {name}: {times[name][-1]} s", flush=True)
    rows = [{"variant": name, "median s": statistics.median(t), "all s": t} for name, t in times.items()]
    print_table(rows, ["variant", "median s", "all s"])
    ratio = statistics.median(times["litforge"]) / statistics.median(times["float64"])
    print(f"litforge / float64: {ratio:.2f}x")
    save_results("synthetic_data", {"shape": SHAPE, "rows": rows, "litforge_vs_float64": round(ratio, 3)})


if __name__ == "__main__":
    main()
