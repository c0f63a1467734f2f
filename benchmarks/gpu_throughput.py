"""Steady-state training speed of litforge's ``SequenceTransformer`` trained four ways: a hand-written loop,
plain Lightning, and ``litforge fit`` (the real command), each variant in a fresh process.

python benchmarks/gpu_throughput.py            # GPT-2-small shape, bf16-mixed, eager and compiled (a GPU)
python benchmarks/gpu_throughput.py --d-model 64 --n-layers 2 --n-heads 4 --seq-len 32 --batch 8 \
    --steps 20 --warmup 3 --precision 32-true --compile off          # a one-minute CPU smoke run

Every variant trains the same module (same shape, ``configure_optimizers()``'s AdamW, the precision's
autocast) on the same ``SequenceTaskDataModule`` batches; compiled variants compile the blocks as
``configure_model()`` does. ``ms_per_step`` is measured over ``--steps`` batches after ``--warmup`` batches,
with ``torch.cuda.synchronize()`` at both ends (hand-written loop: in the loop; Lightning and litforge:
``_step_window.StepWindow``, a callback). ``wall_s`` is the whole process, start-up and compilation
included. ``x_loop`` is the hand-written loop's ms/step over the variant's, in the same compile mode
(1.0 = as fast as the loop). ``mfu``: the FLOPs per step litforge counted (its ``perf.json``) over
ms/step and the GPU's dense 16-bit peak (GPUs in litforge's table only); ``recompiles``: what Dynamo
recompiled in litforge's runs. The checkpoint variant saves every ``--checkpoint-every`` steps in a
window of ``--checkpoint-steps`` (long enough for each background write to end before the next save,
as at the default interval); its extra time per save and the share it would cost at the default
interval (200 steps) are reported beside the blocked and background seconds per save from its
``perf.json``. Writes
benchmarks/results/gpu_throughput.json (or ``--out``) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import environment, print_table, run_variant, save_results

HERE = Path(__file__).resolve().parent
DEFAULT_CHECKPOINT_INTERVAL = 200  # litforge's --checkpoint_every_n_steps default


# -- the variants ------------------------------------------------------------------------------------
def variants(compile_modes: list[bool], checkpoint_every: int, checkpoint_steps: int) -> list[dict[str, Any]]:
    """The variants to run, in order: each framework in each compile mode, the first mode's group followed
    by litforge's extras in that mode (periodic checkpoints, activation checkpointing), so that a run cut
    short keeps the figures that matter most."""
    rows: list[dict[str, Any]] = []
    for compiled in compile_modes:
        tag = "compiled" if compiled else "eager"
        rows += [
            {"name": f"loop {tag}", "runner": "loop", "compile": compiled},
            {"name": f"litforge {tag}", "runner": "litforge", "compile": compiled, "flags": []},
            {"name": f"lightning {tag}, no summary", "runner": "lightning", "compile": compiled, "summary": False},
            {"name": f"lightning {tag}", "runner": "lightning", "compile": compiled, "summary": True},
        ]  # fmt: skip
        if compiled is compile_modes[0]:
            rows += _extras(compiled, tag, checkpoint_every, checkpoint_steps)
    return rows


def _extras(compiled: bool, tag: str, checkpoint_every: int, checkpoint_steps: int) -> list[dict[str, Any]]:
    return [
        {
            "name": f"litforge {tag}, checkpoint every {checkpoint_every}",
            "runner": "litforge",
            "compile": compiled,
            "flags": ["--checkpoint_every_n_steps", str(checkpoint_every)],
            "checkpoint_every": checkpoint_every,
            "steps": checkpoint_steps,  # a longer window: each background write ends before the next save
        },
        {
            "name": f"litforge {tag}, activation checkpointing",
            "runner": "litforge",
            "compile": compiled,
            "flags": ["--model.activation_checkpointing", "true"],
        },
    ]


# -- what each worker process builds -----------------------------------------------------------------
def _model_and_data(shape: dict[str, Any], compiled: bool) -> tuple[Any, Any]:
    import torch

    from litforge.data import SequenceTaskDataModule
    from litforge.models import SequenceTransformer

    torch.manual_seed(0)
    data = SequenceTaskDataModule(**_data_args(shape))
    model = SequenceTransformer(num_classes=shape["vocab"], **_model_args(shape), compile=compiled)
    return model, data


def _data_args(shape: dict[str, Any]) -> dict[str, Any]:
    # One batch more than the run needs, so that no epoch end (validation, epoch-end saves) falls in it.
    batches = shape["warmup"] + shape["steps"] + 1
    return {
        "task": "reverse",
        "vocab_size": shape["vocab"],
        "seq_len": shape["seq_len"],
        "num_train": shape["batch"] * batches,
        "num_val": shape["batch"] * 2,
        "num_test": shape["batch"],
        "batch_size": shape["batch"],
    }


def _model_args(shape: dict[str, Any]) -> dict[str, Any]:
    return {
        "max_len": shape["seq_len"],
        "d_model": shape["d_model"],
        "n_heads": shape["n_heads"],
        "n_layers": shape["n_layers"],
        "dropout": 0.0,
    }


def loop_worker(config: dict[str, Any]) -> dict[str, Any]:
    """The hand-written loop: forward under the precision's autocast, the module's loss, backward, step."""
    import torch

    model, data = _model_and_data(config, config["compile"])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.configure_model()  # compiles the blocks in place, as the Trainer's call does
    model.to(device)
    optimizer = model.configure_optimizers()
    autocast, scaler = _precision(config["precision"], device)
    warmup, steps = config["warmup"], config["steps"]
    data.setup("fit")
    start = 0.0
    for index, (tokens, targets) in enumerate(data.train_dataloader()):
        if index == warmup:
            _synchronize(device)
            start = time.perf_counter()
        tokens, targets = tokens.to(device), targets.to(device)
        with autocast():
            loss = model.loss(model(tokens), targets)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        if index + 1 == warmup + steps:
            break
    _synchronize(device)
    return {
        "ms_per_step": (time.perf_counter() - start) / steps * 1e3,
        "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None,
    }


def lightning_worker(config: dict[str, Any]) -> dict[str, Any]:
    """Plain Lightning: a default ``Trainer`` (progress bar, logger, model summary unless turned off)."""
    import lightning as L
    from _step_window import StepWindow

    model, data = _model_and_data(config, config["compile"])
    with tempfile.TemporaryDirectory(prefix="gpu-throughput-") as tmp:
        window = Path(tmp) / "window.json"
        trainer = L.Trainer(
            devices=1,
            precision=config["precision"],
            max_steps=config["warmup"] + config["steps"],
            enable_model_summary=config["summary"],
            default_root_dir=tmp,
            callbacks=[StepWindow(config["warmup"], config["steps"], str(window))],
        )
        trainer.fit(model, datamodule=data)
        return json.loads(window.read_text())


def _precision(precision: str, device: Any) -> tuple[Any, Any]:
    """The autocast context and gradient scaler Lightning's precision plugin would use."""
    import torch

    dtypes = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
    if precision not in (*dtypes, "32-true"):
        raise SystemExit(f"--precision {precision}: choose bf16-mixed, 16-mixed or 32-true")
    enabled = precision in dtypes
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "16-mixed")

    def autocast() -> Any:
        if not enabled:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=dtypes[precision])

    return autocast, scaler


