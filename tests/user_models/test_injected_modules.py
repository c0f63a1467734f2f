"""A module whose network and optimizer are injected (``--model.net usermods.MLP --model.optimizer
torch.optim.SGD``, Lightning's CLI pattern): exported from its checkpoint with the injected classes rebuilt,
served from that export, and told exactly which nested flag is wrong."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from user_helpers import QUICK

INJECTED = [
    "--model", "usermods.InjectedNetModel", "--model.net", "usermods.MLP", "--model.net.hidden", "8",
    "--model.optimizer", "torch.optim.SGD", "--model.optimizer.lr", "0.05", "--data", "usermods.MyDataModule",
]  # fmt: skip


def test_an_injected_network_exports_from_its_checkpoint_or_its_config_and_predicts(project, user_cli):
    fit = user_cli("fit", *INJECTED, *QUICK, "--run", "di")
    assert fit.returncode == 0, fit.output
    run = project / "runs" / "injectednetmodel" / "di"
    # a typo in the injected class's argument, its class named by the run's config.yaml, not on this line
    typo = user_cli("test", "--run", "di", "--model.net.hiden", "3")
    assert typo.returncode == 2, typo.output
    assert "--model.net.hiden: MLP has no argument 'hiden' (did you mean hidden?)" in typo.stderr
    exported = user_cli("export", "--ckpt", str(run / "checkpoints" / "last.ckpt"), "--format", "onnx")
    assert exported.returncode == 0, exported.output
    assert json.loads((run / "export" / "export.json").read_text())["inputs"][0]["shape"][-1] == 16
    (project / "rows.csv").write_text("\n".join([",".join(["0.5"] * 16), ",".join(["-1"] * 16)]))
    predicted = user_cli("predict", "--artifact", str(run / "export"), "--input", "rows.csv")
    assert predicted.returncode == 0, predicted.output
    assert len((project / "rows.predictions.csv").read_text().splitlines()) == 3  # a header and two rows
    # a copy outside the run folder: its hparams lack net (ignored), so the run's config is asked for
    shutil.copy(run / "checkpoints" / "last.ckpt", project / "copied.ckpt")
    refused = user_cli("export", "--ckpt", "copied.ckpt", "--out", "copied")
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.output
    assert "nothing says how to build usermods.InjectedNetModel's net" in refused.stderr
    copy = ["export", "--ckpt", "copied.ckpt", "--out", "copied", "--format", "onnx", "--config"]
    assert user_cli(*copy, str(run / "config.yaml")).returncode == 0

    # an injected class path outside its annotation is never built (a config naming subprocess.Popen)
    config = yaml.safe_load((run / "config.yaml").read_text())
    marker = project / "pwned"
    config["model"]["init_args"]["net"] = {
        "class_path": "subprocess.Popen",
        "init_args": {"args": ["touch", str(marker)]},
    }
    (project / "planted.yaml").write_text(yaml.safe_dump(config))
    planted = user_cli(*copy, "planted.yaml")
    assert planted.returncode == 2, planted.output
    assert "subprocess.Popen does not correspond to a subclass of Module" in planted.stderr
    assert not marker.exists()


@pytest.mark.parametrize(
    ("flag", "value", "needle"),
    [
        ("--model.optimizer.lr", "abc", "--model.optimizer.lr: expected float, got 'abc'"),
        (
            "--model.optimizer.lrr",
            "0.1",
            "--model.optimizer.lrr: SGD has no argument 'lrr' (did you mean lr?)",
        ),
        ("--model.net.hiden", "4", "--model.net.hiden: MLP has no argument 'hiden' (did you mean hidden?)"),
        (
            "--model.optimizer",
            "torch.nn.Linear",
            "--model.optimizer: 'torch.nn.Linear' is not a Optimizer subclass",
        ),
    ],
)
def test_a_wrong_nested_flag_is_named_with_its_class(user_cli, flag, value, needle):
    result = user_cli("fit", *INJECTED, flag, value, "--print_config")
    assert result.returncode == 2 and needle in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_missing_injected_argument_names_its_flag(user_cli):
    result = user_cli("fit", "--model", "usermods.InjectedNetModel", "--data", "usermods.MyDataModule")
    assert result.returncode == 2, result.output
    assert "--model.net is required: InjectedNetModel.__init__ takes net with no default" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_typo_inside_an_injected_class_in_a_config_file_names_the_file_key_and_class(project, user_cli):
    (project / "my.yaml").write_text(
        "model:\n  class_path: usermods.InjectedNetModel\n  init_args:\n"
        "    net:\n      class_path: usermods.MLP\n      init_args:\n        hiden: 4\n"
        "data:\n  class_path: usermods.MyDataModule\n"
    )
    result = user_cli("fit", "--config", "my.yaml", "--print_config")
    assert result.returncode == 2, result.output
    assert (
        "my.yaml: model.init_args.net.init_args.hiden: MLP has no argument 'hiden' (did you mean hidden?)"
        in result.stderr
    )
