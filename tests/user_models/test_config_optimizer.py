"""LightningCLI's ``optimizer:`` and ``lr_scheduler:`` (``--optimizer``, ``--lr_scheduler``) in litforge: a
config written for LightningCLI trains with the optimizer it names, over every parameter the user's module
has when training starts, and fit, resume, check and tune all see the same optimizer."""

from __future__ import annotations

import copy

import pytest
import torch
import yaml
from user_helpers import QUICK

from litforge.errors import UsageError

OPTIMIZER_CONFIG = """\
optimizer:
  class_path: torch.optim.SGD
  init_args: {lr: 0.05, momentum: 0.9}
lr_scheduler:
  class_path: torch.optim.lr_scheduler.StepLR
  init_args: {step_size: 1, gamma: 0.5}
"""
LAYERS_IN_CONFIGURE_MODEL = ["--model", "usermods.LayersInConfigureModel", "--data", "usermods.MyDataModule"]


def _first_group(checkpoint) -> dict:
    return torch.load(checkpoint, weights_only=True)["optimizer_states"][0]["param_groups"][0]


def test_a_lightningcli_config_trains_with_its_optimizer_and_a_resume_takes_a_new_lr(project, user_cli):
    """The model builds its layers in configure_model() (Lightning's pattern for large models): an optimizer
    built when the config is read, as LightningCLI builds it, would hold none of them."""
    (project / "opt.yaml").write_text(OPTIMIZER_CONFIG)
    args = [*LAYERS_IN_CONFIGURE_MODEL, "-c", "opt.yaml", "--run", "r"]
    result = user_cli("fit", *args, *QUICK)
    assert result.returncode == 0, result.output
    assert (
        "litforge: note: the config's optimizer torch.optim.SGD and lr_scheduler "
        "torch.optim.lr_scheduler.StepLR replace LayersInConfigureModel.configure_optimizers()"
    ) in result.stderr
    assert "will be overridden" not in result.output  # Lightning's warning: the note says it
    run = project / "runs" / "layersinconfiguremodel" / "r"
    group = _first_group(run / "checkpoints" / "last.ckpt")
    assert group["momentum"] == 0.9 and group["params"] == [0, 1, 2, 3]  # SGD over all 4 tensors
    assert group["lr"] == pytest.approx(0.05 * 0.5**2)  # StepLR after 2 epochs
    recorded = yaml.safe_load((run / "config.yaml").read_text())
    assert recorded["optimizer"]["class_path"] == "torch.optim.SGD"

    # A resume with a new lr trains with it (not the checkpoint's), the schedule keeping its progress.
    extended = ["--resume", "auto", "--trainer.max_epochs", "3", "--optimizer.lr", "0.2"]
    result = user_cli("fit", *args, *QUICK[2:], *extended)
    assert result.returncode == 0, result.output
    assert "the optimizer takes initial_lr=0.2" in result.stderr
    group = _first_group(run / "checkpoints" / "last.ckpt")
    assert group["initial_lr"] == 0.2 and group["lr"] == pytest.approx(0.2 * 0.5**3)

    # test reads the run's config.yaml: it builds the optimizer, as LightningCLI does, without a note
    tested = user_cli("test", "--run", "r", "--trainer.limit_test_batches", "2")
    assert tested.returncode == 0, tested.output
    assert "configure_optimizers" not in tested.stderr


def test_a_copy_of_the_model_gets_an_optimizer_over_its_own_parameters():
    """litforge check steps deep copies of the model: each must step its own parameters."""
    from litforge.engine.api import instantiate_model_and_data

    model, _, _ = instantiate_model_and_data(
        ["--model", "usermods.LitModel", "--data", "usermods.MyDataModule", "--optimizer", "SGD"]
    )
    twin = copy.deepcopy(model)
    optimizer = twin.configure_optimizers()
    assert isinstance(optimizer, torch.optim.SGD)
    stepped = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert stepped == {id(p) for p in twin.parameters()}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--optimizer.lr", "0.2"], "--optimizer.lr: no optimizer class is given for it (add --optimizer "),
        (
            ["--optimizer", "SGD", "--optimizer.lrr", "0.2"],
            "--optimizer.lrr: SGD has no argument 'lrr' (did ",
        ),
        (
            ["--lr_scheduler", "StepLR", "--lr_scheduler.step_size", "1"],
            "lr_scheduler: it needs an optimizer",
        ),
    ],
)
def test_optimizer_mistakes_are_named(args, message):
    from litforge.engine.api import parse_fit_config

    with pytest.raises(UsageError) as raised:
        parse_fit_config(["--model", "usermods.LitModel", "--data", "usermods.MyDataModule", *args])
    assert str(raised.value).startswith(message)


def test_a_class_typed_after_its_arguments_takes_them():
    from litforge.engine.api import parse_fit_config

    fit = parse_fit_config(["--optimizer.lr", "0.2", "--optimizer", "SGD"])
    assert fit.config.optimizer.class_path == "torch.optim.SGD"
    assert fit.config.optimizer.init_args.lr == 0.2


def test_tune_searches_the_configs_optimizer_or_says_how_to_give_one():
    from litforge.tune.fit_config import SearchConfig
    from litforge.tune.space import parse_space

    space = parse_space(
        {"metric": "val_loss", "params": {"optimizer.lr": {"type": "float", "low": 0.01, "high": 0.1}}}
    )
    search = SearchConfig(["--optimizer", "SGD"], space, seed=0)
    assert search.resolve({"optimizer.lr": 0.03}).optimizer.init_args.lr == 0.03
    with pytest.raises(
        UsageError, match=r"params\.optimizer\.lr: .*it gives no optimizer: .* add --optimizer"
    ):
        SearchConfig([], space, seed=0)
