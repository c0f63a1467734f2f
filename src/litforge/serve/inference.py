"""What both server backends do with requests: decode, run one model call per batch, split the answers."""

from __future__ import annotations

import multiprocessing as mp
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from litforge.export.artifact import Artifact
from litforge.serve.codecs import decode_inputs, encode


@dataclass
class Decoded:
    """One request's decoded rows (one array (N, ...) per input of ``forward``) or texts (list of N strings)."""

    items: Any

    def __len__(self) -> int:
        return len(self.items[0]) if isinstance(self.items, tuple) else len(self.items)


class _LocalValue:
    """``multiprocessing.Value``'s interface for counters that stay in one process."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def get_lock(self) -> threading.Lock:
        return self._lock


class Counters:
    """Counters of requests, model calls and rows (``GET /metrics``); ``shared`` across processes or not."""

    def __init__(self, shared: bool = False) -> None:
        make = mp.get_context("spawn").Value if shared else None
        self.requests, self.model_calls, self.rows = (
            make("q", 0) if make else _LocalValue() for _ in range(3)
        )

    def add(self, requests: int, rows: int, model_calls: int = 1) -> None:
        for counter, amount in (
            (self.requests, requests),
            (self.model_calls, model_calls),
            (self.rows, rows),
        ):
            with counter.get_lock():
                counter.value += amount

    def snapshot(self) -> dict[str, int]:
        return {
            "requests": self.requests.value,
            "model_calls": self.model_calls.value,
            "rows": self.rows.value,
        }


def decode(artifact: Artifact, request: dict[str, Any]) -> Decoded:
    """A validated request body -> the rows or texts it carries."""
    if artifact.request_format == "texts":
        return Decoded(list(request["texts"]))
    return Decoded(decode_inputs(request, artifact.inputs))


def infer(artifact: Artifact, parts: list[Decoded], counters: Counters) -> list[dict[str, Any]]:
    """Several requests -> ONE model call on their concatenated rows (one per row shape, for sequences of
    several lengths) -> one JSON answer per request."""
    if artifact.request_format == "texts":
        outputs = artifact.outputs_for_texts([text for part in parts for text in part.items])
        pieces = np.split(outputs, np.cumsum([len(part) for part in parts])[:-1])
        calls = 1
    else:
        pieces = artifact.outputs_by_shape([part.items for part in parts])
        calls = len({tuple(array.shape[1:] for array in part.items) for part in parts})
    counters.add(requests=len(parts), rows=sum(map(len, pieces)), model_calls=calls)
    return [encode(artifact.postprocess(piece), artifact.class_labels) for piece in pieces]
