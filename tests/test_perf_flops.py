"""perf.json's MFU (FLOPs per batch over the step time and the device's peak) and torch.compile counts."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from litforge.callbacks import PerfSummary
from litforge.callbacks import perf_summary as perf_summary_module
from litforge.callbacks.step_flops import StepFlopCounter, peak_flops


class ReluLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.linear(x))


class TinyRegressor(L.LightningModule):
    """Linear(8 -> 4) + ReLU on batches of 5 (the last one of 2); optionally compiling its layer itself."""

    def __init__(self, compile_backend: str | None = None) -> None:
        super().__init__()
        self.layer = ReluLayer()
        self.compile_backend = compile_backend

    def configure_model(self) -> None:
        if self.compile_backend:
            self.layer.compile(backend=self.compile_backend, dynamic=False)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.mse_loss(self.layer(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        data = TensorDataset(torch.randn(12, 8), torch.randn(12, 4))
        return DataLoader(data, batch_size=5)


def _fit(model: L.LightningModule, path: Path, epochs: int = 1) -> dict:
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[PerfSummary(path, print_table=False)],
    )
    trainer.fit(model)
    return json.loads(path.read_text())


def test_peaks_are_dense_16_bit_figures_of_known_gpus(monkeypatch) -> None:
    cuda = torch.device("cuda", 0)

    def peak(name: str, precision: str = "bf16-mixed") -> float | None:
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
        return peak_flops(cuda, precision)

    assert peak("NVIDIA H200") == 989e12
    assert peak("NVIDIA H100 80GB HBM3") == 989e12
    assert peak("NVIDIA H100 PCIe") == 756e12
    assert peak("NVIDIA A100-SXM4-80GB", "16-mixed") == 312e12
    assert peak("NVIDIA H100 NVL") is None and peak("NVIDIA L4") is None
    assert peak("NVIDIA H200", "32-true") is None
    assert peak_flops(torch.device("cpu"), "bf16-mixed") is None


def test_a_counted_step_holds_forward_and_backward_matrix_products() -> None:
    layer, x = nn.Linear(8, 16), torch.randn(4, 8)
    counter = StepFlopCounter()
    counter.start()
    layer(x).sum().backward()
    counter.stop()
    assert counter.flops == 2 * (2 * 4 * 8 * 16)  # forward x@W, and W's gradient (x needs none)


def test_compiled_code_still_compiles_after_a_counted_step() -> None:
    calls = []

    def counting_backend(graph, example_inputs):
        calls.append(graph)
        return graph.forward

    layer = ReluLayer()  # user code: Dynamo leaves torch's own modules' frames alone
    layer.compile(backend=counting_backend)
    counter = StepFlopCounter()
    counter.start()
    layer(torch.randn(2, 8))  # eager, counted
    counter.stop()
    assert counter.flops and not calls
    layer(torch.randn(2, 8))
    assert len(calls) == 1  # Dynamo did not give up on the frame the counter saw


def test_perf_json_has_the_mfu_where_the_peak_is_known(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(perf_summary_module, "peak_flops", lambda device, precision: 1e12)  # a "known" CPU
    perf = _fit(TinyRegressor(), tmp_path / "perf.json")
    assert perf["flops_source"] == "counted"
    assert perf["flops_per_batch"] == 2 * (2 * 5 * 8 * 4)  # the first batch: 5 rows through Linear(8, 4)
    assert perf["mfu"] == pytest.approx(perf["flops_per_batch"] / (perf["step_time_p50_ms"] / 1e3) / 1e12)


def test_a_models_own_flop_count_wins_and_a_cpu_has_no_mfu(tmp_path: Path) -> None:
    model = TinyRegressor()
    model.flops_per_batch = 1234  # Lightning's ThroughputMonitor convention
    perf = _fit(model, tmp_path / "perf.json")
    assert (perf["flops_per_batch"], perf["flops_source"]) == (1234, "model")
    assert perf["peak_flops"] is None and perf["mfu"] is None


def test_perf_json_counts_compiled_graphs_and_recompiles(tmp_path: Path) -> None:
    torch.compiler.reset()  # forget the code other tests compiled (a new instance would recompile it)
    perf = _fit(TinyRegressor(compile_backend="eager"), tmp_path / "perf.json", epochs=2)
    assert perf["compiled_graphs"] == 2  # batches of 5, then the short last batch of 2 (dynamic=False)
    assert perf["recompiles"] == 1
    assert _fit(TinyRegressor(), tmp_path / "eager.json")["compiled_graphs"] == 0


class CompiledLSTM(TinyRegressor):
    """Compiles its recurrent layer, which dynamo leaves to eager: nothing is compiled."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(8, 4, batch_first=True)

    def configure_model(self) -> None:
        self.rnn = torch.compile(self.rnn, backend="eager")

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.mse_loss(self.rnn(x.unsqueeze(1))[0][:, -1], y)


def test_a_compile_that_compiled_nothing_is_said(tmp_path: Path, capsys) -> None:
    torch.compiler.reset()
    perf = _fit(CompiledLSTM(), tmp_path / "perf.json")
    assert perf["compile_requested"] and perf["compiled_graphs"] == 0
    perf_summary_module.print_summary(perf, tmp_path / "perf.json")
    assert (
        "uses torch.compile but no graph was compiled while training, so it ran eager"
        in capsys.readouterr().err
    )
    assert not _fit(TinyRegressor(), tmp_path / "eager.json")["compile_requested"]


def test_precision_names_match_lightnings() -> None:
    assert str(L.Trainer(precision="bf16-mixed", logger=False).precision) == "bf16-mixed"
