"""The FastAPI/uvicorn backend (``litforge serve EXPORT_DIR``, the default): model and HTTP in one process.

Requests are validated by ``RequestGuard``, batched on the event loop by ``DynamicBatcher`` and run on
one inference thread; no inter-process hop per request. ``--workers N`` runs N such processes on one
port (uvicorn's supervisor); each loads the artifact and keeps its own ``/metrics``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

from litforge.export import metadata
from litforge.export.artifact import Artifact
from litforge.processes.heap import freeze_loaded_heap
from litforge.processes.lifetime import exit_when_gone
from litforge.serve.batcher import DynamicBatcher
from litforge.serve.codecs import RequestError
from litforge.serve.guard import RequestGuard
from litforge.serve.inference import Counters, decode, infer
from litforge.serve.options import ServeOptions, published_metadata, request_limits
from litforge.serve.read_deadline import RequestDeadlineProtocol

CONFIG_ENV = "LITFORGE_SERVE_CONFIG"


def create_app(folder: Path, options: ServeOptions) -> FastAPI:
    """The ASGI app: ``/predict``, ``/health`` (503 until loaded), ``/info``, ``/metrics``."""
    record = metadata.read(folder)
    public_metadata = published_metadata(record, options)  # no local paths
    counters = Counters()
    state: dict[str, Any] = {"artifact": None, "batcher": None}

    async def load() -> None:
        artifact = await asyncio.to_thread(Artifact.open, folder, options.format, options.threads)
        freeze_loaded_heap()
        batcher = DynamicBatcher(
            lambda parts: infer(artifact, parts, counters), options.max_batch_size, options.batch_timeout
        )
        batcher.start()
        state.update(artifact=artifact, batcher=batcher)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        loading = asyncio.create_task(load())  # /health answers 503 while this runs
        yield
        await asyncio.gather(loading, return_exceptions=True)
        if state["batcher"] is not None:
            await state["batcher"].stop()

    async def predict(payload: dict[str, Any]) -> tuple[int, Any]:
        """``POST /predict`` once ``RequestGuard`` has validated the body (it answers the request)."""
        if state["batcher"] is None:
            return 503, {"detail": "model not loaded yet"}
        submitted = state["batcher"].submit(decode(state["artifact"], payload))
        try:
            answer = await asyncio.wait_for(submitted, options.timeout)
        except asyncio.TimeoutError:
            return 504, {"detail": f"no answer within {options.timeout} s"}
        # the model refused this request's values; the rest of its batch is answered
        if isinstance(answer, RequestError):
            return answer.status, {"detail": answer.message}
        return 200, answer

    app = FastAPI(title="litforge serve", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.add_middleware(
        RequestGuard,
        path="/predict",
        max_bytes=options.max_body_bytes,
        limits=request_limits(folder, record, options),
        counters=counters,
        handler=predict,
    )

    @app.get("/health")
    async def health() -> PlainTextResponse:
        ready = state["batcher"] is not None
        return PlainTextResponse("ok" if ready else "not ready", status_code=200 if ready else 503)

    @app.get("/info")
    async def info() -> dict[str, Any]:
        return {"model": public_metadata, "server": {"backend": "fastapi", **options.__dict__}}

    @app.get("/metrics")
    async def metrics() -> dict[str, Any]:
        return {
            **counters.snapshot(),
            "max_batch_size": options.max_batch_size,
            "batch_timeout": options.batch_timeout,
        }

    return app


def app_from_env() -> FastAPI:
    """uvicorn factory for ``--workers N``: the folder and options travel in ``LITFORGE_SERVE_CONFIG``."""
    config = json.loads(os.environ[CONFIG_ENV])
    server_pid = config.pop("server_pid")
    if os.getpid() != server_pid:  # a worker uvicorn spawned: end with the server, even after kill -9
        exit_when_gone(server_pid)
    return create_app(Path(config.pop("folder")), ServeOptions(**config))


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def run(folder: Path, options: ServeOptions, host: str, port: int, log_level: str) -> None:
    """Serve until SIGTERM / Ctrl+C; uvicorn stops accepting, finishes in-flight requests, then exits."""
    import uvicorn

    os.environ[CONFIG_ENV] = json.dumps(
        {"folder": str(folder), "server_pid": os.getpid(), **options.__dict__}
    )
    # uvicorn drains, then re-raises the SIGTERM it captured; this handler turns that into exit code 0.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    uvicorn.run(
        "litforge.serve.fastapi_backend:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=options.workers,
        log_level=log_level,
        timeout_graceful_shutdown=30,
        proxy_headers=False,  # bound to loopback by default; no proxy's X-Forwarded-For is trusted
        http=RequestDeadlineProtocol,  # a request must arrive within --read-timeout
    )
