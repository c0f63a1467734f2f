"""``kill -9`` at random steps (and in the middle of a checkpoint write) and SIGTERM are non-events:
``litforge fit --run R --resume auto`` re-run after each ends bit for bit where an uninterrupted run ends."""

from __future__ import annotations

import csv
import random
import re
import signal
from pathlib import Path

import pytest
import torch
from resilience_helpers import (
    FINAL_STEP,
    TINY_FIT,
    assert_bitwise_equal,
    final_state,
    newest_step,
    run_until,
    step_files,
    subprocess_env,
)

from litforge.resilience import EXIT_INTERRUPTED, EXIT_PREEMPTED
from litforge.resilience.atomic_checkpoint_io import WRITE_DELAY_ENV

pytestmark = pytest.mark.slow


def checkpoints_of(cwd: Path, run: str) -> Path:
    return cwd / "runs" / "classifier" / run / "checkpoints"


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """The uninterrupted run's final model and optimizer state, its ``metrics.csv`` and TensorBoard steps."""
    cwd = tmp_path_factory.mktemp("reference")
    code, output = run_until(["fit", *TINY_FIT, "--run", "ref", "--trainer.log_every_n_steps", "1"], cwd)
    assert code == 0, output[-3000:]
    metrics = (checkpoints_of(cwd, "ref").parent / "metrics.csv").read_text()
    tensorboard = tensorboard_steps(checkpoints_of(cwd, "ref").parent)
    return (*final_state(checkpoints_of(cwd, "ref"), FINAL_STEP), metrics, tensorboard)


