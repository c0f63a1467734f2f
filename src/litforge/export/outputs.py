"""The outputs an export carries: forward's tensor, or each of several (a multi-task model's heads).

forward returns          the export carries                         named
a tensor                 it                                         ``logits`` (class scores) / ``output``
a tuple of tensors       each                                       ``output_0``, ``output_1``, ...
a dict of tensors        each, in the dict's order                  its keys
a Hugging Face output    its ``logits``                             ``logits``

``litforge_export_spec()``'s ``output_names`` renames them (one name per output). Every output must have one
row per input row (a loss or a batch statistic cannot be served per request); an artifact with several
outputs answers each under its name, with its values as they are (``predict --artifact`` writes a column
or columns per output, as ``predict`` does for a ``predict_step`` that returns a dict of tensors).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from litforge.errors import UsageError


@dataclass
class ForwardOutputs:
    """A forward call's outputs: the tensors an export carries and, for a dict, their keys."""

    tensors: list[torch.Tensor]
    keys: list[str] | None = None

    @property
    def several(self) -> bool:
        """Whether the export must carry more than one tensor, or name its one by a dict key."""
        return len(self.tensors) > 1 or self.keys is not None

    def names(self, declared: list[str] | None, single: str) -> list[str]:
        """Declared names, else the dict's keys, else ``single`` for one output, else ``output_<i>``."""
        if declared:
            return declared
        if self.keys is not None:
            return self.keys
        return [single] if len(self.tensors) == 1 else [f"output_{i}" for i in range(len(self.tensors))]

    def numpy(self) -> list[np.ndarray]:
        return [t.detach().cpu().numpy() for t in self.tensors]


def forward_outputs(module: torch.nn.Module, output: Any, rows: int | None = None) -> ForwardOutputs:
    """The tensors of a forward ``output`` that an export carries (see the module docstring); ``rows``: the
    batch size of the inputs, which every output must have. ``UsageError`` for anything else."""
    owner = f"{type(module).__name__}.forward()"
    if not isinstance(output, torch.Tensor) and isinstance(getattr(output, "logits", None), torch.Tensor):
        outputs = ForwardOutputs([output.logits])  # a Hugging Face ModelOutput (a dict too): its scores
    elif isinstance(output, torch.Tensor):
        outputs = ForwardOutputs([output])
    elif isinstance(output, (tuple, list)) and output:
        outputs = ForwardOutputs(list(output))
    elif isinstance(output, dict) and output:
        outputs = ForwardOutputs(list(output.values()), [str(key) for key in output])
    else:
        raise UsageError(
            f"{owner} returns {type(output).__name__}; an export carries tensors: return a tensor, or a tuple "
            "or dict of tensors (one per head), and export again"
        )
    labels = outputs.keys or [str(i) for i in range(len(outputs.tensors))]
    for label, tensor in zip(labels, outputs.tensors, strict=True):
        where = f"{owner}'s output {label!r}" if outputs.several else f"{owner}'s output"
        if not isinstance(tensor, torch.Tensor):
            raise UsageError(
                f"{where} is a {type(tensor).__name__}, not a tensor; an export carries tensors: return only "
                "the heads to serve from forward (compute anything else in training_step)"
            )
        if rows is not None and (tensor.ndim == 0 or tensor.shape[0] != rows):
            raise UsageError(
                f"{where} has shape {tuple(tensor.shape)} for {rows} input rows, not one row per sample; an "
                "export answers each request row: return only per-sample heads from forward (a loss or batch "
                "statistic belongs in training_step)"
            )
    return outputs
