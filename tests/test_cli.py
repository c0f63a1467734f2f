"""The ``litforge`` console script end to end (tiny runs in tmp_path). Most commands here run in processes
forked from the test worker's CLI fork server (tests/cli_forkserver.py); the shared default fit and the
help run the installed console script in a fresh interpreter, as a user's shell does."""

from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path

import pytest
import torch
import yaml

from cli_helpers import CONFIGS, TINY_TRAINER, run_cli

SUBCOMMANDS = ["fit", "validate", "test", "predict", "tune", "export", "serve", "check"]


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """One tiny default fit shared by the read-only tests of this module: returns the working folder."""
    work = tmp_path_factory.mktemp("trained")
    result = run_cli("fit", *TINY_TRAINER, "--run", "base", cwd=work, fresh_process=True)
    assert result.returncode == 0, result.output
    (work / "fit_output.txt").write_text(result.output)
    return work


def test_help_lists_every_subcommand(cli):
    for args in (["--help"], []):
        result = cli(*args, fresh_process=True)
        for name in SUBCOMMANDS:
            assert f"  {name} " in result.stdout
    assert cli("--help").returncode == 0
    assert cli().returncode == 2  # no command is a usage error


def test_ckpt_path_help_offers_what_litforge_takes(cli):
    """Lightning's text offers "hpc" and "registry", which litforge refuses as missing files."""
    evaluate = " ".join(cli("test", "--help").stdout.split())
    assert "best (the default: the newest best.ckpt" in evaluate and "hpc" not in evaluate
    assert "--resume continues a run" in " ".join(cli("fit", "--help").stdout.split())


def test_python_dash_m_is_the_same_command(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "litforge", "--help"], capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 0 and "tune" in proc.stdout


