"""Replay pruning rules on the learning curves of the saved unpruned searches: seconds, no training.

python benchmarks/hpo_pruning.py --pruners none --seeds 0,1,2 --searches-only   # saves the curves first
python benchmarks/hpo_pruning_replay.py                    # litforge's default and the halving settings
python benchmarks/hpo_pruning_replay.py --rungs 1:3,3:3 --rungs 1:2,2:4   # rung lists: epoch:factor,...
python benchmarks/hpo_pruning_replay.py --search-rules   # pick rung lists on half the seeds, test on the rest

``hpo_pruning.py`` keeps every unpruned trial's val_acc after each epoch
(``results/hpo_pruning_curves.json``). This script runs those trials again, in the order they ran, under
asynchronous successive halving as Optuna's ``SuccessiveHalvingPruner`` decides it: at a rung (an epoch
count) a trial goes on only if its val_acc is among the best ``n // factor`` (at least the best one) of
the ``n`` trials that reached that rung so far. It prints the epochs trained against the unpruned search and
the change of the best accuracy of a completed trial, per rule (means over seeds), and what limits them:
how well early epochs predict a trial's final value, and how many trials a pruned search completes.

What a replay cannot show: in a real pruned search the sampler (TPE) learns from the pruned trials and
samples other trials after the first pruning. ``--orders N`` also replays N random orders of each search's
trials (no sampler learning at all); real searches lie near the replays (compare ``hpo_pruning.json``).
Writes ``benchmarks/results/hpo_pruning_replay.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
from pathlib import Path

from hpo_pruning import RESULTS, curves_file
from scipy.stats import spearmanr  # scikit-learn's dependency, so always there

Rungs = list[tuple[int, int]]  # (epochs trained at the rung, reduction factor there)
# Optuna's successive halving: rungs at first * factor**k epochs.
STARTUP_TRIALS = 10  # TPESampler's n_startup_trials: trials sampled at random before TPE models
HALVING = {"1:3 (earlier default)": (1, 3), "1:2": (1, 2), "2:3": (2, 3), "1:4": (1, 4), "2:4": (2, 4)}
OLD_DEFAULT = "successive halving 1:3 (earlier default)"
DEFAULT = "rungs 1:4,6:3 (the default)"


def halving_rungs(first: int, factor: int, max_epochs: int) -> Rungs:
    rungs, epochs = [], first
    while epochs <= max_epochs:
        rungs.append((epochs, factor))
        epochs *= factor
    return rungs


def parse_rungs(text: str) -> Rungs:
    """``1:3,3:3`` -> [(1, 3), (3, 3)] (an ``argparse`` type: a bad list exits 2 with usage)."""
    try:
        rungs = [tuple(int(n) for n in part.split(":")) for part in text.split(",")]
        if any(len(r) != 2 or r[0] < 1 or r[1] < 2 for r in rungs):
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected epoch:factor pairs, epoch >= 1 and factor >= 2, e.g. 1:3,3:3"
        ) from None
    return sorted(rungs)  # type: ignore[arg-type]


def replay(curves: list[list[float]], rungs: Rungs) -> tuple[int, list[int]]:
    """Epochs trained and the positions of the trials that completed."""
    seen: list[list[float]] = [[] for _ in rungs]
    epochs, completed = 0, []
    for position, curve in enumerate(curves):
        stop = None
        for (rung, factor), values in zip(rungs, seen, strict=True):
            if rung > len(curve):
                break
            value = curve[rung - 1]
            values.append(value)
            keep = max(len(values) // factor, 1)
            if value < sorted(values, reverse=True)[keep - 1]:
                stop = rung
                break
        epochs += stop or len(curve)
        if stop is None:
            completed.append(position)
    return epochs, completed


def score(searches: dict[str, list[list[float]]], rungs: Rungs, orders: int) -> dict:
    """Means over seeds (and ``orders`` shuffles of each) of the epochs ratio and accuracy change."""
    rng = random.Random(0)
    ratios, deltas, completes = [], [], []
    for curves in searches.values():
        full, best = sum(map(len, curves)), max(max(c) for c in curves)
        for order in [curves] + [rng.sample(curves, len(curves)) for _ in range(orders)]:
            epochs, completed = replay(order, rungs)
            ratios.append(epochs / full)
            deltas.append(max((max(order[i]) for i in completed), default=0.0) - best)
            completes.append(len(completed))
    return {
        "epochs_vs_unpruned": round(statistics.mean(ratios), 3),
        "acc_delta_points": round(statistics.mean(deltas), 2),
        "standard_error": round(statistics.stdev(deltas) / len(deltas) ** 0.5, 2),
        "completed_trials": round(statistics.mean(completes), 1),
    }


def halves(searches: dict[str, list[list[float]]]) -> tuple[dict, dict]:
    seeds = list(searches)
    middle = len(seeds) // 2
    return {s: searches[s] for s in seeds[:middle]}, {s: searches[s] for s in seeds[middle:]}


def score_halves(searches: dict[str, list[list[float]]], rungs: Rungs) -> tuple[dict, dict]:
    first, second = halves(searches)
    return score(first, rungs, 0), score(second, rungs, 0)


def search_rules(searches: dict[str, list[list[float]]], top: int = 10) -> list[dict]:
    """Every list of 1-3 rungs (epochs 1-12, factors 2-4), ranked by the accuracy change on the first half
    of the seeds among the rules within a quarter of the epochs there, and the best ``top`` scored on the
    other half: how much of a rule's lead is the noise of the seeds it was picked on."""
    picked_on, held_out = halves(searches)
    candidates = []
    for count in (1, 2, 3):
        for epochs in itertools.combinations((1, 2, 3, 4, 5, 6, 8, 10, 12), count):
            for factors in itertools.product((2, 3, 4), repeat=count):
                rungs = list(zip(epochs, factors, strict=True))
                figures = score(picked_on, rungs, 0)
                if figures["epochs_vs_unpruned"] <= 0.25:
                    candidates.append((figures["acc_delta_points"], rungs, figures))
    candidates.sort(key=lambda c: -c[0])
    return [
        {"rungs": rungs, "picked_on": figures, "held_out": score(held_out, rungs, 0)}
        for _, rungs, figures in candidates[:top]
    ]


