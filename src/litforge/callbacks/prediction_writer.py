"""Streams ``predict`` outputs to ``predictions.csv`` in the run folder; the file appears complete or not at all."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from litforge import predictions_csv


class CSVPredictionWriter(BasePredictionWriter):
    """Writes one row per sample: ``row``, ``prediction``, ``label`` (the predicted class name, when the
    datamodule names its classes) and one ``prob_<class>`` column per class (``litforge.predictions_csv``).

    ``predict_step`` may return a dict with ``prediction`` and ``probabilities`` (litforge's models), a
    tensor of logits/scores (B, C), or a tensor of values (B,). Columns are named after
    ``datamodule.class_names`` when the datamodule has them.

    Args:
        output_path: the CSV file to write (written to ``<name>.tmp`` and renamed at the end).
    """

    def __init__(self, output_path: str | Path) -> None:
        super().__init__(write_interval="batch")
        self.output_path = Path(output_path)
        self._handle: Any = None
        self._writer: Any = None
        self._rows = 0
        self._names: list[str] | None = None

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self.output_path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.output_path.with_suffix(".csv.tmp").open("w", newline="")
            self._writer = csv.writer(self._handle)
            self._rows = 0

    def write_on_batch_end(
        self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx
    ):
        if self._writer is None:
            return
        predicted, scores = _split_prediction(prediction)
        if self._rows == 0:
            names = getattr(trainer.datamodule, "class_names", None)
            self._names = list(names) if names else None
            self._writer.writerow(
                predictions_csv.header(self._names, None if scores is None else scores.shape[1])
            )
        for i, label in enumerate(predicted.tolist()):
            row_scores = None if scores is None else scores[i].tolist()
            self._writer.writerow(predictions_csv.row(self._rows, label, row_scores, self._names))
            self._rows += 1

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._handle is None:
            return
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        os.replace(self.output_path.with_suffix(".csv.tmp"), self.output_path)
        self._handle = self._writer = None


def _split_prediction(prediction: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Normalise a ``predict_step`` output to (predicted (B,), scores (B, C) or None)."""
    if isinstance(prediction, dict):
        scores = prediction.get("probabilities")
        predicted = prediction.get("prediction")
        if predicted is None and scores is not None:
            predicted = scores.argmax(dim=-1)
        if predicted is None:
            raise ValueError("predict_step returned a dict without 'prediction' or 'probabilities'")
        return predicted.detach().cpu(), None if scores is None else scores.detach().float().cpu()
    if isinstance(prediction, (tuple, list)):
        prediction = prediction[0]
    tensor = torch.as_tensor(prediction).detach().float().cpu()
    if tensor.ndim >= 2:
        tensor = tensor.reshape(tensor.shape[0], -1)
        return tensor.argmax(dim=-1), tensor
    return tensor.reshape(-1), None
