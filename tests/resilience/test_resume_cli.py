"""``litforge fit --resume``: clear errors for bad input, and a damaged newest checkpoint is skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from resilience_helpers import assert_bitwise_equal, final_state, run_until

TINY = [
    "--trainer.max_epochs", "1",
    "--trainer.limit_train_batches", "4",
    "--trainer.limit_val_batches", "1",
    "--trainer.accelerator", "cpu",
    "--trainer.enable_model_summary", "false",
    "--trainer.enable_progress_bar", "false",
    "--trainer.num_sanity_val_steps", "0",
    "--data.batch_size", "32",
    "--model.hidden_dim", "8",
    "--checkpoint_every_n_steps", "2",
]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--resume", "auto"], "--resume auto needs a fixed run name"),
        (["--resume", "missing.ckpt"], "no such file: missing.ckpt"),
        (["--run", "r", "--resume", "auto", "--ckpt_path", "x.ckpt"], "pass only one"),
    ],
    ids=["auto-without-run", "missing-file", "with-ckpt_path"],
)
def test_bad_resume_input_is_one_line_and_exit_2(cli, args: list[str], message: str) -> None:
    result = cli("fit", *TINY, *args)
    assert result.returncode == 2, result.output[-2000:]
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_truncated_newest_checkpoint_falls_back_to_the_previous_valid_one(tmp_path: Path) -> None:
    args = ["fit", *TINY, "--run", "r", "--resume", "auto"]
    code, output = run_until(args, tmp_path)
    assert code == 0, output[-3000:]
    run = tmp_path / "runs" / "classifier" / "r"
    assert (run / "finished.json").is_file()
    code, output = run_until(args, tmp_path)
    assert code == 0 and "already finished at step 4; nothing to do" in output

    (run / "finished.json").unlink()  # pretend the run died after writing its last checkpoint
    ckpts = sorted((run / "checkpoints").glob("*.ckpt"), key=lambda p: p.stat().st_mtime_ns)
    newest, previous = ckpts[-1], ckpts[-2]
    newest.write_bytes(newest.read_bytes()[:1000])
    code, output = run_until([*args, "--trainer.max_epochs", "2"], tmp_path)
    assert code == 0, output[-3000:]
    assert "skipping unreadable checkpoint" in output and newest.name in output
    assert (
        f"resuming from runs/classifier/r/checkpoints/{previous.name}, the newest checkpoint (run" in output
    )
    assert (run / "finished.json").is_file()
    # where the resumed fit started is not part of its recipe: its config.yaml starts a fresh fit
    assert "ckpt_path: null" in (run / "config.yaml").read_text()


def test_a_run_killed_after_early_stopping_decided_resumes_to_the_same_end(tmp_path: Path) -> None:
    # EarlyStopping (from the default config) stops at the 2nd validation: val_loss never improves by 10.
    stop_early = [
        "--trainer.callbacks.init_args.patience",
        "1",
        "--trainer.callbacks.init_args.min_delta",
        "10",
    ]
    args = ["fit", *TINY, "--trainer.max_epochs", "5", *stop_early, "--run", "r", "--resume", "auto"]
    code, output = run_until(args, tmp_path)
    assert code == 0, output[-3000:]
    run = tmp_path / "runs" / "classifier" / "r"
    assert json.loads((run / "finished.json").read_text())["global_step"] == 8  # 2 epochs of 4 steps
    before = final_state(run / "checkpoints", 8)

    (run / "finished.json").unlink()  # killed after its last checkpoint, before it was marked finished
    code, output = run_until(args, tmp_path)
    assert code == 0, output[-3000:]
    assert "resuming from" in output
    assert json.loads((run / "finished.json").read_text())["global_step"] == 8, "no epoch trained again"
    after = final_state(run / "checkpoints", 8)
    assert_bitwise_equal(after[0], before[0], "model")
    assert_bitwise_equal(after[1], before[1], "optimizer")
    # a run that stopped early is not trained on by a larger --trainer.max_epochs either
    longer = ["fit", *TINY, "--trainer.max_epochs", "9", *stop_early, "--run", "r", "--resume", "auto"]
    code, output = run_until(longer, tmp_path)
    assert code == 0 and "already finished at step 8" in output, output[-3000:]


def test_a_larger_max_epochs_trains_a_finished_run_on_and_the_same_command_again_does_nothing(
    cli, tmp_path: Path
) -> None:
    """A run that ended at its own max_epochs is trained on by --resume auto with a larger one (the user
    asked for more); the same command once that is done does nothing."""
    first = cli("fit", *TINY, "--run", "r", "--resume", "auto")
    assert first.returncode == 0, first.output
    finished = tmp_path / "runs" / "classifier" / "r" / "finished.json"
    assert json.loads(finished.read_text())["ended_by"] == "max_epochs"
    # the command retyped without --trainer.max_epochs: the packaged default's 30 is no request for more
    untyped = [*TINY[2:], "--run", "r", "--resume", "auto"]
    assert TINY[:2] == ["--trainer.max_epochs", "1"]
    retyped = cli("fit", *untyped)
    assert retyped.returncode == 0 and "already finished at step 4" in retyped.output, retyped.output
    assert "to train it further, pass a larger --trainer.max_epochs than its 1" in retyped.output
    longer = cli("fit", *TINY, "--trainer.max_epochs", "2", "--run", "r", "--resume", "auto")
    assert longer.returncode == 0, longer.output
    assert "had finished; --trainer.max_epochs 2 (it ended at its max_epochs 1) trains it on" in longer.stderr
    assert json.loads(finished.read_text())["global_step"] == 8  # 2 epochs of 4 steps
    again = cli("fit", *TINY, "--trainer.max_epochs", "2", "--run", "r", "--resume", "auto")
    assert again.returncode == 0 and "already finished at step 8" in again.output, again.output


def test_a_resume_that_fails_before_training_a_step_leaves_the_run_as_it_was(cli, tmp_path: Path) -> None:
    """A finished run trained on (a larger max_epochs) whose first step raises: its config.yaml and
    finished.json are put back and the on_exception.ckpt of that step goes, so the plain --resume auto
    still finds the finished run."""
    env = {"PYTHONPATH": str(Path(__file__).parents[1] / "tune")}  # flaky_models.FlakyClassifier
    flaky = ["--model", "flaky_models.FlakyClassifier", *TINY, "--run", "r", "--resume", "auto"]
    assert cli("fit", *flaky, env=env).returncode == 0
    run = tmp_path / "runs" / "flakyclassifier" / "r"
    before = {name: (run / name).read_bytes() for name in ("config.yaml", "finished.json", "hparams.yaml")}
    checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())

    failed = cli("fit", *flaky, "--trainer.max_epochs", "2", "--model.mode", "raise", env=env)
    assert failed.returncode == 1 and "boom: this trial raises on purpose" in failed.stderr, failed.output
    assert {name: (run / name).read_bytes() for name in before} == before
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == checkpoints  # no on_exception.ckpt
    again = cli("fit", "--run", "r", "--resume", "auto", env=env)
    assert again.returncode == 0 and "already finished at step 4" in again.output, again.output


def test_a_resume_with_other_data_settings_than_the_runs_says_which(cli, tmp_path: Path) -> None:
    """The command retyped with another --data flag than the run was started with: a note names it (the
    run goes on with it); the run's own config.yaml alone says nothing."""
    named = ["--model", "Classifier", "--data", "DigitsDataModule", *TINY]  # not the run's config.yaml
    assert cli("fit", *named, "--run", "r").returncode == 0
    (tmp_path / "runs" / "classifier" / "r" / "finished.json").unlink()  # as if it had died at its end
    changed = cli("fit", *named, "--data.batch_size", "16", "--run", "r", "--resume", "auto")
    assert changed.returncode == 0, changed.output
    assert (
        "this command's data differs from runs/classifier/r/config.yaml's: batch_size 32 -> 16"
        in changed.stderr
    )
    (tmp_path / "runs" / "classifier" / "r" / "finished.json").unlink()
    own = cli("fit", "--run", "r", "--resume", "auto")
    assert own.returncode == 0 and "differs" not in own.stderr, own.output


