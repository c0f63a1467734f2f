"""How long ``litforge check`` takes per check on small models (the issue's "seconds for small models").

python benchmarks/check_speed.py              # prints a table, writes benchmarks/results/check_speed.json
python benchmarks/check_speed.py --threads 1  # one intra-op thread (much faster on a busy machine)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch
from _common import RESULTS, save_results
from lightning.pytorch.demos.boring_classes import BoringDataModule, BoringModel

from litforge.data import DigitsDataModule
from litforge.models import Classifier
from litforge.testing import run_checks


def digits_classifier() -> tuple[Classifier, DigitsDataModule]:
    data = DigitsDataModule()  # the packaged default config's model and data
    model = Classifier(
        num_features=data.num_features,
        num_classes=data.num_classes,
        hidden_dim=128,
        lr=0.002,
        input_mean=data.feature_mean,
        input_std=data.feature_std,
    )
    return model, data


def main() -> None:
    parser = argparse.ArgumentParser(description="Time every litforge check on two small models.")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    threads = parser.parse_args().threads
    if threads:
        torch.set_num_threads(threads)
    subjects = {
        "Classifier (mlp) + DigitsDataModule": digits_classifier(),
        "BoringModel + BoringDataModule": (BoringModel(), BoringDataModule()),
    }
    report: dict[str, object] = {
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "load_average_1min": os.getloadavg()[0],
        },
        "subjects": {},
    }
    for name, (model, data) in subjects.items():
        start = time.perf_counter()
        results = run_checks(model, data)
        total = time.perf_counter() - start
        report["subjects"][name] = {
            "total_s": round(total, 3),
            "checks": {r.name: {"status": r.status, "seconds": round(r.seconds, 3)} for r in results},
        }
        print(f"\n{name}: {total:.1f} s in all")
        print(f"  {'check':<20} {'status':<6} {'seconds':>8}")
        for r in results:
            print(f"  {r.name:<20} {r.status:<6} {r.seconds:8.2f}")
    previous = RESULTS / "check_speed.json"
    runs = json.loads(previous.read_text()) if previous.is_file() else {}
    runs[f"torch_threads={torch.get_num_threads()}"] = report
    print(f"\nwritten: {save_results('check_speed', runs)}")


if __name__ == "__main__":
    main()
