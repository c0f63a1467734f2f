"""The LitServe app over an export folder (``litforge serve EXPORT_DIR``).

One ``ArtifactAPI`` worker process loads the artifact (onnxruntime, torch.export or TorchScript);
LitServe batches concurrent requests up to ``max_batch_size`` rows-requests within ``batch_timeout``
seconds; ``RequestGuard`` rejects bad requests in the HTTP process; ``/metrics`` counts model calls.
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import litserve as ls
import numpy as np

from litforge.export.artifact import Artifact, postprocess
from litforge.export.metadata import read as read_metadata
from litforge.serve.codecs import RequestLimits, decode_rows, encode
from litforge.serve.guard import RequestGuard


@dataclass
class Decoded:
    """One request's decoded rows (array (N, ...)) or texts (list of N strings)."""

    items: Any

    def __len__(self) -> int:
        return len(self.items)


class Counters:
    """Process-shared counters, updated by the inference worker, read by ``GET /metrics``."""

    def __init__(self) -> None:
        context = mp.get_context("spawn")
        self.requests = context.Value("q", 0)
        self.model_calls = context.Value("q", 0)
        self.rows = context.Value("q", 0)

    def add(self, requests: int, rows: int) -> None:
        for counter, amount in ((self.requests, requests), (self.model_calls, 1), (self.rows, rows)):
            with counter.get_lock():
                counter.value += amount

    def snapshot(self) -> dict[str, int]:
        return {
            "requests": self.requests.value,
            "model_calls": self.model_calls.value,
            "rows": self.rows.value,
        }


class ArtifactAPI(ls.LitAPI):
    """LitServe API over one export folder; ``predict`` runs one model call per (dynamic) batch."""

    def __init__(
        self,
        folder: Path,
        fmt: str | None,
        counters: Counters,
        max_batch_size: int = 64,
        batch_timeout: float = 0.005,
        threads: int | None = None,
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout)
        self.folder, self.fmt, self.threads, self.counters = folder, fmt, threads, counters
        self.artifact: Artifact | None = None

    def setup(self, device: str) -> None:
        self.artifact = Artifact.open(self.folder, self.fmt, threads=self.threads)

    def decode_request(self, request):  # no annotation: LitServe would turn it into a FastAPI body model
        artifact = self.artifact
        if artifact.request_format == "texts":
            return Decoded(list(request["texts"]))
        return Decoded(decode_rows(request, artifact.row_shape, artifact.input_dtype))

    def batch(self, inputs: list[Decoded]) -> list[Decoded]:
        return inputs

    def predict(self, x: Decoded | list[Decoded]) -> Any:
        parts = x if isinstance(x, list) else [x]
        artifact = self.artifact
        if artifact.request_format == "texts":
            logits = artifact.logits_for_texts([text for part in parts for text in part.items])
        else:
            logits = artifact.logits(np.concatenate([part.items for part in parts]))
        self.counters.add(requests=len(parts), rows=len(logits))
        predictions, probabilities = postprocess(logits)
        bounds = np.cumsum([0, *map(len, parts)])
        outputs = [(predictions[a:b], probabilities[a:b]) for a, b in itertools.pairwise(bounds)]
        return outputs if isinstance(x, list) else outputs[0]

    def unbatch(self, output: list[Any]) -> list[Any]:
        return output

    def encode_response(self, output):  # (predictions, probabilities) -> JSON dict; unannotated, as above
        return encode(*output, self.artifact.class_labels)


@dataclass
class ServeOptions:
    """Knobs of ``litforge serve`` (see its ``--help``)."""

    fmt: str | None = None
    max_batch_size: int = 64
    batch_timeout: float = 0.005
    workers: int = 1
    max_rows: int = 256
    max_body_bytes: int = 1 << 20
    threads: int | None = None
    timeout: float = 30.0


def build_server(folder: Path, options: ServeOptions) -> Any:
    """A ready-to-``run`` ``LitServer`` over ``folder`` with validation, batching and ``/metrics``."""
    record = read_metadata(folder)
    request_format = record.get("request_format", "features")
    row_width = (
        int(np.prod([int(s) for s in record["inputs"][0]["shape"][1:]]))
        if request_format == "features"
        else 0
    )
    limits = RequestLimits(request_format=request_format, row_width=row_width, max_rows=options.max_rows)
    counters = Counters()
    api = ArtifactAPI(
        folder, options.fmt, counters, options.max_batch_size, options.batch_timeout, options.threads
    )
    server = ls.LitServer(
        api,
        accelerator="cpu",
        workers_per_device=options.workers,
        timeout=options.timeout,
        model_metadata=record,
        max_payload_size=options.max_body_bytes,
        middlewares=[
            (RequestGuard, {"path": "/predict", "max_bytes": options.max_body_bytes, "limits": limits})
        ],
    )

    async def metrics() -> dict[str, Any]:
        return {
            **counters.snapshot(),
            "max_batch_size": options.max_batch_size,
            "batch_timeout": options.batch_timeout,
        }

    server.app.add_api_route("/metrics", metrics, methods=["GET"])
    return server