def test_a_fit_whose_output_pipe_closes_trains_to_its_end(tmp_path):
    """``litforge fit | head -2``: once head has its lines the pipe is closed; the fit goes on and finishes
    (it used to stop with exit 130, "interrupted by Ctrl+C")."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "litforge", "fit", *TINY_TRAINER, "--run", "piped"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    assert proc.stdout is not None and proc.stdout.readline()  # the first line, then the reader goes
    proc.stdout.close()
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    assert b"Traceback" not in stderr and b"interrupted" not in stderr
    assert (tmp_path / "runs" / "classifier" / "piped" / "checkpoints" / "last.ckpt").is_file()


def test_fast_dev_run_is_a_smoke_test_that_keeps_nothing(tmp_path):
    """``--trainer.fast_dev_run``: a few batches of each loop; it used to leave a run folder with checkpoints,
    ``finished.json`` and no config.yaml, which test refused and --resume auto took for a finished run."""
    result = run_cli("fit", *TINY_TRAINER, "--trainer.fast_dev_run", "true", "--run", "smoke", cwd=tmp_path)
    assert result.returncode == 0, result.output
    assert "fast_dev_run: 1 batch(es) of each loop ran; nothing is kept" in result.stdout
    assert "logged no" not in result.stderr  # no best.ckpt message for a run that keeps no checkpoint
    assert not (tmp_path / "runs" / "classifier" / "smoke").exists()
    # on a finished run, also with --overwrite or --resume auto: the run is left as it was
    assert run_cli("fit", *TINY_TRAINER, "--run", "done", cwd=tmp_path).returncode == 0
    run = tmp_path / "runs" / "classifier" / "done"
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    for flag in ("--overwrite", "--resume"):
        line = ["fit", *TINY_TRAINER, "--trainer.fast_dev_run", "true", "--run", "done", flag]
        smoke = run_cli(
            *line, *(["auto"] if flag == "--resume" else []), "--trainer.max_epochs", "3", cwd=tmp_path
        )
        assert smoke.returncode == 0, smoke.output
        assert (
            sorted(p.relative_to(run) for p in run.rglob("*")) == before and (run / "finished.json").is_file()
        )


def test_default_fit_writes_the_run_folder(trained_run):
    run = trained_run / "runs" / "classifier" / "base"
    for name in ("config.yaml", "metrics.csv", "hparams.yaml", "learning_curves.png"):
        assert (run / name).is_file(), name
    assert (run / "checkpoints" / "best.ckpt").is_file()
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert list(run.glob("events.out.tfevents.*")), "no TensorBoard events"
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"]["class_path"] == "litforge.models.Classifier"
    assert config["run"] is None  # a saved config used as --config starts a new run
    with (run / "metrics.csv").open() as handle:
        header = next(csv.reader(handle))
    assert {"val_loss", "val_acc", "train_loss_epoch"} <= set(header)
    # Lightning's notice that litforge's summary replaces its own is noise on every run
    assert "Trainer already configured" not in (trained_run / "fit_output.txt").read_text()


def test_plain_progress_when_not_a_terminal(trained_run):
    result = run_cli("validate", "--ckpt_path", "best", *TINY_TRAINER, cwd=trained_run)
    assert result.returncode == 0, result.output
    assert "validate done" in result.stdout and "val_acc=" in result.stdout
    assert "\r" not in result.stdout
    # the results once, as that line: not again in Lightning's table drawn in box characters
    assert "Validate metric" not in result.stdout and not set("┏━│") & set(result.stdout), result.stdout


def test_next_free_run_and_experiment_name(tmp_path):
    for _ in range(2):
        assert (
            run_cli(
                "fit", *TINY_TRAINER, "--trainer.max_epochs", "1", "--experiment", "exp", cwd=tmp_path
            ).returncode
            == 0
        )
    assert sorted(p.name for p in (tmp_path / "runs" / "exp").iterdir()) == ["version_0", "version_1"]


def test_print_config_then_config_reproduces_the_run(tmp_path):
    overrides = [
        *TINY_TRAINER,
        "--model.hidden_dim",
        "24",
        "--data.batch_size",
        "32",
        "--seed_everything",
        "7",
    ]
    printed = run_cli("fit", *overrides, "--print_config", cwd=tmp_path)
    assert printed.returncode == 0, printed.output
    (tmp_path / "printed.yaml").write_text(printed.stdout)
    assert run_cli("fit", *overrides, "--run", "a", cwd=tmp_path).returncode == 0
    assert run_cli("fit", "--config", "printed.yaml", "--run", "b", cwd=tmp_path).returncode == 0
    ckpts = [
        torch.load(tmp_path / f"runs/classifier/{r}/checkpoints/last.ckpt", weights_only=True) for r in "ab"
    ]
    assert ckpts[0]["hyper_parameters"]["hidden_dim"] == 24
    for key, tensor in ckpts[0]["state_dict"].items():
        assert torch.equal(tensor, ckpts[1]["state_dict"][key]), key


def test_configs_apply_in_order_and_typed_flags_override_them_wherever_they_stand(tmp_path):
    (tmp_path / "a.yaml").write_text("model:\n  init_args:\n    hidden_dim: 64\n    lr: 0.01\n")
    (tmp_path / "b.yaml").write_text("model:\n  init_args:\n    hidden_dim: 32\n")

    def printed(*args: str) -> dict:
        result = run_cli("fit", *args, "--print_config", cwd=tmp_path)
        assert result.returncode == 0, result.output
        return yaml.safe_load(result.stdout)["model"]["init_args"]

    assert printed("-c", "a.yaml")["hidden_dim"] == 64
    assert printed("-c", "a.yaml", "-c", "b.yaml") == pytest.approx(
        {**printed("-c", "a.yaml"), "hidden_dim": 32}
    )
    assert printed("-c", "a.yaml", "--model.hidden_dim", "16")["hidden_dim"] == 16
    # a flag typed before a config still wins: a config never silently undoes what the user typed
    assert printed("-c", "a.yaml", "--model.hidden_dim", "16", "-c", "b.yaml")["hidden_dim"] == 16
    assert printed("--model.hidden_dim", "16", "--config=a.yaml")["hidden_dim"] == 16
    assert printed("--config", str(CONFIGS / "digits.yaml"), "--model.lr", "1e-3")["lr"] == pytest.approx(
        1e-3
    )


def test_callbacks_from_yaml_and_appended_on_the_command_line(tmp_path):
    result = run_cli(
        "fit", "--config", str(CONFIGS / "digits.yaml"),
        "--trainer.callbacks+=LearningRateMonitor", "--trainer.callbacks.logging_interval=epoch",
        "--print_config", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.output
    callbacks = yaml.safe_load(result.stdout)["trainer"]["callbacks"]
    assert [c["class_path"].rsplit(".", 1)[-1] for c in callbacks] == ["EarlyStopping", "LearningRateMonitor"]
    assert callbacks[1]["init_args"]["logging_interval"] == "epoch"


def test_seed_shaped_multi_gpu_config_prints_without_gpus(tmp_path):
    result = run_cli("fit", "--config", str(CONFIGS / "multi_gpu.yaml"), "--print_config", cwd=tmp_path)
    assert result.returncode == 0, result.output
    config = yaml.safe_load(result.stdout)
    assert config["trainer"]["devices"] == 4 and config["trainer"]["precision"] == "16-mixed"
    assert config["model"]["class_path"] == "litforge.models.Classifier"
    assert config["model"]["init_args"]["hidden_dim"] == 256
    assert config["data"]["init_args"]["num_workers"] == 8


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--trainer.max_epoch", "2"], "--trainer.max_epoch"),  # typo: no silent abbreviation
        (["--trainer.max_epochs", "abc"], "trainer.max_epochs"),
        (["--config", "missing.yaml"], "missing.yaml"),
        (["--config", "unknown_key.yaml"], "hiden_dim"),
        (["--config", "wrong_type.yaml"], "trainer.max_epochs"),
        (["--model", "NoSuchModel"], "NoSuchModel"),
        (["--data.batch_size", "0"], "batch_size"),
        (["--trainer.accelerator", "tpu"], "trainer"),  # Lightning MisconfigurationException
        (["--config", "broken.yaml"], "not valid YAML"),
    ],
)
def test_bad_input_exits_2_with_one_clear_line(trained_run, args, needle):
    (trained_run / "unknown_key.yaml").write_text("model:\n  init_args:\n    hiden_dim: 3\n")
    (trained_run / "wrong_type.yaml").write_text("trainer:\n  max_epochs: [1]\n")
    (trained_run / "broken.yaml").write_text("model: [1,\n")
    before = _digest(trained_run / "runs")
    # --overwrite: the existing run must survive any bad input even when replacing it was asked for
    result = run_cli("fit", *args, "--run", "base", "--overwrite", "true", cwd=trained_run)
    assert result.returncode == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("litforge: error:")]
    assert len(errors) == 1 and needle in errors[0], result.stderr
    assert "Traceback" not in result.output
    assert _digest(trained_run / "runs") == before  # nothing in the existing run was touched


@pytest.mark.parametrize("content", [None, b"not a checkpoint", b"PK\x03\x04truncated"])
def test_missing_or_corrupt_checkpoint_exits_2(trained_run, content):
    path = trained_run / "broken.ckpt"
    path.unlink(missing_ok=True)
    if content is not None:
        path.write_bytes(content)
    result = run_cli("test", "--ckpt_path", str(path), cwd=trained_run)
    assert result.returncode == 2, result.output
    assert "broken.ckpt" in result.stderr and "Traceback" not in result.output


def test_debug_shows_the_traceback(trained_run):
    result = run_cli("fit", "--model", "NoSuchModel", "--debug", cwd=trained_run)
    assert result.returncode == 2 and "Traceback" in result.stderr


def test_test_on_best_checkpoint_keeps_training_metrics(trained_run):
    run = trained_run / "runs" / "classifier" / "base"
    metrics_before = (run / "metrics.csv").read_bytes()
    result = run_cli("test", "--ckpt_path", "best", "--run", "base", *TINY_TRAINER, cwd=trained_run)
    assert result.returncode == 0, result.output
    assert "test done" in result.stdout and "test_acc=" in result.stdout
    assert "Test metric" not in result.stdout and not set("┏━│") & set(result.stdout), result.stdout
    assert (run / "metrics.csv").read_bytes() == metrics_before
    assert (run / "test" / "metrics.csv").is_file()


def test_predict_writes_predictions_csv(trained_run):
    ckpt = trained_run / "runs" / "classifier" / "base" / "checkpoints" / "best.ckpt"
    result = run_cli("predict", "--ckpt_path", str(ckpt), *TINY_TRAINER, cwd=trained_run)
    assert result.returncode == 0, result.output
    with (ckpt.parent.parent / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * 64  # limit_predict_batches=2, batch_size=64
    assert list(rows[0]) == ["row", "prediction", "label", *[f"prob_{i}" for i in range(10)]]
    for row in rows:
        probs = [float(row[f"prob_{i}"]) for i in range(10)]
        assert abs(sum(probs) - 1) < 1e-4
        assert int(row["prediction"]) == max(range(10), key=probs.__getitem__)


def test_third_party_module_by_class_path(tmp_path):
    boring = "lightning.pytorch.demos.boring_classes"
    result = run_cli(
        "fit",
        "--model",
        f"{boring}.BoringModel",
        "--data",
        f"{boring}.BoringDataModule",
        *TINY_TRAINER,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.output
    run = tmp_path / "runs" / "boringmodel" / "version_0"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["class_path"] == f"{boring}.BoringModel"


def test_evaluating_without_ckpt_path_uses_the_newest_best_or_exits_2(trained_run, tmp_path):
    result = run_cli("validate", *TINY_TRAINER, cwd=trained_run)
    assert result.returncode == 0, result.output
    assert "checkpoints/best.ckpt" in result.output  # never a freshly initialised model
    empty = run_cli("test", cwd=tmp_path)
    assert empty.returncode == 2 and "--ckpt_path" in empty.stderr and "Traceback" not in empty.output


def test_a_saved_config_starts_a_new_run(trained_run):
    saved = trained_run / "runs" / "classifier" / "base" / "config.yaml"
    result = run_cli(
        "fit", "--config", str(saved), *TINY_TRAINER, "--trainer.max_epochs", "1", cwd=trained_run
    )
    assert result.returncode == 0, result.output
    assert "runs/classifier/base" not in result.stdout  # a new version_N, never the saved run


def test_a_child_process_that_is_not_a_ddp_rank_picks_its_own_run_folder(cli, tmp_path: Path) -> None:
    # A tune worker is a child of the process that trained the last trial; only DDP ranks (LOCAL_RANK >= 1)
    # may take over their parent's run folder. This test process plays that parent.
    elsewhere = tmp_path / "runs" / "classifier" / "parents-run"
    launched = os.pathsep.join((str(os.getpid()), str(elsewhere), ""))
    result = cli(
        "fit", *TINY_TRAINER, "--run", "mine", env={"LITFORGE_LAUNCHED_RUN": launched, "LOCAL_RANK": "0"}
    )
    assert result.returncode == 0, result.output[-3000:]
    assert (tmp_path / "runs" / "classifier" / "mine" / "checkpoints" / "last.ckpt").is_file()
    assert not elsewhere.exists()


def test_epoch_lines_show_every_logged_metric_and_the_epochs_own_time(capsys):
    """A model logging val_loss without prog_bar=True printed an empty epoch line; a run resumed mid-epoch
    (no on_train_epoch_start) printed the machine's uptime as the epoch's duration."""
    import re

    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    from litforge.callbacks.plain_progress_bar import PlainProgressBar

    class Quiet(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, batch_idx):
            return self.layer(batch[0]).pow(2).mean()

        def validation_step(self, batch, batch_idx):
            self.log("val_loss", self.layer(batch[0]).pow(2).mean())  # no prog_bar

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    loader = DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=4)
    bar = PlainProgressBar()
    trainer = L.Trainer(max_epochs=1, callbacks=[bar], logger=False, enable_checkpointing=False,
                        enable_model_summary=False, num_sanity_val_steps=0)  # fmt: skip
    trainer.fit(Quiet(), loader, loader)
    line = next(text for text in capsys.readouterr().out.splitlines() if text.startswith("epoch 1/1"))
    assert "val_loss=" in line, line
    bar.on_train_start(trainer, trainer.lightning_module)  # a resumed run: the epoch started before it
    bar.on_train_epoch_end(trainer, trainer.lightning_module)
    seconds = float(re.search(r"\(([\d.]+)s\)", capsys.readouterr().out).group(1))
    assert seconds < 60


def test_tune_help_states_each_default_once(cli) -> None:
    text = " ".join(cli("tune", "--help", env={"COLUMNS": "400"}).stdout.split())
    assert "(default: None)" not in text and "(default 3) (default: 3)" not in text
    assert "--patience" in text and "--timeout TIMEOUT stop starting trials after this many seconds" in text


def test_serve_and_check_help_name_their_defaults_and_options(cli) -> None:
    serve = " ".join(cli("serve", "--help", env={"COLUMNS": "400"}).stdout.split())
    for default in ("(1: off; default: 64)", "never waits (default: 0.005)", "processes (default: 1)"):
        assert default in serve, serve
    assert "--run NAME checks the model and data of an earlier run" in " ".join(
        cli("check", "--help").stdout.split()
    )


def test_a_configured_checkpoint_and_no_logger_keep_the_run_folder_whole(tmp_path):
    """``trainer.logger: false`` and a ``ModelCheckpoint`` of the user's: config.yaml still goes into the run
    folder (never over a config.yaml in the working folder), best.ckpt/last.ckpt are still written beside
    the user's files (best by the user's monitor), and the run's config finds that run's checkpoints."""
    (tmp_path / "config.yaml").write_text("# my own config, not litforge's\n")
    (tmp_path / "mine.yaml").write_text(
        "trainer:\n  logger: false\n  callbacks:\n"
        "    - class_path: lightning.pytorch.callbacks.ModelCheckpoint\n"
        "      init_args: {filename: 'mine-{epoch}', monitor: val_acc, mode: max}\n"
    )
    fit = run_cli("fit", "--config", "mine.yaml", *TINY_TRAINER, "--run", "r0", cwd=tmp_path)
    assert fit.returncode == 0, fit.output
    assert (tmp_path / "config.yaml").read_text() == "# my own config, not litforge's\n"
    run = tmp_path / "runs" / "classifier" / "r0"
    names = {p.name for p in (run / "checkpoints").iterdir()}
    assert {"best.ckpt", "last.ckpt"} <= names and any(name.startswith("mine-epoch=") for name in names)
    assert not (tmp_path / "checkpoints").exists()
    callbacks = torch.load(run / "checkpoints" / "best.ckpt", weights_only=False)["callbacks"]
    ours = next(state for key, state in callbacks.items() if key.startswith("RunCheckpoint"))
    assert "'monitor': 'val_acc', 'mode': 'max'" in next(
        k for k in callbacks if k.startswith("RunCheckpoint")
    )
    assert ours["best_model_path"].endswith("best.ckpt")
    newer = run_cli("fit", *TINY_TRAINER, "--run", "r1", cwd=tmp_path)
    assert newer.returncode == 0, newer.output
    tested = run_cli("test", "--config", str(run / "config.yaml"), "--ckpt_path", "last", cwd=tmp_path)
    assert tested.returncode == 0, tested.output
    assert "r0/checkpoints/last.ckpt" in tested.output and "r1/" not in tested.output
    (run / "checkpoints" / "best.ckpt").unlink()
    (run / "checkpoints" / "last.ckpt").unlink()
    orphan = run_cli("test", "--config", str(run / "config.yaml"), cwd=tmp_path)
    assert orphan.returncode == 2 and "run r0 has no best.ckpt or last.ckpt" in orphan.stderr, orphan.output
    assert "mine-epoch=" in orphan.stderr


def test_trainer_settings_lightning_refuses_are_one_line_exit_2(tmp_path):
    result = run_cli(
        "fit", *TINY_TRAINER, "--trainer.logger", "false", "--trainer.callbacks+=LearningRateMonitor",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2, result.output
    assert "trainer settings: MisconfigurationException: Cannot use `LearningRateMonitor`" in result.stderr
    assert 'File "' not in result.stderr


def test_ctrl_c_while_the_command_starts_is_one_line_exit_130(monkeypatch, capsys):
    """The imports before a job take seconds: a Ctrl+C then is one line and exit 130, not a traceback."""
    from litforge import cli
    from litforge.engine import runtime

    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(runtime, "install", interrupted)
    with pytest.raises(SystemExit) as exited:
        cli.main(["fit", "--trainer.max_epochs", "1"])
    assert exited.value.code == 130
    assert capsys.readouterr().err == "litforge: interrupted by Ctrl+C while starting; nothing was done\n"


def test_sigterm_while_the_command_starts_is_one_line_exit_143(monkeypatch, capsys):
    """A SIGTERM during the imports ended the process silently (the default handler)."""
    import os
    import signal
    import sys

    from litforge import cli
    from litforge.engine import runtime

    monkeypatch.setattr(runtime, "install", lambda: os.kill(os.getpid(), signal.SIGTERM))
    monkeypatch.setattr(sys, "argv", ["litforge", "fit", "--trainer.max_epochs", "1"])
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 143
    assert capsys.readouterr().err == "litforge: stopped by SIGTERM while starting; nothing was done\n"
    assert signal.getsignal(signal.SIGTERM) is before  # the job's own handling is not replaced


def test_evaluating_with_no_run_of_the_default_model_uses_the_newest_experiment(tmp_path):
    """Only another experiment's runs (a user's own model): ``litforge test`` finds them, and says so."""
    fit = run_cli("fit", *TINY_TRAINER, "--experiment", "mine", "--run", "r", cwd=tmp_path)
    assert fit.returncode == 0, fit.output
    tested = run_cli("test", "--ckpt_path", "best", *TINY_TRAINER, cwd=tmp_path)
    assert tested.returncode == 0, tested.output
    assert "using experiment mine, whose run r wrote the newest checkpoint" in tested.stderr
    assert "runs/mine/r/checkpoints/best.ckpt" in tested.output


def test_fit_naming_no_model_refuses_a_run_name_of_another_experiment(tmp_path):
    """``fit --run r`` where r is a run of the user's model: not the packaged classifier under r, silently."""
    (tmp_path / "runs" / "mine" / "r" / "checkpoints").mkdir(parents=True)
    (tmp_path / "runs" / "mine" / "r" / "config.yaml").write_text("model: {class_path: mymod.Mine}\n")
    result = run_cli("fit", "--run", "r", *TINY_TRAINER, cwd=tmp_path)
    assert result.returncode == 2, result.output
    assert "--run r is a run of experiment mine; this command names no model" in result.stderr
    assert not (tmp_path / "runs" / "classifier").exists()