def tensorboard_steps(run: Path) -> list[int]:
    """The steps of ``train_loss_step`` as TensorBoard shows them (it applies ``purge_step``)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run))
    events.Reload()
    return [event.step for event in events.Scalars("train_loss_step")]


def test_kill_9_at_random_steps_and_during_a_checkpoint_write(tmp_path: Path, reference: tuple) -> None:
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    args = ["fit", *TINY_FIT, "--run", "r", "--resume", "auto", "--trainer.log_every_n_steps", "1"]
    ckpts = checkpoints_of(tmp_path, "r")
    # Kills land up to two checkpoints late (20 ms polling, ~12 ms steps): stop by step 10 so that a
    # periodic checkpoint (step 16 at the latest) is left to kill in the middle of its write.
    kill_steps = sorted(rng.sample(range(2, FINAL_STEP - 6, 2), 2))

    outputs = []
    for target in kill_steps:  # SIGKILL soon after a random step's checkpoint appears
        code, output = run_until(args, tmp_path, kill_when=lambda t=target: newest_step(ckpts) >= t)
        outputs.append(output)
        assert code == -signal.SIGKILL, f"seed {seed}: expected a kill near step {target}\n{output[-2000:]}"

    # SIGKILL while a checkpoint's temporary file is written but not yet renamed into place
    slow = subprocess_env(**{WRITE_DELAY_ENV: "1.5"})
    code, output = run_until(args, tmp_path, env=slow, kill_when=lambda: any(ckpts.glob(".step-*.tmp-*")))
    outputs.append(output)
    assert code == -signal.SIGKILL, f"seed {seed}: expected a kill during a write\n{output[-2000:]}"
    assert any(ckpts.glob(".step-*.tmp-*")), "the kill should leave a half-written temporary file"

    code, output = run_until(args, tmp_path)
    outputs.append(output)
    assert code == 0, f"seed {seed}\n{output[-3000:]}"
    assert "litforge: resuming from" in output
    assert "Checkpoint directory" not in output  # a resumed run's checkpoints/ is full by design: no warning
    assert not any(ckpts.glob(".*.tmp-*")), "leftover temporary files are cleaned up on resume"
    final = final_state(ckpts, FINAL_STEP)
    assert_bitwise_equal(final[0], reference[0], f"seed {seed} kills at {kill_steps}: model")
    assert_bitwise_equal(final[1], reference[1], f"seed {seed} kills at {kill_steps}: optimizer")
    assert len(step_files(ckpts)) <= 2, "only the newest two periodic checkpoints are kept"
    # metrics.csv keeps the rows from before each kill, and the redone steps are not doubled: every
    # step's training row once, as if never killed, and no row the uninterrupted run did not log. A kill
    # in the instant between checkpoint S and the logging of step S-1 (Lightning logs a step after its
    # checkpoint callbacks) loses that row, and an epoch-end row may be lost or doubled when the kill
    # falls between the last batch's checkpoint and the end of its epoch.
    rows = (ckpts.parent / "metrics.csv").read_text().splitlines()
    expected = reference[2].splitlines()
    assert rows[0] == expected[0], f"seed {seed}: header"
    resumed_at = {int(step) for step in re.findall(r"resuming from \S*step-(\d+)\.ckpt", "".join(outputs))}
    may_miss = {str(step - 1) for step in resumed_at}
    step_rows = [row for row in rows[1:] if _is_step_row(row, rows[0])]
    wanted = [row for row in expected[1:] if _is_step_row(row, rows[0])]
    assert [row for row in step_rows if row.split(",")[1] not in may_miss] == [
        row for row in wanted if row.split(",")[1] not in may_miss
    ], f"seed {seed}: resumed at {sorted(resumed_at)}"
    assert len(step_rows) == len(set(step_rows)), f"seed {seed}: a step logged twice"
    assert set(rows) <= set(expected), f"seed {seed}: rows the uninterrupted run did not log"
    # TensorBoard shows the same steps, once each (its event files are flushed at checkpoints, and the
    # resumed writer purges the steps logged after the checkpoint it resumed from).
    shown = tensorboard_steps(ckpts.parent)
    assert sorted(shown) == shown, f"seed {seed}: TensorBoard steps out of order {shown}"
    assert [s for s in shown if str(s) not in may_miss] == [
        s for s in reference[3] if str(s) not in may_miss
    ], f"seed {seed}: TensorBoard steps {shown}, resumed at {sorted(resumed_at)}"

    # a finished run is not trained again
    code, output = run_until(args, tmp_path)
    assert code == 0 and "already finished" in output
    assert_bitwise_equal(final_state(ckpts, FINAL_STEP)[0], final[0], "untouched")


def _is_step_row(row: str, header: str) -> bool:
    """A per-step training row of ``metrics.csv`` (it has ``train_loss_step``)."""
    return bool(row.split(",")[header.split(",").index("train_loss_step")])


@pytest.mark.parametrize(
    ("signum", "exit_code", "said"),
    [
        (signal.SIGTERM, EXIT_PREEMPTED, "litforge: stopped: preempted by SIGTERM: saved"),
        (signal.SIGINT, EXIT_INTERRUPTED, "litforge: stopped: interrupted by Ctrl+C: saved"),
    ],
)
def test_sigterm_or_ctrl_c_checkpoints_at_a_step_boundary_and_exits_75_or_130(
    tmp_path: Path, reference: tuple, signum: int, exit_code: int, said: str
) -> None:
    args = ["fit", *TINY_FIT, "--run", "r", "--resume", "auto"]
    ckpts = checkpoints_of(tmp_path, "r")
    code, output = run_until(args, tmp_path, kill_when=lambda: newest_step(ckpts) >= 4, signal_to_send=signum)
    assert code == exit_code, output[-3000:]
    assert said in output and "--resume auto" in output
    stopped_at = newest_step(ckpts)
    assert 4 <= stopped_at < FINAL_STEP

    code, output = run_until(args, tmp_path)
    assert code == 0, output[-3000:]
    assert f"resuming from runs/classifier/r/checkpoints/step-{stopped_at:08d}.ckpt" in output
    final = final_state(ckpts, FINAL_STEP)
    assert_bitwise_equal(final[0], reference[0], "model")
    assert_bitwise_equal(final[1], reference[1], "optimizer")


def test_kill_9_during_a_background_write_keeps_the_previous_checkpoint(
    tmp_path: Path, reference: tuple
) -> None:
    """Periodic checkpoints are written while training goes on; a kill in the middle of such a write
    leaves the previous checkpoint loadable, and the resumed run ends bit for bit where it should."""
    args = ["fit", *TINY_FIT, "--run", "r", "--resume", "auto", "--trainer.log_every_n_steps", "1"]
    ckpts = checkpoints_of(tmp_path, "r")

    def written_while_training_goes_on() -> bool:
        """A step-N file is still being written, an older one is complete, and steps after N ran."""
        writing = [int(re.search(r"step-(\d+)", p.name).group(1)) for p in ckpts.glob(".step-*.tmp-*")]
        return bool(writing) and 0 <= newest_step(ckpts) < max(writing) < logged_step(ckpts.parent)

    slow = subprocess_env(**{WRITE_DELAY_ENV: "2"})
    code, output = run_until(args, tmp_path, env=slow, kill_when=written_while_training_goes_on)
    assert code == -signal.SIGKILL, f"expected a kill during a background write\n{output[-2000:]}"
    (half_written,) = ckpts.glob(".step-*.tmp-*")
    previous = newest_step(ckpts)
    assert previous < int(re.search(r"step-(\d+)", half_written.name).group(1))
    assert torch.load(ckpts / f"step-{previous:08d}.ckpt", weights_only=True)["global_step"] == previous

    code, output = run_until(args, tmp_path)
    assert code == 0, output[-3000:]
    assert f"resuming from runs/classifier/r/checkpoints/step-{previous:08d}.ckpt" in output
    final = final_state(ckpts, FINAL_STEP)
    assert_bitwise_equal(final[0], reference[0], "model")
    assert_bitwise_equal(final[1], reference[1], "optimizer")


def logged_step(run: Path) -> int:
    """The newest step in ``metrics.csv`` (-1 before the first row): rows are written as they are logged."""
    try:
        rows = list(csv.DictReader((run / "metrics.csv").open()))
    except FileNotFoundError:
        return -1
    return max((int(row["step"]) for row in rows if row.get("step")), default=-1)
