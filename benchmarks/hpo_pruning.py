"""Pruning and parallel-worker benchmark for ``litforge tune`` on digits.

python benchmarks/hpo_pruning.py                          # the issue's scale: 30 trials, up to 20 epochs
python benchmarks/hpo_pruning.py --seeds 0,1,2            # the same for three sampler seeds, with means
python benchmarks/hpo_pruning.py --pruners none --seeds 3,4 --searches-only   # add searches to the saved
python benchmarks/hpo_pruning.py --workers-only           # only the 1 vs 2 workers runs
# the default checked on sampler seeds it was not chosen on:
python benchmarks/hpo_pruning.py --pruners none,successive-halving,rungs --seeds $(seq -s, 30 89) --searches-only --jobs 2 --results benchmarks/results/hpo_pruning_heldout.json
OMP_NUM_THREADS=1 python benchmarks/hpo_pruning.py --workers-only --results benchmarks/results/hpo_pruning_1thread.json

Every search runs the real ``litforge tune`` command (TPE, the same sampler seed, the same trial count)
without pruning, with litforge's default pruning (``default``: no ``--pruner`` flag) and with named
pruners at litforge's default warm-up: total epochs trained, wall time, best validation accuracy. Then
trials per minute with 1 and 2 workers, and the raw write throughput of SQLite vs Optuna's journal file
with 2 processes. Prints a table and writes ``benchmarks/results/hpo_pruning.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "hpo_pruning.json"

# The seed's space; the metric is validation accuracy so "best accuracy" is what the search maximizes.
SPACE = """metric: val_acc
direction: maximize
params:
  model.lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
  model.hidden_dim: {type: int, low: 32, high: 256, step: 32}
  model.dropout: {type: float, low: 0.0, high: 0.5}
  data.batch_size: {type: categorical, choices: [32, 64, 128]}
"""
# The workers runs search only values that do not change a trial's cost (hidden size and batch size stay
# at the config's), so both runs train trials of the same size: with the full space, the 1- and 2-worker
# runs sample different batch sizes (a batch of 32 is 4x the steps of 128) and trials per minute would
# compare the configurations TPE happened to pick, not the workers.
WORKER_SPACE = """metric: val_acc
direction: maximize
params:
  model.lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
  model.dropout: {type: float, low: 0.0, high: 0.5}
