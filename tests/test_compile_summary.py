"""A module compiled with ``torch.compile`` still compiles in training after the model summary runs."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import RichModelSummary
from torch import nn

from litforge.callbacks import EagerModelSummary


class CompiledNet(L.LightningModule):
    """The seed's pattern: the network compiled in ``configure_model``; counts the graphs compiled."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
        self.example_input_array = torch.zeros(2, 8)  # what the summary's FLOP count runs
        self.graphs = 0

    def _count(self, graph: torch.fx.GraphModule, example_inputs: list) -> object:
        self.graphs += 1
        return graph.forward

    def configure_model(self) -> None:
        self.net = torch.compile(self.net, backend=self._count)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        return self(batch[0]).square().mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _fit(summary: L.Callback) -> CompiledNet:
    torch.compiler.reset()  # each fit compiles from scratch (the skip is remembered per code object)
    model = CompiledNet()
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(16, 8)), batch_size=4)
    trainer = L.Trainer(
        max_steps=3, accelerator="cpu", callbacks=[summary], logger=False, enable_checkpointing=False,
        enable_progress_bar=False,
    )  # fmt: skip
    trainer.fit(model, data)
    return model


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_lightnings_summary_leaves_compiled_modules_eager_and_litforges_does_not() -> None:
    assert _fit(RichModelSummary()).graphs == 0  # the mechanism: Dynamo skipped the module for good
    assert _fit(EagerModelSummary()).graphs >= 1
