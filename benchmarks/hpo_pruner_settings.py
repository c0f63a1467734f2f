"""Other pruner warm-ups and reduction factors against the unpruned searches saved by ``hpo_pruning.py``.

python benchmarks/hpo_pruning.py --seeds 0,1,2       # first: the unpruned searches to compare with
python benchmarks/hpo_pruner_settings.py successive-halving:1:4 hyperband:1:5   # pruner:first-rung:factor
python benchmarks/hpo_pruner_settings.py successive-halving:1:3:0 successive-halving:1:3:4   # ...:patience

Each setting runs the same ``litforge tune`` search as ``hpo_pruning.py`` (30 trials, up to 20 epochs,
TPE) once per seed saved there, and prints the epochs against the unpruned search of that seed and the
change of the best validation accuracy, then the means. Writes
``benchmarks/results/hpo_pruner_settings.json``. Epochs and accuracies do not depend on machine load.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hpo_pruning import CONFIG, REPO, RESULTS, SPACE, run_search


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "settings",
        nargs="+",
        help="pruner:first-rung:factor[:patience], e.g. successive-halving:1:4 (no patience: off, the default)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="searches run side by side")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONPATH", str(REPO / "src"))
    saved = json.loads(RESULTS.read_text())
    unpruned = {s["seed"]: s for s in saved["searches"] if s["search"] == "none"}
    trials, epochs = saved["settings"]["trials"], saved["settings"]["epochs"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "space.yaml").write_text(SPACE)
        (folder / "config.yaml").write_text(CONFIG)

        def measure(setting: str, seed: str) -> dict:
            pruner, grace, factor, *patience = setting.split(":")
            flags = [
                "--seed",
                seed,
                "--pruner",
                pruner,
                "--grace-period",
                grace,
                "--reduction-factor",
                factor,
            ]
            flags += ["--patience", *patience] if patience else []
            row = run_search(folder, f"{setting.replace(':', '-')}-{seed}", trials, epochs, *flags)
            base = unpruned[seed]
            row.update(
                setting=setting,
                seed=seed,
                epochs_vs_unpruned=round(row["epochs"] / base["epochs"], 3),
                acc_delta_points=round(row["best_val_acc"] - base["best_val_acc"], 2),
            )
            print(
                f"  {setting} seed {seed}: {row['epochs_vs_unpruned']}x, {row['acc_delta_points']:+}",
                flush=True,
            )
            return row

        # Searches side by side (--jobs) share the CPUs: epochs and accuracies do not change.
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            rows = list(
                pool.map(lambda run: measure(*run), [(s, seed) for s in args.settings for seed in unpruned])
            )
    for setting in args.settings:
        mine = [r for r in rows if r["setting"] == setting]
        ratio = sum(r["epochs_vs_unpruned"] for r in mine) / len(mine)
        delta = sum(r["acc_delta_points"] for r in mine) / len(mine)
        print(
            f"{setting}: mean over {len(mine)} seeds {ratio:.3f}x the epochs, {delta:+.2f} points", flush=True
        )
    out = RESULTS.with_name("hpo_pruner_settings.json")
    # Keep the saved runs of settings not measured this time.
    kept = json.loads(out.read_text())["runs"] if out.exists() else []
    rows = [r for r in kept if r["setting"] not in args.settings] + rows
    out.write_text(json.dumps({"trials": trials, "epochs": epochs, "runs": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