"""
# The packaged default without early stopping, so every unpruned trial runs all its epochs.
CONFIG = """seed_everything: 42
trainer: {accelerator: cpu, devices: 1, max_epochs: 20, log_every_n_steps: 10}
model: {class_path: litforge.models.Classifier}
data: {class_path: litforge.data.DigitsDataModule, init_args: {num_workers: 0}}
"""


def run_search(
    folder: Path,
    name: str,
    trials: int,
    epochs: int,
    *flags: str,
    space: str = "space.yaml",
    curves: bool = False,
) -> dict:
    """One ``litforge tune`` run and its figures; ``curves``: also every trial's val_acc per epoch."""
    out = folder / name
    command = [sys.executable, "-m", "litforge", "tune", "--config", str(folder / "config.yaml")]
    command += ["--space", str(folder / space), "--out", str(out), "--n-trials", str(trials)]
    command += ["--seed", "0", "--no-plots", "--keep-checkpoints", "0", "--trainer.max_epochs", str(epochs)]
    start = time.perf_counter()
    subprocess.run([*command, *flags], check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    with (out / "trials.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    values = [float(r["val_acc"]) for r in rows if r["state"] == "COMPLETE"]
    row = {
        "search": name,
        "flags": " ".join(flags),
        "trials": len(rows),
        "pruned": sum(r["state"] == "PRUNED" for r in rows),
        "epochs": sum(int(r["epochs"]) for r in rows),
        "wall_s": round(wall, 1),
        "best_val_acc": round(100 * max(values), 2) if values else None,
        "trials_per_min": round(60 * len(rows) / wall, 2),
        "steady_trials_per_min": steady_trials_per_min(out / "study.db"),
        "mean_trial_s": round(sum(float(r["duration_s"]) for r in rows) / len(rows), 2),
    }
    return {**row, "curves": learning_curves(out, rows)} if curves else row


def learning_curves(out: Path, rows: list[dict]) -> list[list[float]]:
    """Every trial's val_acc (%) after each of its epochs, in trial-number order."""
    curves = []
    for row in sorted(rows, key=lambda r: int(r["number"])):
        with (out / "trials" / row["number"] / "metrics.csv").open() as handle:
            epochs = [float(m["val_acc"]) for m in csv.DictReader(handle) if m["val_acc"]]
        curves.append([round(100 * acc, 4) for acc in epochs])
    return curves


def steady_trials_per_min(database: Path) -> float:
    """Trials per minute from the first trial's start to the last one's end: the workers' own rate,
    without the command's start-up (imports, ~5 s) and wind-down, which every run pays once."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{database}"
    (summary,) = optuna.get_all_study_summaries(storage)
    trials = optuna.load_study(study_name=summary.study_name, storage=storage).trials
    span = max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)
    return round(60 * len(trials) / span.total_seconds(), 2)


def _write_trials(url: str, count: int) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name="bench", storage=_storage(url))
    study.optimize(lambda t: t.suggest_float("x", 0, 1) ** 2, n_trials=count)


def _storage(url: str):
    from litforge.tune.optuna_factories import make_storage

    return make_storage(url, heartbeat_s=10)


def storage_throughput(folder: Path, per_worker: int = 100) -> list[dict]:
    """Trials/s of a trivial objective with 2 processes sharing each storage (the storage's own cost)."""
    import optuna

    rows = []
    for kind, url in (
        ("sqlite", f"sqlite:///{folder / 'bench.db'}"),
        ("journal", f"journal://{folder / 'bench.log'}"),
    ):
        optuna.create_study(study_name="bench", storage=_storage(url))
        start = time.perf_counter()
        workers = [multiprocessing.Process(target=_write_trials, args=(url, per_worker)) for _ in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        wall = time.perf_counter() - start
        done = len(optuna.load_study(study_name="bench", storage=_storage(url)).trials)
        rows.append(
            {"storage": kind, "trials": done, "wall_s": round(wall, 2), "trials_per_s": round(done / wall, 1)}
        )
    return rows


def workers_runs(folder: Path, trials: int, epochs: int, repeats: int) -> list[dict]:
    """``--workers 1`` and ``--workers 2`` on the same search, interleaved ``repeats`` times; per count the
    run with the median trials per minute (this shared VM's speed drifts by ~20% between runs)."""
    runs: dict[int, list[dict]] = {1: [], 2: []}
    for repeat in range(repeats):
        for k in (1, 2) if repeat % 2 == 0 else (2, 1):
            flags = ("--pruner", "none", "--workers", str(k))
            row = run_search(
                folder, f"workers-{k}-{repeat}", trials, epochs, *flags, space="worker_space.yaml"
            )
            runs[k].append({**row, "search": f"workers-{k}"})
            print(f"  {k} worker(s): {row['trials_per_min']} trials/min ({row['wall_s']} s)", flush=True)
    medians = []
    for rows in runs.values():
        rows.sort(key=lambda r: r["trials_per_min"])
        medians.append({**rows[len(rows) // 2], "all_trials_per_min": [r["trials_per_min"] for r in rows]})
    return medians


def search(folder: Path, args: argparse.Namespace, pruner: str, seed: str) -> dict:
    """One search; ``default`` passes no ``--pruner`` (litforge's default pruner and warm-up)."""
    flags = ["--seed", seed] + ([] if pruner == "default" else ["--pruner", pruner])
    row = run_search(
        folder, f"{pruner}-seed{seed}", args.trials, args.epochs, *flags, curves=pruner == "none"
    )
    return {
        **row,
        "search": pruner,
        "seed": seed,
        **({"default_is": default_pruner()} if pruner == "default" else {}),
    }


def default_pruner() -> str:
    """What ``default`` ran, for the record (the default changes as measurements come in)."""
    from litforge.tune.optuna_factories import DEFAULT_PRUNER, DEFAULT_RUNGS

    return f"{DEFAULT_PRUNER} {DEFAULT_RUNGS}" if DEFAULT_PRUNER == "rungs" else DEFAULT_PRUNER


def curves_file(results: Path) -> Path:
    """Where the unpruned searches' learning curves go: ``hpo_pruning_curves.json`` next to the results."""
    return results.with_name(f"{results.stem}_curves.json")


def save_curves(path: Path, searches: list[dict]) -> None:
    """Move the unpruned searches' learning curves (for ``hpo_pruning_replay.py``) into ``path``, keeping
    the saved curves of other seeds."""
    curves = json.loads(path.read_text()) if path.exists() else {}
    for row in searches:
        if "curves" in row:
            curves[row["seed"]] = row.pop("curves")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(sorted(curves.items(), key=lambda kv: int(kv[0])))) + "\n")


def mean_over_seeds(searches: list[dict]) -> list[dict]:
    """Per pruner: the mean of each figure over the seeds (rows with seed ``mean``)."""
    rows = []
    for pruner in dict.fromkeys(s["search"] for s in searches):
        group = [s for s in searches if s["search"] == pruner]
        row = {"search": pruner, "seed": "mean"}
        for key in ("pruned", "epochs", "epochs_vs_unpruned", "wall_s", "best_val_acc", "acc_delta_points"):
            values = [s[key] for s in group if s[key] is not None]
            row[key] = round(sum(values) / len(values), 3) if values else None
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--worker-trials", type=int, default=30, help="trials in the 1 vs 2 workers runs")
    parser.add_argument(
        "--worker-repeats", type=int, default=3, help="interleaved repeats of the workers runs"
    )
    parser.add_argument("--worker-epochs", type=int, default=20, help="epochs per trial in the workers runs")
    parser.add_argument(
        "--workers-only", action="store_true", help="rerun the 1 vs 2 workers runs; keep the saved searches"
    )
    parser.add_argument(
        "--searches-only",
        action="store_true",
        help="run the searches; keep the saved workers and storage runs",
    )
    parser.add_argument("--pruners", default="none,default,median,hyperband", help="'default': no --pruner")
    parser.add_argument("--seeds", default="0", help="sampler seeds; every search runs once per seed")
    parser.add_argument("--jobs", type=int, default=1, help="searches run side by side")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the JSON file to update")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONPATH", str(REPO / "src"))
    saved = json.loads(args.results.read_text()) if args.results.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "space.yaml").write_text(SPACE)
        (folder / "config.yaml").write_text(CONFIG)
        (folder / "worker_space.yaml").write_text(WORKER_SPACE)
        searches = saved.get("searches", [])
        storage = saved.get("storage")
        if not args.workers_only:
            if not args.searches_only:
                storage = storage_throughput(folder)
                print(storage, flush=True)
            # --jobs > 1 runs searches side by side: epochs and accuracy are unchanged, wall times then
            # share the CPUs (use it only when the machine is too slow for sequential runs).
            runs = [(pruner, seed) for seed in args.seeds.split(",") for pruner in args.pruners.split(",")]
            with ThreadPoolExecutor(max_workers=args.jobs) as pool:
                fresh = list(pool.map(lambda run: search(folder, args, *run), runs))
            save_curves(curves_file(args.results), fresh)
            print(fresh, flush=True)
            # A saved search of another pruner or seed stays; one run again is replaced.
            searches = [s for s in searches if (s["search"], s["seed"]) not in set(runs)] + fresh
        if args.searches_only:  # a results file of searches only (e.g. held-out seeds) has none
            workers = saved.get("workers", [])
        else:
            workers = workers_runs(folder, args.worker_trials, args.worker_epochs, args.worker_repeats)
    unpruned = {s["seed"]: s for s in searches if s["search"] == "none"}
    for s in searches:  # a seed without an unpruned search (yet) gets no ratios
        base = unpruned.get(s["seed"])
        s["epochs_vs_unpruned"] = round(s["epochs"] / base["epochs"], 3) if base else None
        s["acc_delta_points"] = (
            round((s["best_val_acc"] or 0) - (base["best_val_acc"] or 0), 2) if base else None
        )
    means = mean_over_seeds(searches)
    speedup = round(workers[1]["trials_per_min"] / workers[0]["trials_per_min"], 2) if workers else None
    steady = (
        round(workers[1]["steady_trials_per_min"] / workers[0]["steady_trials_per_min"], 2)
        if workers
        else None
    )
    seeds = ",".join(sorted({s["seed"] for s in searches}, key=int))
    worker_settings = (
        saved.get("worker_settings")
        if args.searches_only
        else {
            "trials": args.worker_trials,
            "epochs": args.worker_epochs,
            "space": "model.lr, model.dropout (trials of equal cost)",
            "repeats": args.worker_repeats,
        }
    )
    print(
        f"\nlitforge tune on digits: {args.trials} trials, up to {args.epochs} epochs, TPE seeds {seeds}, "
        f"cpus={os.cpu_count()}"
    )
    header = f"{'pruner':<12}{'seed':>5}{'pruned':>8}{'epochs':>9}{'x unpruned':>12}{'wall s':>9}"
    print(header + f"{'best val_acc':>14}{'delta':>8}")
    for s in searches + means:
        print(
            f"{s['search']:<12}{s['seed']:>5}{s['pruned']:>8}{s['epochs']:>9}{s['epochs_vs_unpruned']:>12}"
            f"{s['wall_s']:>9}{s['best_val_acc']:>14}{s['acc_delta_points']:>8}"
        )
    if workers:
        print(
            f"\nworkers ({worker_settings['trials']} trials x {worker_settings['epochs']} epochs): ", end=""
        )
        print(
            ", ".join(f"{w['search']}: {w['trials_per_min']} trials/min" for w in workers), f"-> {speedup}x"
        )
        print(
            "  from the first trial's start to the last one's end: "
            + ", ".join(f"{w['search']}: {w['steady_trials_per_min']} trials/min" for w in workers),
            f"-> {steady}x",
        )
    if storage:
        print("storage, 2 processes, trivial objective: ", end="")
        print(", ".join(f"{r['storage']}: {r['trials_per_s']} trials/s" for r in storage))
    args.results.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "settings": {
            "trials": args.trials,
            "epochs": args.epochs,
            "seeds": seeds,
            "cpus": os.cpu_count(),
            "sampler": "tpe",
        },
        "worker_settings": worker_settings,
        "searches": searches,
        "means_over_seeds": means,
        "workers": workers,
        "workers_speedup": speedup,
        "workers_steady_speedup": steady,
        "storage": storage,
    }
    args.results.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
