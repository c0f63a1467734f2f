"""A user's own LightningModule/DataModule from a file in the working folder, through the fit engine:
class defaults hold, the run's config works everywhere, checkpoints bring their run, errors are clear."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch
import yaml
from user_helpers import QUICK, csv_rows

SEED_MODEL = ["--model", "usermods.LitModel", "--data", "usermods.MyDataModule"]


@pytest.fixture
def trained(project, user_cli):
    """One short fit of the seed's LitModel into runs/litmodel/p1."""
    result = user_cli("fit", *SEED_MODEL, *QUICK, "--run", "p1")
    assert result.returncode == 0, result.output
    return project / "runs" / "litmodel" / "p1"


def test_the_class_defaults_hold_not_the_packaged_ones(trained, project, user_cli):
    config = yaml.safe_load((trained / "config.yaml").read_text())
    own_defaults = {"input_dim": 16, "hidden_dim": 256, "output_dim": 3, "lr": 1e-3, "dropout": 0.1}
    assert config["model"]["init_args"] == own_defaults
    assert config["data"]["init_args"] == {"batch_size": 32, "num_workers": 0}
    hparams = torch.load(trained / "checkpoints" / "last.ckpt", weights_only=True)["hyper_parameters"]
    assert hparams["hidden_dim"] == 256 and hparams["lr"] == 1e-3
    # the same through a user config naming its own class_path, and through --print_config
    (project / "mine.yaml").write_text(
        "model:\n  class_path: usermods.LitModel\ndata:\n  class_path: usermods.MyDataModule\n"
    )
    printed = user_cli("fit", "--config", "mine.yaml", "--print_config")
    assert printed.returncode == 0, printed.output
    resolved = yaml.safe_load(printed.stdout)
    assert resolved["model"]["init_args"]["hidden_dim"] == 256
    assert resolved["data"]["init_args"]["batch_size"] == 32


def test_a_class_typed_after_its_own_arguments_takes_them():
    """``--model.hidden_dim 8 --model mymod.X``: applied left to right, the argument met no class and was
    refused with "Option 'hidden_dim' is not accepted", although X takes it."""
    from litforge.engine.config_sources import scan

    line = scan(
        ["--model.hidden_dim", "8", "--data.batch_size", "4", "--model=usermods.LitModel", "--data", "D"]
    )
    assert line.args == [
        "--model=usermods.LitModel",
        "--model.hidden_dim",
        "8",
        "--data",
        "D",
        "--data.batch_size",
        "4",
    ]


def test_a_config_of_init_args_alone_applies_to_the_class_typed_beside_it(project, user_cli):
    """``--model usermods.LitModel -c small.yaml`` where small.yaml only sets ``model.init_args``: its values
    reach the typed class (it was "Option 'lr' is not accepted"), and a typed --model.lr still wins."""
    (project / "small.yaml").write_text(
        "model:\n  init_args:\n    lr: 0.05\ndata:\n  init_args:\n    batch_size: 8\n"
    )
    printed = user_cli("fit", *SEED_MODEL, "-c", "small.yaml", "--print_config")
    assert printed.returncode == 0, printed.output
    resolved = yaml.safe_load(printed.stdout)
    assert (
        resolved["model"]["class_path"] == "usermods.LitModel"
        and resolved["model"]["init_args"]["lr"] == 0.05
    )
    assert resolved["model"]["init_args"]["hidden_dim"] == 256  # the class's own default
    assert resolved["data"]["init_args"]["batch_size"] == 8
    typed = user_cli("fit", *SEED_MODEL, "-c", "small.yaml", "--model.lr", "0.2", "--print_config")
    assert yaml.safe_load(typed.stdout)["model"]["init_args"]["lr"] == 0.2


def test_a_class_typed_over_a_config_of_another_class_says_which_init_args_it_keeps(project, user_cli):
    """jsonargparse hands the file's init args that the typed class also takes to it, silently: the
    regressor would train at the classifier config's lr, not at its own default."""
    (project / "exp.yaml").write_text(
        "model:\n  class_path: usermods.LitModel\n  init_args:\n    hidden_dim: 64\n    lr: 0.02\n"
    )
    other = [
        "--model",
        "usermods.Regressor",
        "--data",
        "usermods.RegressionData",
        "--trainer.fast_dev_run",
        "1",
    ]
    result = user_cli("fit", "-c", "exp.yaml", *other)
    assert result.returncode == 0, result.output
    assert (
        "--model usermods.Regressor replaces exp.yaml's usermods.LitModel: it keeps lr=0.02 from there and "
        "drops hidden_dim (usermods.Regressor takes no such argument)"
    ) in result.stderr
    typed = user_cli("fit", "-c", "exp.yaml", *other, "--model.lr", "0.3")
    assert "it drops hidden_dim (" in typed.stderr and "keeps" not in typed.stderr


def test_packaged_default_still_applies_when_nothing_is_named(user_cli):
    printed = user_cli("fit", "--print_config")
    config = yaml.safe_load(printed.stdout)
    assert config["seed_everything"] == 42 and config["trainer"]["max_epochs"] == 30
    assert config["model"]["init_args"]["lr"] == 0.002 and config["data"]["init_args"]["batch_size"] == 64
    # a user's datamodule with litforge's default model: the model keeps the packaged settings
    mixed = user_cli("fit", "--data", "usermods.MyDataModule", "--print_config")
    config = yaml.safe_load(mixed.stdout)
    assert config["model"]["init_args"]["lr"] == 0.002 and config["data"]["init_args"]["batch_size"] == 32
    assert (  # and is told so: a dict batch then fails inside litforge's Classifier, not the user's code
        "no --model given: usermods.MyDataModule trains the packaged litforge.models.Classifier"
        in mixed.stderr
    )
    # a user's model without --data gets the packaged data, and is told so
    alone = user_cli("fit", "--model", "usermods.LitModel", "--print_config")
    assert (
        "no --data given: usermods.LitModel gets the packaged litforge.data.DigitsDataModule" in alone.stderr
    )
    # ... nor when --data is there but mistyped: its own error, with no note about the digits first
    typo = user_cli("fit", "--model", "usermods.LitModel", "--dat", "usermods.MyDataModule")
    assert typo.returncode == 2 and "did you mean --data?" in typo.stderr and "note" not in typo.stderr
    # a user's init argument typed without its section's prefix is pointed at it
    bare = user_cli("fit", "--model", "usermods.Regressor", "--n_in", "8")
    assert bare.returncode == 2 and "--n_in 8 (did you mean --model.n_in?)" in bare.stderr, bare.output
    # ... but not before the one-line error of a class that does not import
    missing = user_cli("fit", "--model", "usermods.Missing", "--print_config")
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1, missing.output


