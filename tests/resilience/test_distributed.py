"""DDP on CPU (gloo, 2 processes): preempted and resumed runs, and torchrun restarting a killed worker,
end bit for bit where an uninterrupted 2-process run ends."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from resilience_helpers import (
    assert_bitwise_equal,
    final_state,
    newest_step,
    run_until,
    subprocess_env,
)

from litforge.resilience import EXIT_PREEMPTED

pytestmark = pytest.mark.slow

DDP_FIT = [
    "--trainer.max_epochs", "2",
    "--trainer.limit_train_batches", "4",
    "--trainer.limit_val_batches", "1",
    "--trainer.deterministic", "true",
    "--trainer.accelerator", "cpu",
    "--trainer.devices", "2",
    "--trainer.strategy", "ddp",
    "--trainer.enable_model_summary", "false",
    "--trainer.enable_progress_bar", "false",
    "--trainer.num_sanity_val_steps", "0",
    "--trainer.logger", "false",
    "--trainer.callbacks", "[]",
    "--data.batch_size", "32",
    "--model.hidden_dim", "16",
    "--checkpoint_every_n_steps", "2",
]  # fmt: skip
FINAL_STEP = 8


def checkpoints_of(cwd: Path, run: str) -> Path:
    return cwd / "runs" / "classifier" / run / "checkpoints"


@pytest.fixture(scope="module")
def ddp_reference(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    cwd = tmp_path_factory.mktemp("ddp-reference")
    code, output = run_until(["fit", *DDP_FIT, "--run", "ref"], cwd, timeout=600)
    assert code == 0, output[-3000:]
    return final_state(checkpoints_of(cwd, "ref"), FINAL_STEP)


def test_ddp_preempted_run_resumes_bitwise(tmp_path: Path, ddp_reference: tuple) -> None:
    args = ["fit", *DDP_FIT, "--run", "r", "--resume", "auto"]
    ckpts = checkpoints_of(tmp_path, "r")
    code, output = run_until(
        args, tmp_path, kill_when=lambda: newest_step(ckpts) >= 2, signal_to_send=signal.SIGTERM, timeout=600
    )
    assert code == EXIT_PREEMPTED, output[-3000:]
    assert "preempted by SIGTERM" in output
    assert newest_step(ckpts) < 8

    code, output = run_until(args, tmp_path, timeout=600)
    assert code == 0, output[-3000:]
    assert "litforge: resuming from" in output
    final = final_state(ckpts, FINAL_STEP)
    assert_bitwise_equal(final[0], ddp_reference[0], "model")
    assert_bitwise_equal(final[1], ddp_reference[1], "optimizer")


def test_torchrun_restart_continues_from_the_last_checkpoint(tmp_path: Path, ddp_reference: tuple) -> None:
    record = tmp_path / "attempts.jsonl"
    crash = {"class_path": "crash_helpers.CrashOnce", "init_args": {"step": 5, "record": str(record)}}
    args = [arg if arg != "[]" else json.dumps([crash]) for arg in DDP_FIT]
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "--max-restarts", "1", "-m", "litforge", "--", "fit", *args, "--run", "r", "--resume", "auto",
    ]  # fmt: skip
    proc = subprocess.run(
        command, cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=600
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    attempts = [json.loads(line) for line in record.read_text().splitlines()]
    # rank 1 died at step 5 on the first attempt; the restart continued from the step-4 checkpoint
    assert [a["attempt"] for a in attempts] == [0, 1], attempts
    assert attempts[0]["start_step"] == 0 and attempts[1]["start_step"] == 4, attempts
    final = final_state(checkpoints_of(tmp_path, "r"), FINAL_STEP)
    assert_bitwise_equal(final[0], ddp_reference[0], "model")
    assert_bitwise_equal(final[1], ddp_reference[1], "optimizer")


def test_ddp_resume_of_a_users_shuffled_loader_and_dropout_is_bitwise(tmp_path: Path) -> None:
    """A user's DataLoader(shuffle=True) under DDP: each iterator's base seed came from the global generator,
    drawn once more after a mid-epoch resume than in the uninterrupted run, so the dropout masks after it
    differed (the packaged data's own loader never showed it)."""
    import shutil

    import usermods

    shutil.copy(usermods.__file__, tmp_path / "usermods.py")
    users = ["--model", "usermods.LitModel", "--data", "usermods.MyDataModule", "--model.hidden_dim", "16"]
    fit = ["fit", *users, *(a for a in DDP_FIT if a not in ("--model.hidden_dim", "16"))]
    fit += [
        "--trainer.limit_train_batches",
        "6",
        "--data.batch_size",
        "8",
    ]  # 6 steps an epoch: stops mid-epoch
    code, output = run_until([*fit, "--run", "ref"], tmp_path, timeout=600)
    assert code == 0, output[-3000:]
    checkpoints = tmp_path / "runs" / "litmodel"
    reference = final_state(checkpoints / "ref" / "checkpoints", 12)
    args = [*fit, "--run", "r", "--resume", "auto"]
    code, output = run_until(
        args,
        tmp_path,
        kill_when=lambda: newest_step(checkpoints / "r" / "checkpoints") >= 2,
        signal_to_send=signal.SIGTERM,
        timeout=600,
    )
    assert code == EXIT_PREEMPTED, output[-3000:]
    code, output = run_until(args, tmp_path, timeout=600)
    assert code == 0 and "litforge: resuming from" in output, output[-3000:]
    final = final_state(checkpoints / "r" / "checkpoints", 12)
    assert_bitwise_equal(final[0], reference[0], "model")
    assert_bitwise_equal(final[1], reference[1], "optimizer")


def test_ddp_spawn_trains(tmp_path: Path) -> None:
    """The spawned processes unpickle litforge's parser, whose YAML mode was registered in the parent only
    (KeyError: 'litforge_yaml')."""
    spawn = [a if a != "ddp" else "ddp_spawn" for a in DDP_FIT]
    code, output = run_until(
        ["fit", *spawn, "--trainer.max_epochs", "1", "--run", "s"], tmp_path, timeout=600
    )
    assert code == 0, output[-3000:]
    assert (checkpoints_of(tmp_path, "s") / "last.ckpt").is_file()