def where_completes_come_from(searches: dict[str, list[list[float]]], rungs: Rungs, startup: int) -> dict:
    """Shares of the first ``startup`` trials (TPE's random start) among the replay's completed trials
    and among the unpruned searches' best trials."""
    completed, best = [], []
    for curves in searches.values():
        completed += replay(curves, rungs)[1]
        finals = [max(c) for c in curves]
        best.append(finals.index(max(finals)))
    return {
        "completed_from_startup": round(sum(i < startup for i in completed) / len(completed), 2),
        "best_from_startup": round(sum(i < startup for i in best) / len(best), 2),
    }


def early_vs_final(searches: dict[str, list[list[float]]], epochs: list[int]) -> dict:
    """Spearman correlation of val_acc after ``e`` epochs with a trial's final value (its best epoch), over
    all trials of a search and over its better half only; means over seeds."""
    rows = {}
    for e in epochs:
        every, better = [], []
        for curves in searches.values():
            final = [max(c) for c in curves]
            every.append(spearmanr([c[e - 1] for c in curves], final).statistic)
            median = statistics.median(final)
            top = [c for c in curves if max(c) >= median]
            better.append(spearmanr([c[e - 1] for c in top], [max(c) for c in top]).statistic)
        rows[e] = {
            "all_trials": round(statistics.mean(every), 2),
            "better_half": round(statistics.mean(better), 2),
        }
    return rows