def test_the_runs_config_works_with_every_subcommand(trained, user_cli):
    config = str(trained / "config.yaml")
    best = str(trained / "checkpoints" / "best.ckpt")
    for command in ("validate", "test", "predict"):
        result = user_cli(command, "--config", config, "--ckpt_path", best)
        assert result.returncode == 0, (command, result.output)
    # the run's config records a ckpt_path of its own: the one typed before --config still wins
    chosen = user_cli(
        "test", "--ckpt_path", last := str(trained / "checkpoints" / "last.ckpt"), "--config", config
    )
    assert chosen.returncode == 0 and f"checkpoint path at {last}" in chosen.output, chosen.output
    printed = user_cli("test", "--config", config, "--print_config")  # test's own config back into fit
    (trained.parent / "from_test.yaml").write_text(printed.stdout)
    result = user_cli("fit", "--config", str(trained.parent / "from_test.yaml"), *QUICK, "--run", "p2")
    assert result.returncode == 0, result.output


def test_a_runs_config_means_that_run_and_never_a_starting_point_for_fit(trained, project, user_cli):
    newer = user_cli("fit", *SEED_MODEL, *QUICK, "--run", "newer")  # the experiment's newest best.ckpt
    assert newer.returncode == 0, newer.output
    validated = user_cli("validate", "--config", str(trained / "config.yaml"))
    best = trained / "checkpoints" / "best.ckpt"
    assert validated.returncode == 0 and f"checkpoint path at {best}" in validated.output, validated.output
    # test's config.yaml records the checkpoint it evaluated; a fit from it starts fresh, and says so
    tested = user_cli("test", "--config", str(trained / "config.yaml"))
    assert (
        tested.returncode == 0 and "ckpt_path: " + str(best) in (trained / "test" / "config.yaml").read_text()
    )
    fresh = user_cli("fit", "--config", str(trained / "test" / "config.yaml"), *QUICK, "--run", "fresh")
    assert fresh.returncode == 0 and "this fit starts fresh" in fresh.stderr, fresh.output
    assert "Restored all states" not in fresh.output
    fresh_run = trained.parent / "fresh"
    assert yaml.safe_load((fresh_run / "config.yaml").read_text())["ckpt_path"] is None
    steps = torch.load(fresh_run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert steps == torch.load(trained / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]


def test_a_bare_checkpoint_brings_its_runs_model_and_data(trained, project, user_cli):
    result = user_cli("predict", "--ckpt_path", str(trained / "checkpoints" / "last.ckpt"))
    assert result.returncode == 0, result.output
    rows = (trained / "predictions.csv").read_text().splitlines()
    assert len(rows) == 1 + 48  # the user's 48 test rows, not the digits data
    by_name = user_cli("test", "--run", "p1")  # the run found by name, in its own experiment
    assert by_name.returncode == 0 and "test_loss" in by_name.stdout, by_name.output
    # outside a run folder nothing says which data it belongs to: one clear line, exit 2
    stray = project / "stray.ckpt"
    stray.write_bytes((trained / "checkpoints" / "last.ckpt").read_bytes())
    refused = user_cli("predict", "--ckpt_path", str(stray))
    assert refused.returncode == 2 and "not inside a run folder" in refused.stderr, refused.output
    assert "--config" in refused.stderr and "Traceback" not in refused.output


def test_model_flags_typed_with_a_checkpoint_win_over_its_hyperparameters(trained, user_cli):
    config, last = str(trained / "config.yaml"), str(trained / "checkpoints" / "last.ckpt")
    # Lightning overwrites the init args with the checkpoint's; a flag the user typed must still hold
    result = user_cli("test", "--config", config, "--ckpt_path", last, "--model.lr", "0.5")
    assert result.returncode == 0, result.output
    assert "--model.lr 0.5 replaces the checkpoint's lr=0.001" in result.stderr
    assert yaml.safe_load((trained / "test" / "config.yaml").read_text())["model"]["init_args"]["lr"] == 0.5
    # a value the weights cannot take is refused in one line, not silently ignored
    refused = user_cli("test", "--config", config, "--ckpt_path", last, "--model.hidden_dim", "8")
    assert refused.returncode == 2, refused.output
    assert "does not fit LitModel" in refused.stderr and "Traceback" not in refused.output
    assert (
        "--model.hidden_dim 8 changed the model the weights were saved from: leave it out" in refused.stderr
    )
    assert "GPU available" not in refused.output  # refused before the trainer is built


def test_a_users_own_config_says_which_runs_checkpoint_and_hyperparameters_it_takes(
    trained, project, user_cli
):
    """A config that is not a run's names no checkpoint: test takes the newest best.ckpt of the experiment's
    runs and the checkpoint's hyperparameters (the weights need them), and says so instead of doing it quietly."""
    assert user_cli("fit", *SEED_MODEL, *QUICK, "--run", "p2").returncode == 0
    (project / "mine.yaml").write_text(
        "model:\n  class_path: usermods.LitModel\n  init_args:\n    lr: 0.5\n"
        "data:\n  class_path: usermods.MyDataModule\n"
    )
    result = user_cli("test", "--config", "mine.yaml")
    assert result.returncode == 0, result.output
    newest = "runs/litmodel/p2/checkpoints/best.ckpt"
    assert (
        f"note: using {newest}, the newest best.ckpt of the 2 runs with one in runs/litmodel" in result.stderr
    )
    assert "the model takes the checkpoint's lr=0.001 (configured: 0.5)" in result.stderr
    # nothing configured: the value it replaces is the class's own default, and the note says so
    assert user_cli("fit", *SEED_MODEL, *QUICK, "--run", "p3", "--model.lr", "0.02").returncode == 0
    shutil.copy(project / "runs/litmodel/p3/checkpoints/best.ckpt", project / "copy.ckpt")
    outside = user_cli("test", *SEED_MODEL, "--ckpt_path", "copy.ckpt")
    assert outside.returncode == 0, outside.output
    assert "the model takes the checkpoint's lr=0.02 (the class default: 0.001)" in outside.stderr
    # naming the run is a choice made: no note
    named = user_cli("test", "--config", "mine.yaml", "--run", "p1")
    assert named.returncode == 0 and "the newest best.ckpt" not in named.stderr, named.output


def _optimizer_state(run) -> tuple[dict, list]:
    saved = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    return saved["optimizer_states"][0]["param_groups"][0], saved["lr_schedulers"]


def test_a_resume_trains_with_the_lr_typed_on_its_command_line(trained, project, user_cli):
    """Lightning loads the checkpoint's optimizer state over the optimizer configure_optimizers() built:
    the new lr must survive it, and the moments and steps carry on."""
    last = str(trained / "checkpoints" / "last.ckpt")
    resumed = user_cli("fit", *SEED_MODEL, *QUICK, "--trainer.max_epochs", "3", "--run", "lr",
                       "--resume", last, "--model.lr", "0.1")  # fmt: skip
    assert resumed.returncode == 0, resumed.output
    assert "the optimizer takes lr=0.1 (checkpoint: 0.001)" in resumed.stderr, resumed.output
    group, _ = _optimizer_state(project / "runs" / "litmodel" / "lr")
    assert group["lr"] == 0.1
    # a change that leaves the optimizer's settings alone restores them as saved, with no note
    kept = user_cli("fit", *SEED_MODEL, *QUICK, "--trainer.max_epochs", "3", "--run", "dropout",
                    "--resume", last, "--model.dropout", "0.2")  # fmt: skip
    assert kept.returncode == 0 and "the optimizer takes" not in kept.stderr, kept.output
    assert _optimizer_state(project / "runs" / "litmodel" / "dropout")[0]["lr"] == 1e-3


def test_a_resume_with_other_settings_keeps_the_earlier_config(trained, user_cli):
    """config.yaml says how the run trains from now on; the earlier steps' config stays beside it."""
    longer = user_cli(
        "fit", "--run", "p1", "--resume", "auto", "--trainer.max_epochs", "3", "--model.lr", "0.01"
    )
    assert longer.returncode == 0, longer.output
    assert (
        "this resume trains with other settings (model.init_args.lr: 0.001 -> 0.01, trainer.max_epochs:"
        in longer.stderr
    )
    earlier, now = (yaml.safe_load((trained / name).read_text()) for name in ("config.1.yaml", "config.yaml"))
    assert earlier["model"]["init_args"]["lr"] == 1e-3 and now["model"]["init_args"]["lr"] == 0.01
    again = user_cli(
        "fit", "--run", "p1", "--resume", "auto", "--trainer.max_epochs", "3", "--model.lr", "0.01"
    )
    assert again.returncode == 0 and not (trained / "config.2.yaml").exists(), again.output  # nothing changed


def test_a_resume_with_a_new_lr_keeps_the_schedules_progress(project, user_cli):
    regressor = ["--model", "usermods.Regressor", "--data", "usermods.RegressionData", *QUICK]
    assert user_cli("fit", *regressor, "--run", "a").returncode == 0
    last = str(project / "runs" / "regressor" / "a" / "checkpoints" / "last.ckpt")
    resumed = user_cli("fit", *regressor, "--trainer.max_epochs", "3", "--run", "b", "--resume", last,
                       "--model.lr", "0.01")  # fmt: skip
    assert resumed.returncode == 0 and "initial_lr=0.01" in resumed.stderr, resumed.output
    group, schedulers = _optimizer_state(project / "runs" / "regressor" / "b")
    assert group["initial_lr"] == group["lr"] == 0.01  # StepLR(100): no decay yet
    assert schedulers[0]["base_lrs"] == [0.01] and schedulers[0]["last_epoch"] == 3


def test_another_models_checkpoint_is_refused_in_one_line(trained, user_cli):
    other = user_cli("fit", *QUICK, "--trainer.limit_val_batches", "2", "--run", "digits")
    assert other.returncode == 0, other.output
    digits_ckpt = trained.parent.parent / "classifier" / "digits" / "checkpoints" / "last.ckpt"
    result = user_cli("test", "--config", str(trained / "config.yaml"), "--ckpt_path", str(digits_ckpt))
    assert result.returncode == 2, result.output
    assert "holds another model's weights" in result.stderr and "Traceback" not in result.output
    typed = user_cli("predict", "--run", "digits", "--model", "usermods.LitModel")  # the flag is the mistake
    assert typed.returncode == 2 and "--model names usermods.LitModel; drop --model" in typed.stderr, (
        typed.output
    )
    # the same checkpoint dropped into the LitModel run's folder: export refuses it as test does
    planted = trained / "checkpoints" / "planted.ckpt"
    shutil.copy(digits_ckpt, planted)
    for args in (
        ["test", "--ckpt_path", str(planted)],
        ["export", "--ckpt", str(planted), "--format", "onnx"],
    ):
        refused = user_cli(*args)
        assert refused.returncode == 2 and "holds another model's weights" in refused.stderr, refused.output
    assert not (trained / "export").exists()
    # naming the class exports the planted weights as that class, without the run's data or init args
    exported = user_cli(
        "export", "--ckpt", str(planted), "--format", "onnx", "--model-class", "litforge.models.Classifier"
    )
    assert exported.returncode == 0, exported.output
    assert json.loads((trained / "export" / "export.json").read_text())["source"]["datamodule_class"] is None


def test_an_early_stopping_from_configure_callbacks_is_named_as_the_models(project, user_cli):
    """It replaced the packaged EarlyStopping without a word, and the closing line credited the packaged one."""
    model = ["--model", "usermods.OwnEarlyStoppingModel", "--data", "usermods.MyDataModule", *QUICK]
    result = user_cli("fit", *model, "--trainer.max_epochs", "6", "--run", "es")
    assert result.returncode == 0, result.output
    assert (
        "litforge: note: OwnEarlyStoppingModel.configure_callbacks() returns an EarlyStopping on valid/accuracy; "
        "it replaces the config's on val_loss; best.ckpt follows val_loss (--monitor valid/accuracy to keep the "
        "same metric)" in result.stderr
    ), result.stderr
    assert (
        "stopped after epoch 2 of 6 (OwnEarlyStoppingModel.configure_callbacks()'s EarlyStopping)"
        in result.output
    )


def test_a_network_built_in_setup_from_the_datamodule_exports_and_predicts(project, user_cli):
    """export rebuilt the module from __init__ alone: its network was None, the weights loaded nowhere
    without a word, and forward raised a traceback. Now setup() runs with the run's datamodule first."""
    model = ["--model", "usermods.SetupBuiltModel", "--data", "usermods.WidthData", *QUICK]
    assert user_cli("fit", *model, "--run", "s").returncode == 0
    run = project / "runs" / "setupbuiltmodel" / "s"
    assert user_cli("predict", "--run", "s").returncode == 0
    exported = user_cli("export", "--run", "s", "--format", "onnx,pt2")
    assert exported.returncode == 0, exported.output
    assert "GPU available" not in exported.output  # the bare Trainer that carries the datamodule is quiet
    record = json.loads((run / "export" / "export.json").read_text())
    assert all(record["formats"][fmt]["parity"]["passed"] for fmt in ("onnx", "pt2"))
    rows = csv_rows(run / "predictions.csv")
    assert list(rows[0])[:2] == ["row", "prediction"]


def test_an_export_of_token_ids_says_the_datamodules_tokenizer_is_not_in_it(project, user_cli):
    model = ["--model", "usermods.LitModel", "--data", "usermods.HoldsATokenizer", *QUICK]
    assert user_cli("fit", *model, "--trainer.max_epochs", "1", "--run", "t").returncode == 0
    exported = user_cli("export", "--run", "t", "--format", "onnx")
    assert exported.returncode == 0, exported.output
    assert (
        "litforge: note: HoldsATokenizer tokenizes texts, and the export takes token ids: its tokenizer is not "
        "in it" in exported.stderr
    )


def test_a_checkpoint_of_the_module_before_its_code_changed_is_refused_in_one_line(project, user_cli):
    """validate/test/predict exited 1 with torch's load_state_dict traceback ("Missing key(s)")."""
    model = ["--model", "usermods.Regressor", "--data", "usermods.RegressionData", *QUICK]
    assert user_cli("fit", *model, "--trainer.max_epochs", "1", "--run", "r").returncode == 0
    source = (project / "usermods.py").read_text()
    grown = source.replace(  # a layer added to Regressor.__init__ since
        "    def __init__(self, n_in: int = 8, lr: float = 0.05):\n        super().__init__()\n",
        "    def __init__(self, n_in: int = 8, lr: float = 0.05):\n        super().__init__()\n"
        "        self.extra = nn.Linear(2, 2)\n",
        1,
    )
    assert grown.count("self.extra = nn.Linear(2, 2)") == 1
    (project / "usermods.py").write_text(grown)
    refused = user_cli("validate", "--run", "r")
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.output
    assert "2 tensor(s) that the model has and the checkpoint lacks (e.g. extra.bias)" in refused.stderr
    assert "was the module's code changed since the run that wrote it" in refused.stderr


def test_two_files_defining_one_class_name_never_stand_in_for_each_other(project, user_cli):
    """v1.py and v2.py each with a LitModel: their runs share the experiment litmodel, and test --model
    usermods.LitModel evaluated the v2 run's newest best.ckpt with v2's class (compared by short name)."""
    shutil.copy(project / "usermods.py", project / "usermods_v2.py")
    v2 = ["--model", "usermods_v2.LitModel", "--data", "usermods_v2.MyDataModule", *QUICK]
    assert user_cli("fit", *v2, "--trainer.max_epochs", "1", "--run", "v2").returncode == 0
    mine = ["--model", "usermods.LitModel", "--data", "usermods.MyDataModule"]
    newest = user_cli("test", *mine)
    assert newest.returncode == 2, newest.output
    assert (
        "--model usermods.LitModel: no run of it under runs/litmodel has a best.ckpt (the runs there trained "
        "usermods_v2.LitModel)" in newest.stderr
    )
    named = user_cli("test", *mine, "--ckpt_path", "runs/litmodel/v2/checkpoints/best.ckpt")
    assert named.returncode == 2 and "it was saved from usermods_v2.LitModel" in named.stderr, named.output
    # with a run of its own, that one is chosen, however new the other class's checkpoint
    assert user_cli("fit", *mine, *QUICK, "--trainer.max_epochs", "1", "--run", "v1").returncode == 0
    (project / "runs" / "litmodel" / "v2" / "checkpoints" / "best.ckpt").touch()
    chosen = user_cli("test", *mine)
    assert chosen.returncode == 0, chosen.output
    recorded = yaml.safe_load((project / "runs" / "litmodel" / "v1" / "test" / "config.yaml").read_text())
    assert recorded["model"]["class_path"] == "usermods.LitModel"


def test_best_checkpoint_by_val_loss_or_the_chosen_metric(project, user_cli):
    regressor = ["--model", "usermods.Regressor", "--data", "usermods.RegressionData", *QUICK]
    assert user_cli("fit", *regressor, "--run", "r").returncode == 0
    assert (project / "runs" / "regressor" / "r" / "checkpoints" / "best.ckpt").is_file()
    other = ["--model", "usermods.OtherMetricsModel", "--data", "usermods.MyDataModule", *QUICK]
    no_best = user_cli("fit", *other, "--run", "o1")
    assert no_best.returncode == 0, no_best.output
    folder = project / "runs" / "othermetricsmodel"
    assert not (folder / "o1" / "checkpoints" / "best.ckpt").exists()
    assert (folder / "o1" / "checkpoints" / "last.ckpt").is_file() and "--monitor" in no_best.stderr
    # said after the first validation, not only once the whole run has trained
    assert "has not logged 'val_loss' (it logs: " in no_best.stderr and "valid/accuracy" in no_best.stderr
    chosen = user_cli("fit", *other, "--run", "o2", "--monitor", "valid/accuracy", "--monitor_mode", "max")
    assert chosen.returncode == 0, chosen.output
    best = torch.load(folder / "o2" / "checkpoints" / "best.ckpt", weights_only=True)
    state = next(v for k, v in best["callbacks"].items() if k.startswith("RunCheckpoint"))
    assert state["monitor"] == "valid/accuracy" and state["best_model_score"] is not None
    # no validation loop, a misspelt --monitor: refused after the first epoch, with the closest logged name
    # (it trained on with no best.ckpt and its early stopping moved onto the typo)
    no_validation = ["--model", "usermods.NoValidationModel", "--data", "usermods.TrainOnlyData", *QUICK]
    typo = user_cli("fit", *no_validation, "--run", "nv", "--monitor", "train_los")
    assert typo.returncode == 2, typo.output
    error = "error: --monitor train_los: the model logs no such metric (it logs: train_loss; did you mean train_loss?)"
    assert error in typo.stderr and "the epoch it trained is in checkpoints/last.ckpt" in typo.stderr, (
        typo.stderr
    )
    fixed = user_cli("fit", *no_validation, "--run", "nv", "--monitor", "train_loss", "--resume", "auto")
    assert fixed.returncode == 0 and "resuming from" in fixed.stderr, fixed.output
    # an epoch-level training metric is logged after the validation's end, by the epoch's end: taken
    epoch_level = user_cli("fit", "--model", "usermods.EpochTrainAccuracy", "--data", "usermods.MyDataModule",
                           *QUICK, "--run", "acc", "--monitor", "train_acc")  # fmt: skip
    assert epoch_level.returncode == 0, epoch_level.output
    assert (project / "runs" / "epochtrainaccuracy" / "acc" / "checkpoints" / "best.ckpt").is_file()
    # a validation metric waits for the first validation, which may come after the first epoch
    later = user_cli("fit", "--model", "usermods.LitModel", "--data", "usermods.MyDataModule", *QUICK, "--run", "v2",
                     "--trainer.check_val_every_n_epoch", "2", "--monitor", "val_loss")  # fmt: skip
    assert later.returncode == 0, later.output
    assert (project / "runs" / "litmodel" / "v2" / "checkpoints" / "best.ckpt").is_file()
    # the packaged default's val_loss, not typed: a note after the first epoch, and with the closing lines
    default = user_cli("fit", *no_validation, "--run", "nv2")  # --monitor val_loss: a metric of another stage
    assert default.returncode == 0, default.output
    note = "(it logs: train_loss; --monitor train_loss picks it); until it does, the run keeps checkpoints/last.ckpt"
    assert note in default.stderr and "and early stopping on val_loss never stops it" in default.stderr
    assert "logged no 'val_loss' (see the note above), so the run has checkpoints/last.ckpt" in default.stderr
    best = user_cli("predict", "--run", "nv2", "--ckpt_path", "best")
    assert best.returncode == 2 and "has last.ckpt but no best.ckpt" in best.stderr, best.output
    assert "use --ckpt_path last" in best.stderr


def test_a_run_name_that_does_not_exist_lists_the_runs_that_do(trained, user_cli):
    result = user_cli("test", "--run", "zz")
    assert result.returncode == 2, result.output
    assert "--run zz: no such run under runs (runs there: litmodel/p1)" in result.stderr
    short = user_cli("test", "--run", "p2")  # one character off a short name
    assert "--run p2: no such run under runs (did you mean p1 (litmodel/p1)? runs there:" in short.stderr
    typo = user_cli("test", "--run", "p11")
    assert "--run p11: no such run under runs (did you mean p1 (litmodel/p1)? runs there:" in typo.stderr


def test_a_run_is_found_by_experiment_slash_run_as_litforge_lists_it(trained, user_cli):
    """The "runs there: litmodel/p1" of an error, pasted back: it was refused as no plain name."""
    for command in (("test", "--run", "litmodel/p1"), ("export", "--run=litmodel/p1", "--format", "onnx")):
        result = user_cli(*command)
        assert result.returncode == 0, result.output
    assert (trained / "test").is_dir() and (trained / "export" / "model.onnx").is_file()
    experiment = user_cli("test", "--run", "litmodel")  # the experiment's name: how to say either
    assert experiment.returncode == 2, experiment.output
    assert (
        "litmodel is an experiment: --run litmodel/p1 picks one of its runs, --experiment litmodel the newest"
        in (experiment.stderr)
    )
    other = user_cli("test", "--experiment", "classifier", "--run", "litmodel/p1")  # two experiments named
    assert other.returncode == 2 and "and --experiment says classifier" in other.stderr, other.output


def test_a_datamodule_with_fit_loaders_only_exports_on_its_data_and_predict_says_what_to_add(user_cli):
    """Most datamodules define no predict_dataloader (and set up their sets for "fit" only): export took
    random inputs and refused LitModel, which has no example_input_array; predict blamed trainer settings."""
    fit = user_cli(
        "fit", "--model", "usermods.LitModel", "--data", "usermods.FitLoadersOnly", *QUICK, "--run", "f"
    )
    assert fit.returncode == 0, fit.output
    export = user_cli("export", "--run", "f", "--format", "onnx")
    assert export.returncode == 0 and "random inputs" not in export.stderr, export.output
    predict = user_cli("predict", "--run", "f")
    assert predict.returncode == 2, predict.output
    assert "predict: the datamodule (or model) defines no predict_dataloader(), which predict runs" in (
        predict.stderr
    )
    assert "litforge predict --artifact <run>/export --input rows.csv" in predict.stderr


def test_what_on_save_checkpoint_stores_either_loads_back_or_stops_the_fit_at_its_first_save(
    project, user_cli
):
    """A path and numpy values (fine-tuning code's usual extras) made every checkpoint unreadable, and
    --resume auto then trained the run again over them; another class is now refused when first saved."""
    plain = user_cli("fit", "--model", "usermods.SavesPlainData", "--data", "usermods.MyDataModule", *QUICK,
                     "--run", "plain")  # fmt: skip
    assert plain.returncode == 0, plain.output
    again = user_cli("fit", "--run", "plain", "--resume", "auto", "--trainer.max_epochs", "3")
    assert again.returncode == 0 and "resuming from" in again.stderr, again.output
    assert user_cli("test", "--run", "plain").returncode == 0
    own = user_cli(
        "fit", "--model", "usermods.SavesAClass", "--data", "usermods.MyDataModule", *QUICK, "--run", "own"
    )
    assert own.returncode == 2, own.output
    assert (
        "litforge: error: the checkpoint holds meta (usermods.RunNotes): objects litforge cannot load back"
        in (own.stderr)
    )
    assert not list((project / "runs" / "savesaclass" / "own").glob("checkpoints/*.ckpt"))


def test_the_weights_swa_averages_in_as_training_ends_are_in_last_ckpt(project, user_cli):
    """StochasticWeightAveraging copies its average into the module in on_train_end, after the last save:
    test, export and serve took the weights from before averaging, and nothing said so."""
    fit = user_cli(
        "fit", "--model", "usermods.SWAModel", "--data", "usermods.MyDataModule", *QUICK, "--run", "s"
    )
    assert fit.returncode == 0, fit.output
    assert (
        "StochasticWeightAveraging copied its averaged weights into the model as training ended" in fit.stderr
    )
    last = torch.load(project / "runs" / "swamodel" / "s" / "checkpoints" / "last.ckpt", weights_only=True)
    (average,) = [
        state["average_model_state"] for name, state in last["callbacks"].items() if "Stochastic" in name
    ]
    assert all(torch.equal(tensor, average[name]) for name, tensor in last["state_dict"].items())


def test_a_model_of_two_inputs_exports_on_a_batch_of_its_data_without_an_example(project, user_cli):
    """forward(x_cat, x_num) with no example_input_array: export asked for one, though check already took
    the inputs from the batch."""
    fit = user_cli(
        "fit", "--model", "usermods.TabularNoExample", "--data", "usermods.TabularData", *QUICK, "--run", "t"
    )
    assert fit.returncode == 0, fit.output
    export = user_cli("export", "--run", "t", "--format", "onnx")
    assert export.returncode == 0, export.output
    record = json.loads((project / "runs" / "tabularnoexample" / "t" / "export" / "export.json").read_text())
    assert [(i["name"], i["dtype"], i["shape"]) for i in record["inputs"]] == [
        ("x_cat", "int64", ["batch", 2]),
        ("x_num", "float32", ["batch", 4]),
    ]


def test_a_file_a_path_argument_names_moved_after_training_is_pointed_at_by_a_flag(project, user_cli):
    """backbone.pt moved after training: export had no way to say where it is now (no --model flags), and
    the errors did not name the argument."""
    import usermods

    torch.save(usermods.LitModel().model.state_dict(), project / "init.pt")
    fit = user_cli(
        "fit", "--model", "usermods.StartsFromAFile", "--data", "usermods.MyDataModule", *QUICK, "--run", "f"
    )
    assert fit.returncode == 0, fit.output
    (project / "weights").mkdir()
    (project / "init.pt").rename(project / "weights" / "init.pt")
    hint = "(--model.init_path names it: --model.init_path PATH gives the file's path)"
    for command in (("export", "--run", "f", "--format", "onnx"), ("test", "--run", "f")):
        refused = user_cli(*command)
        assert refused.returncode == 2 and hint in refused.stderr, refused.output
        pointed = user_cli(*command, "--model.init_path", "weights/init.pt")
        assert pointed.returncode == 0, pointed.output
    typo = user_cli("export", "--run", "f", "--model.init_pth", "weights/init.pt")
    assert (
        typo.returncode == 2
        and "StartsFromAFile has no argument 'init_pth' (did you mean init_path?)" in typo.stderr
    )


def test_a_second_predict_says_it_replaces_the_runs_predictions(trained, user_cli):
    """predict --data.csv_path new.csv replaced a run's 200-row predictions.csv with 10 rows, silently."""
    first = user_cli("predict", "--run", "p1")
    assert first.returncode == 0 and "replaces an earlier" not in first.stderr, first.output
    again = user_cli("predict", "--run", "p1", "--data.batch_size", "8")
    assert again.returncode == 0, again.output
    assert "predictions.csv replaces an earlier predictions.csv of this run (48 rows; now 48)" in again.stderr


def test_check_of_a_run_checks_that_runs_model(trained, user_cli):
    """``check --run NAME`` builds the run's own model and data (it used to check the packaged default)."""
    checked = user_cli("check", "--run", "p1", "--only", "forward,gradients")
    assert checked.returncode == 0, checked.output
    assert "LitModel on MyDataModule" in checked.stdout
    assert "checking the model and data of runs/litmodel/p1/config.yaml" in checked.stderr
    by_file = user_cli(
        "check", "--ckpt_path", str(trained / "checkpoints" / "last.ckpt"), "--only", "forward"
    )
    assert by_file.returncode == 0 and "LitModel on MyDataModule" in by_file.stdout, by_file.output
    missing = user_cli("check", "--run", "p2", "--only", "forward")
    assert missing.returncode == 2 and "--run p2: no such run" in missing.stderr, missing.output


def test_reusing_a_run_name_needs_resume_or_overwrite(trained, user_cli):
    before = (trained / "checkpoints" / "last.ckpt").read_bytes()
    refused = user_cli("fit", *SEED_MODEL, *QUICK, "--run", "p1")
    assert refused.returncode == 2 and "--resume auto" in refused.stderr and "--overwrite" in refused.stderr
    assert "first checkpoint" not in refused.stderr
    assert (trained / "checkpoints" / "last.ckpt").read_bytes() == before
    # a fit killed before its first checkpoint left its config and logs: said, and what --resume auto does
    early = trained.parent / "killed-early"
    early.mkdir()
    (early / "config.yaml").write_text((trained / "config.yaml").read_text())
    unsaved = user_cli("fit", *SEED_MODEL, *QUICK, "--run", "killed-early")
    assert unsaved.returncode == 2 and (
        "already holds a run (stopped before its first checkpoint): continue it with --resume auto (it starts "
        "again from step 0)" in unsaved.stderr
    ), unsaved.stderr
    shutil.rmtree(early)  # the module's other tests list this experiment's runs
    (trained / "export").mkdir(exist_ok=True)  # as `litforge export` leaves it: the note names it too
    replaced = user_cli(
        "fit",
        *SEED_MODEL,
        *QUICK,
        "--run",
        "p1",
        "--overwrite",
        "--model.lr",
        "0.01",  # bare, as the hint reads
    )
    assert replaced.returncode == 0, replaced.output
    assert f"--overwrite replaces run {trained.relative_to(trained.parents[2])}" in replaced.stderr
    assert "are removed, and its export/" in replaced.stderr and not (trained / "export").exists()
    assert sorted(p.name for p in (trained / "checkpoints").glob("*.ckpt") if "-v" in p.name) == []
    last = torch.load(trained / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["hyper_parameters"]["lr"] == 0.01


def test_resume_by_run_name_alone_continues_that_run_with_its_config(trained, project, user_cli):
    resumed = user_cli("fit", "--run", "p1", "--resume", "auto", "--model.lr", "0.5")
    assert resumed.returncode == 0, resumed.output
    assert "--resume continues runs/litmodel/p1 with its config.yaml" in resumed.stderr
    assert "already finished" in resumed.output
    # nothing is built for a finished run: no notes about what --model.lr would replace, no seed, no trainer
    assert "--model.lr" not in resumed.output and "Seed set" not in resumed.output
    assert "GPU available" not in resumed.output
    assert not (project / "runs" / "classifier").exists()  # not the packaged digits model in a new folder
    # a misspelt run name would start the packaged classifier under the typo: refused, with the real one
    typo = user_cli("fit", "--run", "pp1", "--resume", "auto")
    assert typo.returncode == 2 and "--run pp1: no such run to resume (did you mean p1," in typo.stderr
    assert "nothing was saved under pp1: to start it, repeat the command that names your model" in typo.stderr
    one_letter = user_cli("fit", "--run", "pl", "--resume", "auto")  # a short name, one letter off
    assert (
        one_letter.returncode == 2
        and "--run pl: no such run to resume (did you mean p1," in one_letter.stderr
    )
    assert not (project / "runs" / "classifier").exists()
    shutil.copytree(trained, project / "runs" / "other" / "p1")
    ambiguous = user_cli("fit", "--run", "p1", "--resume", "auto")
    assert ambiguous.returncode == 2, ambiguous.output
    assert "--run p1 exists in several experiments (litmodel, other): add --experiment" in ambiguous.stderr


def test_a_class_named_without_its_module_is_found_in_the_working_folder(project, user_cli):
    result = user_cli("fit", "--model", "LitModel", "--data", "MyDataModule")
    assert result.returncode == 2, result.output
    assert (
        "unknown class 'LitModel' (did you mean usermods.LitModel, from the working folder?)" in result.stderr
    )


def test_a_config_file_that_names_no_model_layers_on_the_runs_own_config(trained, project, user_cli):
    """``-c more.yaml`` of trainer or init-arg settings only: resume, test and a new fit under the run's name
    use the run's model and data with the file on top, never the packaged classifier."""
    (project / "more.yaml").write_text("trainer:\n  max_epochs: 3\n")
    resumed = user_cli("fit", "--run", "p1", "--resume", "auto", "-c", "more.yaml")
    assert resumed.returncode == 0, resumed.output
    assert "--resume continues runs/litmodel/p1 with its config.yaml" in resumed.stderr
    assert torch.load(trained / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 2  # 3 epochs
    (project / "small.yaml").write_text("model:\n  init_args:\n    dropout: 0.0\n")
    tested = user_cli("test", "--run", "p1", "-c", "small.yaml")
    assert tested.returncode == 0, tested.output
    assert "test done" in tested.output
    fresh = user_cli("fit", "--run", "p1", "-c", "more.yaml")  # a new fit, not a resume: refused as ever
    assert fresh.returncode == 2, fresh.output
    assert "--run p1 is a run of experiment litmodel; this command names no model" in fresh.stderr
    assert not (project / "runs" / "classifier").exists()


def test_last_checkpoint_is_the_final_state_when_stopping_mid_epoch(project, user_cli):
    result = user_cli("fit", *SEED_MODEL, *QUICK, "--trainer.max_steps", "6", "--run", "steps")
    assert result.returncode == 0, result.output
    last = torch.load(project / "runs/litmodel/steps/checkpoints/last.ckpt", weights_only=True)
    assert last["global_step"] == 6


def test_an_exception_in_user_code_is_a_failed_job_with_the_users_frame(project, user_cli):
    result = user_cli("fit", "--model", "usermods.Exploding", "--data", "usermods.MyDataModule", *QUICK)
    assert result.returncode == 1, result.output
    assert "fit failed: RuntimeError: the user's training_step exploded" in result.stderr
    assert "usermods.py" in result.stderr and "in training_step" in result.stderr
    assert not (project / "runs" / "exploding").exists()  # nothing trained, nothing left behind
    debug = user_cli(
        "fit", "--model", "usermods.Exploding", "--data", "usermods.MyDataModule", *QUICK, "--debug"
    )
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr


@pytest.mark.parametrize(
    ("model", "needle"),
    [
        ("nomodule.LitModel", "No module named 'nomodule'"),
        ("usermods.Missing", "has no attribute 'Missing'"),
        ("collections.OrderedDict", "is not a LightningModule subclass"),
    ],
)
def test_a_class_path_that_cannot_be_used_says_why(user_cli, model, needle):
    result = user_cli("fit", "--model", model, "--data", "usermods.MyDataModule")
    assert result.returncode == 2 and needle in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_missing_module_names_the_folder_litforge_runs_in_not_the_configs(project, user_cli):
    """jsonargparse reads a config from inside its folder; the hint names where modules are imported from."""
    (project / "configs").mkdir()
    (project / "configs" / "mine.yaml").write_text("model:\n  class_path: mymodels.LitModel\n")
    result = user_cli("fit", "--config", "configs/mine.yaml")
    assert result.returncode == 2, result.output
    assert f"no mymodels.py in the folder litforge runs in, {project}:" in result.stderr
    assert "or add that folder to PYTHONPATH" in result.stderr
    typo = user_cli("fit", "--model", "usermds.LitModel", "--data", "usermods.MyDataModule")
    assert typo.returncode == 2 and "did you mean usermods, usermods.py?" in typo.stderr, typo.output


@pytest.mark.parametrize(
    ("flag", "needle"),
    [
        (
            "--model.hiden_dim",
            "--model.hiden_dim: LitModel has no argument 'hiden_dim' (did you mean hidden_dim?)",
        ),
        (
            "--data.batchsize",
            "--data.batchsize: MyDataModule has no argument 'batchsize' (did you mean batch_size?)",
        ),
        (
            "--model.zzz",
            "--model.zzz: LitModel has no argument 'zzz' (it takes: input_dim, hidden_dim, output_dim",
        ),
        (  # a dash for the underscore: jsonargparse's bare "Option 'hidden-dim' is not accepted"
            "--model.hidden-dim",
            "--model.hidden-dim: LitModel has no argument 'hidden-dim' (did you mean hidden_dim?)",
        ),
    ],
)
def test_a_misspelt_init_argument_names_the_flag_the_class_and_the_closest_name(user_cli, flag, needle):
    result = user_cli("fit", *SEED_MODEL, flag, "8")
    assert result.returncode == 2 and needle in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_help_shows_the_defaults_litforge_uses(user_cli):
    wide = {"COLUMNS": "400"}  # one line per option description
    fit_help = user_cli("fit", "--help", env=wide).stdout
    assert "default: 42)" in fit_help and "EarlyStopping" in fit_help
    max_epochs = next(line for line in fit_help.splitlines() if "reached" in line and "max_epochs" in line)
    assert "default: 30)" in max_epochs and "1000" not in max_epochs  # not Lightning's own default
    predict_help = user_cli("predict", "--help", env=wide).stdout
    assert "--artifact" in predict_help and "--input" in predict_help


def _fitted_predictions(project, user_cli, model: str) -> list[dict[str, str]]:
    """``usermods.<model>`` fitted for one epoch on MyDataModule, then predicted: predictions.csv's rows."""
    classes = ["--model", f"usermods.{model}", "--data", "usermods.MyDataModule"]
    assert user_cli("fit", *classes, *QUICK, "--trainer.max_epochs", "1", "--run", "p").returncode == 0
    predicted = user_cli("predict", *classes, "--run", "p")
    assert predicted.returncode == 0, predicted.output
    return csv_rows(project / "runs" / model.lower() / "p" / "predictions.csv")


def test_a_predict_step_dict_of_tensors_gets_a_column_per_key(project, user_cli):
    """A multi-task style predict_step, {"scores": (B, 3), "top": (B,)}: columns scores_0..2 and top, as
    returned, one row per sample."""
    rows = _fitted_predictions(project, user_cli, "DictPredictModel")
    assert list(rows[0]) == ["row", "scores_0", "scores_1", "scores_2", "top"]
    scores = [[float(r[f"scores_{i}"]) for i in range(3)] for r in rows]
    assert [int(r["top"]) for r in rows] == [max(range(3), key=s.__getitem__) for s in scores]

    # a tuple of heads: each is written, named as `litforge export` names them
    rows = _fitted_predictions(project, user_cli, "TuplePredictModel")
    assert list(rows[0]) == ["row", "output_0_0", "output_0_1", "output_0_2", "output_1"]
    for row in rows:
        total = sum(float(row[f"output_0_{i}"]) for i in range(3))
        assert float(row["output_1"]) == pytest.approx(total, rel=1e-4, abs=1e-5)


@pytest.mark.parametrize(
    ("model", "data", "code", "needle"),
    [
        (
            "DictWithTextPredictModel",
            "MyDataModule",
            2,
            "predict_step returned a dict with keys ['scores', 'source']",
        ),
        (
            "DefaultPredictStepModel",
            "MyDataModule",
            1,
            "Lightning's default predict_step passes the whole batch, a list of 2, to forward",
        ),
        (
            "DefaultPredictDictModel",
            "DictData",
            1,
            "passes the whole batch, a dict with keys ['features', 'target'], to forward; define predict_step "
            "to pick forward's input, e.g. `return self(batch['features'])`",
        ),
    ],
)
def test_a_predict_step_that_predictions_csv_cannot_take_says_what_to_do(
    project, user_cli, model, data, code, needle
):
    classes = ["--model", f"usermods.{model}", "--data", f"usermods.{data}"]
    assert user_cli("fit", *classes, *QUICK, "--trainer.max_epochs", "1", "--run", "p").returncode == 0
    predicted = user_cli("predict", *classes, "--run", "p")
    assert predicted.returncode == code and needle in predicted.stderr, predicted.output
    assert predicted.stderr.count("litforge: error:") == 1
    assert not (project / "runs" / model.lower() / "p" / "predictions.csv").exists()
    assert not (project / "runs" / model.lower() / "p" / "predict").exists()  # no config of a failed predict


def test_a_resume_that_would_run_a_schedule_past_its_end_is_refused_and_leaves_the_run(project, user_cli):
    """OneCycleLR built for the run's 8 steps: --resume auto with more epochs would step it past its end
    (torch raises at step 9); refused in one line before a step, the finished run as it was."""
    classes = ["--model", "usermods.OneCycleModel", "--data", "usermods.MyDataModule", *QUICK]
    assert user_cli("fit", *classes, "--run", "c").returncode == 0
    run = project / "runs" / "onecyclemodel" / "c"
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"}

    longer = user_cli("fit", *classes, "--trainer.max_epochs", "3", "--run", "c", "--resume", "auto")
    assert longer.returncode == 2, longer.output
    assert "the checkpoint's OneCycleLR was built for 8 steps and this fit asks for 12" in longer.stderr
    assert longer.stderr.count("litforge: error:") == 1 and "Traceback" not in longer.output
    assert "now holds them" not in longer.stderr  # the config.yaml it was about to replace is put back
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"} == before
    assert not (run / "checkpoints" / "on_exception.ckpt").exists()


def test_a_setting_lightning_refuses_while_the_users_code_reads_the_trainer_is_one_line_exit_2(user_cli):
    """OneCycleModel's configure_optimizers reads trainer.estimated_stepping_batches, where Lightning finds
    limit_train_batches below one batch: the setting is wrong, not the user's code (it was exit 1 with a
    traceback ending in configure_optimizers)."""
    model = ["--model", "usermods.OneCycleModel", "--data", "usermods.MyDataModule"]
    result = user_cli("fit", *model, "--trainer.limit_train_batches", "0.01", "--trainer.max_epochs", "1")
    assert result.returncode == 2, result.output
    assert "trainer settings: MisconfigurationException: You requested to check 0.01" in result.stderr
    assert 'File "' not in result.stderr


def test_a_stream_without_a_length_gets_a_note_that_says_what_its_epoch_waits_for(user_cli):
    """An endless IterableDataset trained forever with no word: no validation, no epoch-end checkpoint."""
    stream = [
        "--model",
        "usermods.NoValidationModel",
        "--data",
        "usermods.StreamData",
        "--trainer.max_epochs",
        "1",
    ]
    result = user_cli("fit", *stream, "--trainer.accelerator", "cpu")
    assert result.returncode == 0, result.output
    assert (
        "litforge: note: the training loader has no length, so an epoch ends only when its stream does"
        in (result.stderr)
    )
    bounded = user_cli("fit", *stream, "--trainer.limit_train_batches", "2", "--trainer.accelerator", "cpu")
    assert bounded.returncode == 0 and "has no length" not in bounded.stderr, bounded.output


def test_a_config_of_model_arguments_alone_says_the_trainer_defaults_are_lightnings(project, user_cli):
    """A --config replaces the packaged trainer settings: a file of one lr switched to 1000 epochs, no
    EarlyStopping and seed 0 without a word. The note names the defaults that apply, not one typed."""
    (project / "small.yaml").write_text("model:\n  init_args:\n    lr: 0.05\n")
    model = ["--model", "usermods.LitModel", "--data", "usermods.MyDataModule"]
    printed = user_cli("fit", *model, "-c", "small.yaml", "--print_config")
    assert printed.returncode == 0, printed.output
    assert yaml.safe_load(printed.stdout)["trainer"]["max_epochs"] is None  # Lightning's, as documented
    short = ["--trainer.max_steps", "2", "--trainer.limit_val_batches", "1", "--trainer.accelerator", "cpu"]
    fitted = user_cli("fit", *model, "-c", "small.yaml", *short, "--run", "small")
    assert fitted.returncode == 0, fitted.output
    said = re.search(
        r"litforge: note: small\.yaml sets no trainer: Lightning's trainer defaults apply \(no EarlyStopping, "
        r"seed (\d+)\), not the packaged default's",
        fitted.stderr,
    )
    assert said, fitted.stderr  # the seed it names is the one the run used (0 in a fresh process)
    recorded = yaml.safe_load((project / "runs" / "litmodel" / "small" / "config.yaml").read_text())
    assert recorded["seed_everything"] == int(said.group(1))
    (project / "small.yaml").write_text("model:\n  init_args:\n    lr: 0.05\ntrainer:\n  max_epochs: 3\n")
    assert "sets no trainer" not in user_cli("fit", *model, "-c", "small.yaml", *short).stderr
    (project / "bad.yaml").write_text("model:\n  init_args:\n    lrr: 0.05\n")
    refused = user_cli("fit", *model, "-c", "bad.yaml")  # a config's mistake is one line, with no note first
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.output


def test_extending_a_run_whose_lambda_schedule_is_sized_by_the_fit_says_the_schedule_changes(user_cli):
    """transformers' linear warmup/decay (a LambdaLR sized by estimated_stepping_batches): extended by an
    epoch, the rate that had decayed to 0 jumped back up, silently (its lambda is not in the checkpoint)."""
    model = ["--model", "usermods.LinearDecayModel", "--data", "usermods.MyDataModule", *QUICK, "--run", "d"]
    assert user_cli("fit", *model).returncode == 0
    same = user_cli("fit", *model, "--resume", "auto", "--trainer.max_epochs", "2")  # finished: left alone
    assert "LambdaLR" not in same.stderr
    longer = user_cli("fit", *model, "--resume", "auto", "--trainer.max_epochs", "3")
    assert longer.returncode == 0, longer.output
    assert (
        "litforge: note: the checkpoint's LambdaLR was at lr 0 at step 8, the one configure_optimizers() "
        in (longer.stderr)
    )