def _synchronize(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- litforge fit, through the real command ----------------------------------------------------------
def run_litforge(variant: dict[str, Any], shape: dict[str, Any]) -> dict[str, Any]:
    """``python -m litforge fit --config <generated>`` in a fresh process; its window and perf.json."""
    with tempfile.TemporaryDirectory(prefix="gpu-throughput-litforge-") as tmp:
        root = Path(tmp)
        config = root / "config.yaml"
        config.write_text(json.dumps(_litforge_config(variant, shape, root)))  # JSON is YAML
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE.parent / "src"), str(HERE), os.environ.get("PYTHONPATH")])),
        }  # fmt: skip
        command = [sys.executable, "-m", "litforge", "fit", "--config", str(config), "--run", "bench"]
        proc = subprocess.run(
            [*command, *variant["flags"]], env=env, capture_output=True, text=True, cwd=root
        )
        if proc.returncode != 0:
            raise SystemExit(
                f"variant {variant['name']} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
            )
        perf = json.loads(next(root.glob("*/bench/perf.json")).read_text())
        return {**json.loads((root / "window.json").read_text()), "perf": perf}


def _litforge_config(variant: dict[str, Any], shape: dict[str, Any], root: Path) -> dict[str, Any]:
    window = {"warmup": shape["warmup"], "steps": shape["steps"], "out": str(root / "window.json")}
    return {
        "seed_everything": 42,
        "trainer": {
            "devices": 1,
            "precision": shape["precision"],
            "max_steps": shape["warmup"] + shape["steps"],
            "default_root_dir": str(root),
            "callbacks": [{"class_path": "_step_window.StepWindow", "init_args": window}],
        },
        "model": {
            "class_path": "litforge.models.SequenceTransformer",
            "init_args": {**_model_args(shape), "compile": variant["compile"]},
        },
        "data": {"class_path": "litforge.data.SequenceTaskDataModule", "init_args": _data_args(shape)},
    }