def best_of_few(searches: dict[str, list[list[float]]], counts: list[int], draws: int = 200) -> dict:
    """The accuracy change if only ``m`` trials, drawn at random from the best third, had completed."""
    rng = random.Random(0)
    rows = {}
    for m in counts:
        gaps = []
        for curves in searches.values():
            final = sorted((max(c) for c in curves), reverse=True)
            third = final[: max(m, len(final) // 3)]
            gaps += [max(rng.sample(third, m)) - final[0] for _ in range(draws)]
        rows[m] = round(statistics.mean(gaps), 2)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rungs",
        action="append",
        default=[],
        type=parse_rungs,
        help="a rung list epoch:factor,... (repeatable)",
    )
    parser.add_argument("--orders", type=int, default=20, help="random trial orders replayed per search too")
    parser.add_argument(
        "--curves", type=Path, default=curves_file(RESULTS), help="learning curves saved by hpo_pruning.py"
    )
    parser.add_argument(
        "--search-rules", action="store_true", help="also pick rung lists on half the seeds, test on the rest"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS.with_name("hpo_pruning_replay.json"),
        help="the JSON file to write",
    )
    args = parser.parse_args()
    if not args.curves.exists():
        parser.error(f"{args.curves} not found: run benchmarks/hpo_pruning.py --pruners none first")
    searches = json.loads(args.curves.read_text())
    max_epochs = max(len(c) for curves in searches.values() for c in curves)
    rules = {f"successive halving {k}": halving_rungs(*v, max_epochs) for k, v in HALVING.items()}
    rules[DEFAULT] = [(1, 4), (6, 3)]  # litforge.tune.optuna_factories.DEFAULT_RUNGS
    rules |= {"rungs " + ",".join(f"{e}:{f}" for e, f in rungs): rungs for rungs in args.rungs}
    print(
        f"{len(searches)} unpruned searches (seeds {', '.join(searches)}), up to {max_epochs} epochs per trial"
    )
    print(f"{'rule':<42}{'rungs':<44}{'epochs':>8}{'delta':>8}{'se':>6}{'completed':>11}"
          f"   {args.orders} random orders: epochs, delta")  # fmt: skip
    table = {}
    for name, rungs in rules.items():
        ran, shuffled = score(searches, rungs, 0), score(searches, rungs, args.orders)
        table[name] = {"rungs": rungs, "as_run": ran, "random_orders": shuffled}
        print(
            f"{name:<42}{rungs!s:<44}{ran['epochs_vs_unpruned']:>8.3f}{ran['acc_delta_points']:>+8.2f}"
            f"{ran['standard_error']:>6.2f}{ran['completed_trials']:>11}"
            f"   {shuffled['epochs_vs_unpruned']:.3f}, {shuffled['acc_delta_points']:+.2f}"
        )
    correlation = early_vs_final(searches, [e for e in (1, 2, 3, 6, 9) if e <= max_epochs])
    print("\nSpearman correlation of val_acc with the trial's final value (its best epoch):")
    for e, row in correlation.items():
        print(
            f"  after {e} epoch{'s' if e > 1 else ''}: all trials {row['all_trials']:.2f}, the better half {row['better_half']:.2f}"
        )
    default = rules[OLD_DEFAULT]
    origin = where_completes_come_from(searches, default, STARTUP_TRIALS)
    print(
        f"\nSuccessive halving 1:3's completed trials that are among the first {STARTUP_TRIALS} (TPE's random start): "
        f"{origin['completed_from_startup']:.0%}; the unpruned search's best trial is among them in "
        f"{origin['best_from_startup']:.0%} of the searches"
    )
    few = best_of_few(searches, [2, 3, 4, 5, 6, 8])
    print("\nIf only m trials, drawn from the best third, completed:")
    print("  " + ", ".join(f"m={m}: {gap:+.2f}" for m, gap in few.items()))
    picked = search_rules(searches) if args.search_rules else []
    if picked:
        print("\nThe best rung lists within 0.25x the epochs on the first half of the seeds, on the second:")
        first, second = score_halves(searches, default)
        print(
            f"  {'successive halving 1:3':<28} {first['epochs_vs_unpruned']:.3f}x {first['acc_delta_points']:+.2f}"
            f"  ->  {second['epochs_vs_unpruned']:.3f}x {second['acc_delta_points']:+.2f}"
        )
        for row in picked:
            a, b = row["picked_on"], row["held_out"]
            print(
                f"  {row['rungs']!s:<28} {a['epochs_vs_unpruned']:.3f}x {a['acc_delta_points']:+.2f}"
                f"  ->  {b['epochs_vs_unpruned']:.3f}x {b['acc_delta_points']:+.2f}"
            )
    out = args.out
    payload = {"seeds": list(searches), "orders": args.orders, "rules": table, "correlation": correlation,
               "default_completes": origin, "best_of_few": few, "picked_rules": picked}  # fmt: skip
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
