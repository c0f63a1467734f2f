"""Streams ``predict`` outputs to ``predictions.csv`` in the run folder; the file appears complete or not at all."""

from __future__ import annotations

import contextlib
import csv
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities.model_helpers import is_overridden

from litforge.atomic_files import atomic_path
from litforge.errors import HINT, UsageError
from litforge.predictions import csv_columns, output_head
from litforge.predictions.forward_inputs import (
    forward_input_values,
    labels_of,
    positional_inputs,
    predict_step_relation,
    single_tensor,
)
from litforge.predictions.output_head import Predictions


class CSVPredictionWriter(BasePredictionWriter):
    """Writes one row per sample in the columns of ``litforge.predictions.csv_columns``, the same as
    ``litforge predict --artifact`` writes for the module's export.

    ``predict_step`` may return a dict with ``prediction`` and/or ``probabilities`` (litforge's models:
    written as they are), or a tensor: the module's forward output (Lightning's default ``predict_step``
    returns ``self(batch)``), turned into predictions by the module's output head (declared with
    ``output_head = ...`` or inferred from the first batch, see ``litforge.predictions.output_head``): softmax and
    argmax for class logits, the value for a regression, one column per value for several outputs. A
    module's own ``predict_step`` whose tensor is not forward's output (checked on the first batch) has
    post-processed it already: it is written as returned (class probabilities as they are), never
    passed through softmax again.

    Args:
        output_path: the CSV file to write (a temporary file beside it, renamed over it at the end).
    """

    def __init__(self, output_path: str | Path) -> None:
        super().__init__(write_interval="batch")
        self.output_path = Path(output_path)
        self._handle: Any = None
        self._commit: contextlib.ExitStack | None = None
        self._writer: Any = None
        self._rows = 0
        self._head: str | None = None
        self._threshold = output_head.DEFAULT_THRESHOLD  # a multi-label module's (label_threshold)
        self._names: list[str] | None = None
        self._batch_layout: str | None = None  # "a list of 3": the batch Lightning's predict_step got
        self._pick = "batch[0]"  # how a predict_step of its own would pick forward's input
        self._record_keys: list[str] = []  # a predict_step of one dict per sample: their keys

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self._commit = contextlib.ExitStack()  # the CSV replaces output_path when predict ends
            tmp = self._commit.enter_context(atomic_path(self.output_path))
            self._handle = self._commit.enter_context(tmp.open("w", newline=""))
            self._writer = csv.writer(self._handle)
            self._rows = 0
            self._head = None

    def write_on_batch_end(
        self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx
    ):
        if self._writer is None:
            return
        if (records := _per_sample_records(prediction)) is not None:  # a detector's dict per image
            if self._rows == 0:
                self._writer.writerow(["row", *map(str, records[0])])
            elif list(records[0]) != self._record_keys:
                raise UsageError(
                    f"predict_step returned dicts of {list(records[0])} for batch {batch_idx}, and of "
                    f"{self._record_keys} before: predictions.csv takes the same keys for every sample"
                )
            self._record_keys = list(records[0])
            self._writer.writerows(csv_columns.record_rows(records, self._rows))
            self._rows += len(records)
            return
        named = _named_outputs(prediction)  # {"label": logits, "score": values} or a tuple: each as it is
        if named is not None:
            if self._rows == 0:
                self._writer.writerow(csv_columns.named_header(named))
            self._writer.writerows(csv_columns.named_rows(named, self._rows))
            self._rows += len(next(iter(named.values())))
            return
        if self._rows == 0 and isinstance(prediction, (tuple, list)) and len(prediction) > 1:
            print(
                f"litforge: note: predict_step returned {len(prediction)} outputs, not all tensors of one row per "
                "sample; predictions.csv holds the first",
                file=sys.stderr,
            )
        if self._rows == 0:
            labels = labels_of(batch, positional_inputs(pl_module))
            classes = output_head.declared_classes(pl_module, trainer.datamodule, labels)
            self._names = classes.names
            if not isinstance(prediction, dict):
                outputs = _as_numpy(prediction)
                self._head, _ = output_head.resolve_head(
                    pl_module,
                    outputs.shape[1:],
                    np.issubdtype(outputs.dtype, np.floating),
                    classes,
                    outputs=outputs,
                    input_rows=_one_input_rows(pl_module, batch),
                )
                self._threshold = output_head.label_threshold(pl_module)[0]
                relation = predict_step_relation(pl_module, batch, prediction)
                if relation == "sigmoid":
                    self._head = output_head.LABEL_PROBABILITIES
                elif relation == "other":
                    self._head = output_head.predict_step_head(self._head, outputs)
        predictions = self._predictions(prediction)
        if self._rows == 0:
            self._writer.writerow(csv_columns.header(predictions, self._names))
            if (note := csv_columns.flattening_note(predictions)) and trainer.is_global_zero:
                print(f"litforge: note: {note}", file=sys.stderr)
        self._writer.writerows(csv_columns.rows(predictions, self._names, self._rows))
        self._rows += len(predictions)

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._commit is None:
            return
        replaced = _data_rows(self.output_path)
        self._commit.close()  # closes the file, then renames it over output_path
        if replaced is not None and trainer.is_global_zero:
            print(
                f"litforge: note: {self.output_path} replaces an earlier predictions.csv of this run ({replaced} "
                f"rows; now {self._rows})",
                file=sys.stderr,
            )
        self._commit = self._handle = self._writer = None

    def on_predict_batch_start(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._batch_layout, self._pick = None, "batch[0]"
        if isinstance(batch, (tuple, list)):
            self._batch_layout = f"a {type(batch).__name__} of {len(batch)}"
        elif isinstance(batch, Mapping) and batch:
            keys = [str(key) for key in batch]
            self._batch_layout, self._pick = f"a dict with keys {keys}", f"batch[{keys[0]!r}]"

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if self._batch_layout and not is_overridden("predict_step", pl_module, parent=L.LightningModule):
            exception.add_note(
                f"{HINT}Lightning's default predict_step passes the whole batch, {self._batch_layout}, to "
                f"forward; define predict_step to pick forward's input, e.g. `return self({self._pick})`)"
            )
        if self._commit is not None:  # the temporary file goes; an earlier predictions.csv stays
            self._commit.__exit__(type(exception), exception, exception.__traceback__)
            self._commit = self._handle = self._writer = None

    def _predictions(self, prediction: Any) -> Predictions:
        """A ``predict_step`` output -> predictions: a dict as the module made it, a tensor through the head."""
        if isinstance(prediction, dict):
            scores = prediction.get("probabilities")
            values = prediction.get("prediction")
            if values is None and scores is None:
                raise UsageError(
                    f"predict_step returned a dict with keys {sorted(map(str, prediction))}; predictions.csv is "
                    "written from a tensor, from a dict with 'prediction' and/or 'probabilities', or from a "
                    "dict of tensors with one row per sample each (a column or columns per key): return one "
                    "of those (nothing was written)"
                )
            scores = None if scores is None else _as_numpy(scores).reshape(len(scores), -1)
            values = scores.argmax(axis=1) if values is None else _as_numpy(values)
            return Predictions(values, scores)
        if self._head is None:  # a dict first, a tensor later: the module changed its mind mid-run
            raise UsageError("predict_step returned a dict for the first batch and a tensor later")
        return output_head.apply_head(self._head, _as_numpy(prediction), self._threshold)


def _one_input_rows(module: L.LightningModule, batch: Any) -> tuple[int, ...] | None:
    """The shape per sample of forward's one tensor input on ``batch``; None for several or none."""
    tensor = single_tensor(forward_input_values(module, batch))
    return tuple(tensor.shape[1:]) if tensor is not None and tensor.dim() else None


def _per_sample_records(prediction: Any) -> list[dict[str, Any]] | None:
    """A list of one dict per sample with the same keys, each value a tensor of any length or a number
    (``[{"boxes": (n_i, 4), "scores": (n_i,)}, ...]``, as detectors return them); else ``None``."""
    if not isinstance(prediction, (list, tuple)) or not prediction:
        return None
    if not all(isinstance(record, Mapping) and record for record in prediction):
        return None
    keys = list(prediction[0])
    plain = (torch.Tensor, np.ndarray, np.generic, int, float)
    if any(
        list(record) != keys or not all(isinstance(v, plain) for v in record.values())
        for record in prediction
    ):
        return None
    return [dict(record) for record in prediction]


def _named_outputs(prediction: Any) -> dict[str, np.ndarray] | None:
    """Several tensors of one batch size (a multi-task model's heads): a dict, none of its keys
    ``prediction``/``probabilities`` (``{"label": logits, "score": values}``), or a tuple of two or more
    (named ``output_0``, ``output_1``... as ``litforge export`` names them) -> numpy arrays by name; else
    ``None``."""
    if isinstance(prediction, (tuple, list)) and len(prediction) > 1:
        prediction = {f"output_{i}": value for i, value in enumerate(prediction)}
    if (
        not isinstance(prediction, dict)
        or not prediction
        or {"prediction", "probabilities"} & set(prediction)
    ):
        return None
    if not all(isinstance(v, torch.Tensor) and v.ndim >= 1 for v in prediction.values()):
        return None
    if len({len(v) for v in prediction.values()}) != 1:
        return None
    return {str(key): _as_numpy(value) for key, value in prediction.items()}


def _as_numpy(value: Any) -> np.ndarray:
    """A tensor (or the first of a tuple of them) -> numpy on the CPU; half precisions widened to float32."""
    if isinstance(value, (tuple, list)):
        value = value[0]
    try:
        tensor = torch.as_tensor(value).detach().cpu()
    except (TypeError, ValueError, RuntimeError):  # a dict, a string, a ragged list: no one array
        raise UsageError(
            f"predict_step returned {type(value).__name__} values, which predictions.csv cannot hold: return "
            "a tensor, a dict of tensors with one row per sample each, or a list of one dict of tensors per "
            "sample (nothing was written)"
        ) from None
    if tensor.dtype in (torch.bfloat16, torch.float16):
        tensor = tensor.float()
    if tensor.ndim == 0:
        tensor = tensor.reshape(1)
    return tensor.numpy()


def _data_rows(path: Path) -> int | None:
    """The rows of an existing CSV less its header, ``None`` when there is no such file."""
    try:
        with path.open("rb") as handle:
            return max(sum(1 for _ in handle) - 1, 0)
    except OSError:
        return None