def test_the_command_that_made_a_run_resumes_it_without_a_second_appended_callback(
    cli, tmp_path: Path
) -> None:
    """``--trainer.callbacks+=ModelCheckpoint ...`` retyped on a resume: the run's config.yaml already has
    it, so it is not added a second time (Lightning refused two ModelCheckpoints of one metric, exit 2);
    with another argument it replaces the run's one, and a note says what changed."""
    own = ["--trainer.callbacks+=ModelCheckpoint", "--trainer.callbacks.monitor", "val_loss"]
    own += ["--trainer.callbacks.filename", "ck-{epoch}", "--trainer.callbacks.save_top_k"]
    line = [*TINY, "--run", "r", "--resume", "auto", *own]
    assert cli("fit", *line, "1").returncode == 0
    run = tmp_path / "runs" / "classifier" / "r"
    more = cli("fit", *line, "1", "--trainer.max_epochs", "2")
    assert more.returncode == 0, more.output
    assert "replaces" not in more.stderr
    callbacks = yaml.safe_load((run / "config.yaml").read_text())["trainer"]["callbacks"]
    assert [c["class_path"].rsplit(".", 1)[-1] for c in callbacks].count("ModelCheckpoint") == 1
    assert sorted(p.name for p in (run / "checkpoints").glob("ck-*.ckpt")) == ["ck-epoch=1.ckpt"]
    changed = cli("fit", *line, "2", "--trainer.max_epochs", "3")
    assert changed.returncode == 0, changed.output
    assert "--trainer.callbacks+=ModelCheckpoint replaces the run's ModelCheckpoint (save_top_k: 1 -> 2)" in (
        changed.stderr
    )
    assert len(list((run / "checkpoints").glob("ck-*.ckpt"))) == 2


def test_a_resume_retyped_without_monitor_keeps_best_ckpt_on_the_runs_metric(cli, tmp_path: Path) -> None:
    """best.ckpt's best-so-far is kept per metric: a resume retyped without --monitor switched to val_loss,
    and its first epoch replaced a better best.ckpt. Another --monitor typed is taken, and said."""
    import torch

    named = [
        *TINY,
        "--model",
        "Classifier",
        "--run",
        "m",
        "--resume",
        "auto",
    ]  # names its model: no config.yaml base
    assert cli("fit", *named, "--monitor", "val_acc").returncode == 0
    resumed = cli("fit", *named, "--trainer.max_epochs", "2")
    assert resumed.returncode == 0, resumed.output
    assert "best.ckpt keeps following val_acc, the run's --monitor" in resumed.stderr
    best = torch.load(tmp_path / "runs" / "classifier" / "m" / "checkpoints" / "best.ckpt", weights_only=True)
    (kept,) = [key for key in best["callbacks"] if key.startswith("RunCheckpoint")]
    assert kept.startswith("RunCheckpoint{'monitor': 'val_acc', 'mode': 'max',"), kept
    other = cli("fit", *named, "--trainer.max_epochs", "3", "--monitor", "val_loss")
    assert other.returncode == 0, other.output
    assert "best.ckpt follows val_loss from here on, not the run's val_acc" in other.stderr
