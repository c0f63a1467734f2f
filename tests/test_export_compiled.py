"""Modules that torch.compile themselves (issue 16.7): ``litforge export`` and ``litforge check``'s export
check work on the eager code they compile.

The user modules compile with ``backend="eager"`` (dynamo without code generation) to keep the test at a
few seconds on a CPU; the module compiled in ``__init__`` uses a backend that fails, as inductor fails on
a machine without a C++ compiler: neither export nor the check needs the compiled code.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

COMPILED_MODULE = '''
import lightning as L
import torch
from torch import nn


def no_compiler(graph_module, example_inputs):
    raise RuntimeError("no C++ compiler on this machine")


class SeedPattern(L.LightningModule):
    """The seed's pattern: ``self.model = torch.compile(self.model)`` in configure_model."""

    def __init__(self, hidden: int = 8):
        super().__init__()
        self.save_hyperparameters()
        self.model = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))
        self.example_input_array = torch.zeros(2, 64)

    def configure_model(self):
        self.model = torch.compile(self.model, backend="eager")

    def forward(self, x):
        return self.model(x / 16)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class CompiledInInit(SeedPattern):
    """Compiles itself at construction."""

    def __init__(self, hidden: int = 8):
        super().__init__(hidden)
        self.model = torch.compile(self.model, backend=no_compiler)

    def configure_model(self):
        pass
'''


def _config(model: str) -> str:
    return json.dumps(  # JSON is YAML
        {
            "trainer": {
                "accelerator": "cpu",
                "max_epochs": 1,
                "limit_train_batches": 3,
                "limit_val_batches": 1,
                "enable_model_summary": False,
            },
            "model": {"class_path": f"compiled.{model}", "init_args": {"hidden": 8}},
            "data": {"class_path": "litforge.data.DigitsDataModule", "init_args": {"batch_size": 32}},
        }
    )


@pytest.mark.slow
def test_export_of_modules_that_compile_themselves(cli, tmp_path: Path) -> None:
    (tmp_path / "compiled.py").write_text(textwrap.dedent(COMPILED_MODULE))
    (tmp_path / "seed.yaml").write_text(_config("SeedPattern"))
    fit = cli("fit", "--config", "seed.yaml", "--run", "r")
    assert fit.returncode == 0, fit.output
    ckpt = tmp_path / "runs" / "seedpattern" / "r" / "checkpoints" / "last.ckpt"

    seed = cli("export", "--ckpt", str(ckpt), "--out", "seed")  # onnx, pt2 and torchscript
    assert seed.returncode == 0, seed.output
    record = json.loads((tmp_path / "seed" / "export.json").read_text())
    assert set(record["formats"]) == {"onnx", "pt2", "torchscript"}
    assert all(entry["parity"]["passed"] for entry in record["formats"].values())
    assert record["output_head"] == "classification"  # 10 outputs, the digits' 10 classes

    in_init = cli(
        "export", "--ckpt", str(ckpt), "--model-class", "compiled.CompiledInInit", "--format", "onnx",
        "--out", "in_init",
    )  # fmt: skip
    assert in_init.returncode == 0, in_init.output
    assert json.loads((tmp_path / "in_init" / "export.json").read_text())["formats"]["onnx"]["parity"][
        "passed"
    ]


def test_check_exports_a_module_compiled_in_init(cli, tmp_path: Path) -> None:
    (tmp_path / "compiled.py").write_text(textwrap.dedent(COMPILED_MODULE))
    (tmp_path / "in_init.yaml").write_text(_config("CompiledInInit"))
    result = cli("check", "--config", "in_init.yaml", "--only", "export")
    assert result.returncode == 0, result.output
    assert "ONNX (onnxruntime) matches eager" in result.stdout