# -- the driver --------------------------------------------------------------------------------------
def run_one(variant: dict[str, Any], shape: dict[str, Any]) -> dict[str, Any]:
    shape = {**shape, "steps": variant.get("steps", shape["steps"])}
    start = time.perf_counter()
    if variant["runner"] == "litforge":
        result = run_litforge(variant, shape)
    else:
        result = run_variant(__file__, {**variant, **shape, "worker_of": variant["runner"]})
    row = {"name": variant["name"], "compile": variant["compile"], **result}
    if "checkpoint_every" in variant:
        row["checkpoint_every"] = variant["checkpoint_every"]
    row["wall_s"] = time.perf_counter() - start
    print(f"  {row['name']}: {row['ms_per_step']:.2f} ms/step, {row['wall_s']:.0f} s", flush=True)
    return row


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """``x_loop``: the hand-written loop's ms/step (same compile mode) over the variant's."""
    measured = [row for row in rows if "ms_per_step" in row]
    loops = {row["compile"]: row["ms_per_step"] for row in measured if row["name"].startswith("loop")}
    for row in measured:
        if row["compile"] in loops:
            row["x_loop"] = loops[row["compile"]] / row["ms_per_step"]


def add_utilisation(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """MFU of every variant: the FLOPs per step litforge counted (its perf.json, from a run without
    activation checkpointing, whose recomputation is not model work) over ms/step and the GPU's peak."""
    counted = [
        row["perf"]
        for row in rows
        if "perf" in row and row["perf"].get("flops_per_batch") and "activation" not in row["name"]
    ]
    if not counted or counted[0].get("peak_flops") is None:
        return None
    flops, peak = counted[0]["flops_per_batch"], counted[0]["peak_flops"]
    for row in (row for row in rows if "ms_per_step" in row):
        row["mfu"] = flops / (row["ms_per_step"] / 1e3) / peak
    return {"flops_per_step": flops, "peak_flops": peak}


def checkpoint_cost(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Extra time per periodic save (the checkpoint variant against the same litforge run without saves
    in the window) and the share of training time it would cost at the default interval."""
    saving = next((row for row in rows if "checkpoint_every" in row), None)
    base_name = f"litforge {'compiled' if saving and saving['compile'] else 'eager'}"
    base = next((row for row in rows if row["name"] == base_name and "ms_per_step" in row), None)
    if saving is None or base is None or not saving.get("saves_in_window"):
        return None
    per_save_s = (
        (saving["ms_per_step"] - base["ms_per_step"]) * saving["steps"] / saving["saves_in_window"] / 1e3
    )
    perf = saving["perf"]
    return {
        "variant": saving["name"],
        "saves_in_window": saving["saves_in_window"],
        "extra_s_per_save": per_save_s,
        "share_at_default_interval": per_save_s / (DEFAULT_CHECKPOINT_INTERVAL * base["ms_per_step"] / 1e3),
        "blocked_s_per_save": perf.get("checkpoint_blocked_s_per_save"),
        "background_s_per_save": perf.get("checkpoint_background_s_per_save"),
        "checkpoints_saved": perf.get("checkpoints_saved"),
    }


def summarise(env: dict[str, Any], shape: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON record: the rows with their ratios, MFU and recompiles, and the checkpoint cost."""
    add_ratios(rows)
    for row in rows:  # what torch.compile built in litforge's runs
        row["recompiles"] = row.get("perf", {}).get("recompiles")
    return {
        "environment": env,
        "shape": shape,
        "rows": rows,
        "utilisation": add_utilisation(rows),
        "checkpointing": checkpoint_cost(rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d-model", type=int, default=768)
    parser.add_argument("--n-layers", type=int, default=12)
    parser.add_argument("--n-heads", type=int, default=12)
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--vocab", type=int, default=16)
    parser.add_argument("--steps", type=int, default=40, help="timed steps")
    parser.add_argument("--warmup", type=int, default=8, help="steps before the timed window")
    parser.add_argument("--precision", default="bf16-mixed", help="bf16-mixed, 16-mixed or 32-true")
    parser.add_argument("--compile", choices=("both", "on", "off"), default="both")
    parser.add_argument("--checkpoint-every", type=int, default=50, help="the checkpoint variant's interval")
    parser.add_argument(
        "--checkpoint-steps", type=int, default=150, help="the checkpoint variant's timed steps"
    )
    parser.add_argument("--only", default="", help="comma-separated variant names to run (default: all)")
    parser.add_argument(
        "--out", type=Path, default=None, help="default: benchmarks/results/gpu_throughput.json"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        config = json.loads(args.worker)
        worker = loop_worker if config["worker_of"] == "loop" else lightning_worker
        print(json.dumps(worker(config)))
        return

    shape = {
        key: getattr(args, key)
        for key in ("d_model", "n_layers", "n_heads", "seq_len", "batch", "vocab", "steps", "warmup", "precision")
    }  # fmt: skip
    modes = {"both": [True, False], "on": [True], "off": [False]}[args.compile]
    chosen = variants(modes, args.checkpoint_every, args.checkpoint_steps)
    if args.only:
        wanted = {name.strip() for name in args.only.split(",")}
        chosen = [v for v in chosen if v["name"] in wanted]
    env = environment()
    print(f"gpu_throughput: {env['device']}, torch {env['torch']}; {shape}", flush=True)
    if not chosen:
        raise SystemExit(f"no variant named {args.only!r}")
    rows: list[dict[str, Any]] = []
    for variant in chosen:  # saved after each variant: a run cut short keeps what it measured
        try:
            rows.append(run_one(variant, shape))
        except SystemExit as failure:  # one variant failing does not lose the others
            print(failure, file=sys.stderr, flush=True)
            rows.append(
                {"name": variant["name"], "compile": variant["compile"], "error": str(failure)[-2000:]}
            )
        record = summarise(env, shape, rows)
        path = save_results("gpu_throughput", record, path=args.out)
    print()
    print_table(rows, ["name", "ms_per_step", "x_loop", "mfu", "peak_gpu_mib", "recompiles", "wall_s"])
    if record["checkpointing"]:
        print("\nperiodic checkpoints:", json.dumps(record["checkpointing"], indent=1))
    print(f"\nsaved {path}")
    if any("error" in row for row in rows):
        raise SystemExit("some variants failed (their rows hold the error)")


if __name__ == "__main__":
    main()