def test_a_missing_relative_file_names_the_folder_it_was_looked_for_in(tmp_path, monkeypatch) -> None:
    """A run's `data_dir: data` read from another folder: the failure says where a relative path points."""
    from litforge import working_folder
    from litforge.engine.failures import describe

    monkeypatch.chdir(tmp_path)
    working_folder.remember()
    relative = describe(FileNotFoundError(2, "No such file or directory", "data/train.csv"))
    assert f"a relative path is read from the folder litforge runs in, {tmp_path}" in relative
    assert "relative path" not in describe(FileNotFoundError(2, "No such file", "/abs/train.csv"))


def test_a_validation_monitor_with_validation_off_points_at_validation_not_at_the_name() -> None:
    """``--trainer.limit_val_batches 0`` with an EarlyStopping on val_iou: the name is right, validation is off."""
    from litforge.engine.failures import unlogged_monitor

    lightning_says = (
        "Early stopping conditioned on metric `val_iou` which is not available. Pass in or modify your "
        "`EarlyStopping` callback to use any of the following: `train_loss`, `train_loss_epoch`"
    )
    message = unlogged_monitor(RuntimeError(lightning_says))
    assert message is not None and "no validation metric at all: is validation off" in message
    typo = lightning_says.replace("`train_loss`", "`val_loss`, `train_loss`").replace("val_iou", "val_los")
    assert "did you mean val_loss?" in str(unlogged_monitor(RuntimeError(typo)))
    other_word = lightning_says.replace("`train_loss`", "`val_loss`, `train_loss`").replace(
        "`val_iou`", "`valid_loss`"
    )
    assert "did you mean val_loss?" in str(unlogged_monitor(RuntimeError(other_word)))
    assert "is validation off" not in str(unlogged_monitor(RuntimeError(other_word)))


