"""The LitServe backend over an export folder (``litforge serve EXPORT_DIR --backend litserve``).

One ``ArtifactAPI`` worker process loads the artifact (onnxruntime, torch.export or TorchScript);
LitServe batches concurrent requests up to ``max_batch_size`` rows-requests within ``batch_timeout``
seconds; ``RequestGuard`` rejects bad requests in the HTTP process; ``/metrics`` counts model calls and answers.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

import litserve as ls

from litforge.export import metadata
from litforge.export.artifact import Artifact
from litforge.processes.heap import freeze_loaded_heap
from litforge.processes.lifetime import exit_when_gone, forked_children_exit_with_this_process
from litforge.serve.codecs import RequestError
from litforge.serve.guard import RequestGuard, refusal_answer
from litforge.serve.inference import Counters, Decoded, decode, infer
from litforge.serve.options import ServeOptions, published_metadata, request_limits


class ArtifactAPI(ls.LitAPI):
    """LitServe API over one export folder; ``predict`` runs one model call per (dynamic) batch."""

    def __init__(
        self,
        folder: Path,
        fmt: str | None,
        counters: Counters,
        max_batch_size: int,
        batch_timeout: float,
        threads: int | None = None,
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout)
        self.folder, self.fmt, self.threads, self.counters = folder, fmt, threads, counters
        self.artifact: Artifact | None = None
        self.server_pid = os.getpid()

    def setup(self, device: str) -> None:
        if os.getpid() != self.server_pid:  # a spawned model worker: end with the server, even after kill -9
            exit_when_gone(self.server_pid)
            # Ctrl+C, or SIGTERM from systemd's KillMode=control-group, reaches every process at once: this
            # one answers what is in flight first (the server stops it after the HTTP drain, or it goes
            # after a grace period)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, _stop_after_grace)
        self.artifact = Artifact.open(self.folder, self.fmt, threads=self.threads)
        freeze_loaded_heap()

    def decode_request(self, request):  # no annotation: LitServe would turn it into a FastAPI body model
        return decode(self.artifact, request)

    def batch(self, inputs: list[Decoded]) -> list[Decoded]:
        return inputs

    def predict(self, x: Decoded | list[Decoded]) -> Any:
        outputs = infer(self.artifact, x if isinstance(x, list) else [x], self.counters)
        return outputs if isinstance(x, list) else outputs[0]

    def unbatch(self, output: list[Any]) -> list[Any]:
        return output

    def encode_response(self, output):  # already the JSON dict; unannotated, as above
        return refusal_answer(output) if isinstance(output, RequestError) else output


_WORKER_GRACE_S = 2.0  # a model worker's time to answer its requests in flight after SIGTERM
_grace: list[threading.Timer] = []


def _stop_after_grace(signum: int, frame: object) -> None:
    """SIGTERM in a model worker: exit once ``_WORKER_GRACE_S`` has passed, not at once (the requests in
    flight get their answers; LitServe waits up to 5 s for a worker it stops, then kills it)."""
    if not _grace:
        timer = threading.Timer(_WORKER_GRACE_S, os._exit, args=(0,))
        timer.daemon = True
        _grace.append(timer)
        timer.start()


class _ManagerGoneAtShutdown(logging.Filter):
    """Drops LitServe's "Monitoring worker crashed" traceback when its cause is the lost connection to its
    ``multiprocessing`` manager: SIGTERM to the whole process group (systemd's ``KillMode=control-group``,
    ``kill -- -PGID``) ends the manager process (it ignores only SIGINT) while the server is shutting down in
    good order, and LitServe's monitoring thread then fails on its next look at the shutdown flag."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        lost = isinstance(error, (ConnectionError, EOFError))
        return not (lost and record.getMessage() == "Monitoring worker crashed")


def build_server(folder: Path, options: ServeOptions) -> Any:
    """A ready-to-``run`` ``LitServer`` over ``folder`` with validation, batching and ``/metrics``.

    The processes LitServe starts end with this one, also after ``kill -9`` (they would keep the port).
    """
    forked_children_exit_with_this_process()  # LitServe forks its HTTP servers
    logging.getLogger("litserve.server").addFilter(_ManagerGoneAtShutdown())
    record = metadata.read(folder)
    limits = request_limits(folder, record, options)
    counters = Counters(shared=True)  # updated in the worker process, read in the HTTP process
    api = ArtifactAPI(
        folder, options.format, counters, options.max_batch_size, options.batch_timeout, options.threads
    )
    server = ls.LitServer(
        api,
        accelerator="cpu",
        workers_per_device=options.workers,
        timeout=options.timeout,
        model_metadata=published_metadata(record, options),  # /info: no local paths
        max_payload_size=options.max_body_bytes,
        middlewares=[
            (
                RequestGuard,
                {
                    "path": "/predict",
                    "max_bytes": options.max_body_bytes,
                    "limits": limits,
                    "counters": counters,
                },
            )
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
