"""``litforge export`` on files someone else made: nothing named in a checkpoint or a copied run folder is
instantiated unless it is a LightningModule / LightningDataModule, pickles are refused, and every refusal
is one line, exit 2, naming the file. Each payload would create MARKER if it ran.

The crafted files are generated here (no binaries in the repository).
"""

from __future__ import annotations

import textwrap
import zipfile
from pathlib import Path

import pytest
import torch
import yaml
from payloads import RunsShell

TINY_MODULE = """
import lightning as L
import torch


class Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 2)
        self.example_input_array = torch.zeros(2, 4)

    def forward(self, x):
        return self.layer(x)
"""


BORING = "lightning.pytorch.demos.boring_classes"


def _assert_refused(result, tmp_path: Path, *named: str) -> None:
    assert result.returncode == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr, result.stderr
    for text in named:
        assert text in result.stderr, result.stderr
    assert not (tmp_path / "MARKER").exists(), "the payload ran"
    assert not (tmp_path / "exported").exists(), "something was written"


def test_a_checkpoint_naming_popen_is_refused_before_it_runs(cli, tmp_path: Path) -> None:
    ckpt = tmp_path / "popen.ckpt"  # weights-only safe: strings and bools only
    hparams = {"_class_path": "subprocess.Popen", "args": f"touch {tmp_path / 'MARKER'}", "shell": True}
    torch.save({"state_dict": {}, "hyper_parameters": hparams}, ckpt)
    result = cli("export", "--ckpt", str(ckpt), "--out", "exported")
    _assert_refused(result, tmp_path, "popen.ckpt", "subprocess.Popen", "not a LightningModule")


@pytest.mark.parametrize("section", ["data", "model"])
def test_a_run_config_naming_popen_is_refused_before_it_runs(cli, tmp_path: Path, section: str) -> None:
    """A copied run folder: a valid checkpoint, and a config.yaml whose class path runs a command."""
    (tmp_path / "tiny.py").write_text(textwrap.dedent(TINY_MODULE))
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    layer = torch.nn.Linear(4, 2)
    torch.save(
        {"state_dict": {f"layer.{k}": v for k, v in layer.state_dict().items()}},
        run / "checkpoints" / "m.ckpt",
    )
    popen = {
        "class_path": "subprocess.Popen",
        "init_args": {"args": f"touch {tmp_path / 'MARKER'}", "shell": True},
    }
    good = {"model": {"class_path": "tiny.Tiny"}, "data": {"class_path": f"{BORING}.BoringDataModule"}}
    config = {**good, section: popen}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    result = cli("export", "--ckpt", str(run / "checkpoints" / "m.ckpt"), "--out", "exported")
    expected = "LightningDataModule" if section == "data" else "LightningModule"
    _assert_refused(result, tmp_path, "config.yaml", f"{section}.class_path", "subprocess.Popen", expected)


def test_a_class_that_is_not_a_module_is_refused(cli, tmp_path: Path) -> None:
    ckpt = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {}}, ckpt)
    result = cli(
        "export", "--ckpt", str(ckpt), "--model-class", "collections.OrderedDict", "--out", "exported"
    )
    _assert_refused(result, tmp_path, "--model-class", "collections.OrderedDict", "not a LightningModule")


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_a_malicious_pickle_is_refused_as_unsafe(cli, tmp_path: Path, legacy: bool) -> None:
    ckpt = tmp_path / "evil.ckpt"
    payload = {"state_dict": RunsShell(f"touch {tmp_path / 'MARKER'}")}
    torch.save(payload, ckpt, _use_new_zipfile_serialization=not legacy)
    result = cli("export", "--ckpt", str(ckpt), "--out", "exported")
    _assert_refused(result, tmp_path, "evil.ckpt", "refused as unsafe", "posix.system")
    assert "weights_only" not in result.stderr and "can still be loaded" not in result.stderr


def test_a_zip_that_is_not_a_torch_file_is_refused(cli, tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "model.ckpt", "w") as archive:
        archive.writestr("notes.txt", "hello")
    result = cli("export", "--ckpt", "model.ckpt", "--out", "exported")
    _assert_refused(result, tmp_path, "model.ckpt", "zip archive but not a PyTorch checkpoint")
