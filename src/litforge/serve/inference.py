"""What both server backends do with requests: decode, run one model call per batch, split the answers."""

from __future__ import annotations

import multiprocessing as mp
import threading
from dataclasses import dataclass
from typing import Any

from litforge.errors import first_line
from litforge.export.artifact import Artifact, Outputs, split_rows
from litforge.serve.codecs import RequestError, decode_inputs, encode


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
    """Counters of requests, model calls and rows, and of ``/predict`` answers by status class (``GET
    /metrics``); ``shared`` across processes or not. ``requests`` counts the requests that reached the
    model; ``answers`` counts every ``/predict`` answer, refused ones (4xx) and time-outs (5xx) too."""

    STATUS_CLASSES = ("2xx", "4xx", "5xx")

    def __init__(self, shared: bool = False) -> None:
        make = mp.get_context("spawn").Value if shared else None
        self.requests, self.model_calls, self.rows = (
            make("q", 0) if make else _LocalValue() for _ in range(3)
        )
        self.answers = {name: make("q", 0) if make else _LocalValue() for name in self.STATUS_CLASSES}

    def add(self, requests: int, rows: int, model_calls: int = 1) -> None:
        for counter, amount in (
            (self.requests, requests),
            (self.model_calls, model_calls),
            (self.rows, rows),
        ):
            _increment(counter, amount)

    def answered(self, status: int) -> None:
        """Count one ``/predict`` answer of HTTP ``status``."""
        counter = self.answers.get(f"{status // 100}xx")
        if counter is not None:
            _increment(counter, 1)

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": self.requests.value,
            "model_calls": self.model_calls.value,
            "rows": self.rows.value,
            "answers": {name: counter.value for name, counter in self.answers.items()},
        }


def _increment(counter: Any, amount: int) -> None:
    with counter.get_lock():
        counter.value += amount


def decode(artifact: Artifact, request: dict[str, Any]) -> Decoded:
    """A validated request body -> the rows or texts it carries."""
    if artifact.request_format == "texts":
        return Decoded(list(request["texts"]))
    return Decoded(decode_inputs(request, artifact.inputs))


def infer(
    artifact: Artifact, parts: list[Decoded], counters: Counters
) -> list[dict[str, Any] | RequestError]:
    """Several requests -> ONE model call on their concatenated rows (one per row shape, for sequences of
    several lengths) -> one JSON answer per request. When the runtime refuses the batch (values that pass
    validation but not the model: a ``lengths`` beyond its tokens), each request runs alone, and the ones
    it refuses are answered with a ``RequestError`` (422): the good requests of the batch still get theirs."""
    try:
        pieces: list[Outputs | RequestError] = list(_outputs(artifact, parts))
        calls = _calls(artifact, parts)
    except Exception as error:
        if len(parts) == 1:
            pieces, calls = [_refusal(error)], 1
        else:
            pieces, calls = [_alone(artifact, part) for part in parts], _calls(artifact, parts) + len(parts)
    answered = [piece for piece in pieces if not isinstance(piece, RequestError)]
    counters.add(requests=len(parts), rows=sum(len(piece[0]) for piece in answered), model_calls=calls)
    return [
        piece
        if isinstance(piece, RequestError)
        else encode(artifact.postprocess(piece), artifact.class_labels)
        for piece in pieces
    ]


def _outputs(artifact: Artifact, parts: list[Decoded]) -> list[Outputs]:
    if artifact.request_format == "texts":
        outputs = artifact.outputs_for_texts([text for part in parts for text in part.items])
        return split_rows(outputs, [len(part) for part in parts])
    return artifact.outputs_by_shape([part.items for part in parts])


def _calls(artifact: Artifact, parts: list[Decoded]) -> int:
    if artifact.request_format == "texts":
        return 1
    return len({tuple(array.shape[1:] for array in part.items) for part in parts})


def _alone(artifact: Artifact, part: Decoded) -> Outputs | RequestError:
    try:
        return _outputs(artifact, [part])[0]
    except Exception as error:
        return _refusal(error)


def _refusal(error: Exception) -> RequestError:
    """Why the runtime refused a request's inputs, as a 422 (the server stays up and answers others)."""
    return RequestError(
        422, f"the model cannot run on these inputs: {type(error).__name__}: {first_line(error)}"
    )