def test_a_schedulers_unlogged_monitor_names_configure_optimizers_not_trainer_settings() -> None:
    """Two validation loaders rename val/loss to val/loss/dataloader_idx_0: the model's ReduceLROnPlateau
    then failed as "trainer settings" (exit 2), though the user set none."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    from litforge.engine.failures import unlogged_scheduler_monitor

    lightning_says = (
        "ReduceLROnPlateau conditioned on metric val/loss which is not available. Available metrics are: "
        "['train/loss', 'val/loss/dataloader_idx_0', 'val/loss/dataloader_idx_1', 'epoch']. Condition can be "
        "set using `monitor` key in lr scheduler dict"
    )
    assert unlogged_scheduler_monitor(MisconfigurationException(lightning_says)) == (
        "the ReduceLROnPlateau of configure_optimizers() monitors 'val/loss', which the model does not log (it "
        "logs: train/loss, val/loss/dataloader_idx_0, val/loss/dataloader_idx_1; did you mean "
        "val/loss/dataloader_idx_0?): set its 'monitor' in the lr_scheduler dict to a logged metric"
    )
    assert unlogged_scheduler_monitor(MisconfigurationException("`limit_train_batches` must be")) is None


@pytest.mark.parametrize(
    ("callback", "words"),
    [
        (
            "lightning.pytorch.callbacks.EarlyStopping",
            "fit: EarlyStopping(monitor='val_los') in trainer.callbacks: the model logs no 'val_los' (it logs: ",
        ),
        (
            "lightning.pytorch.callbacks.ModelCheckpoint",
            "fit: ModelCheckpoint(monitor='val_los') in trainer.callbacks: the model logs no 'val_los' (it logs: ",
        ),
    ],
)
def test_a_callback_monitoring_a_metric_the_model_never_logs_is_a_config_error(tmp_path, callback, words):
    """A typo in a config's callback monitor surfaces at the first validation: exit 2, the closest name."""
    (tmp_path / "mon.yaml").write_text(
        f"trainer:\n  callbacks:\n    - class_path: {callback}\n      init_args: {{monitor: val_los}}\n"
    )
    result = run_cli("fit", "-c", "mon.yaml", *TINY_TRAINER, "--run", "m", cwd=tmp_path)
    assert result.returncode == 2, result.output
    assert words in result.stderr and "did you mean val_loss?); fix its monitor" in result.stderr, (
        result.stderr
    )
    assert "Traceback" not in result.stderr
