"""ASGI middleware that answers every bad ``POST /predict`` with a 4xx before it reaches a model worker.

LitServe batches requests in the worker and fails a whole batch when one request's decoding raises, so
validation happens here, in the HTTP process: body size (413), JSON (400), schema, row length, numbers,
NaN/inf (422), row count (413). Valid bodies are replayed unchanged to LitServe, as JSON, or, given a
``handler`` (the FastAPI backend), answered right here: FastAPI's routing and dependency stack cost each
request about as much as everything else together, so ``/predict`` skips it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from litforge.serve.codecs import RequestError, RequestLimits, parse_body, validate
from litforge.serve.inference import Counters

# A validated request body -> (HTTP status, JSON answer).
Handler = Callable[[Any], Awaitable[tuple[int, Any]]]


class RequestGuard:
    """Pure-ASGI middleware (``LitServer(middlewares=[(RequestGuard, {...})])``)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        path: str,
        max_bytes: int,
        limits: RequestLimits,
        counters: Counters,
        handler: Handler | None = None,
    ) -> None:
        self.app = app
        self.path = path
        self.max_bytes = max_bytes
        self.limits = limits
        self.counters = counters
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        answered: list[int] = []
        send = _counted(send, self.counters, answered)
        try:
            await self._answer(scope, receive, send)
        except Exception:  # answered 500 by the server's error handler, outside this middleware
            if not answered:
                self.counters.answered(500)
            raise

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            if self.handler is None:  # LitServe's own route answers
                await self.app(scope, receive, send)
            else:
                await _reply(send, 405, {"detail": f"{self.path} takes POST"})
            return
        try:
            body = await self._read_body(scope, receive)
            payload = parse_body(body, self.limits)
            validate(payload, self.limits)
        except RequestError as err:
            await _reply(send, err.status, {"detail": err.message})
            return
        if self.handler is not None:
            await _reply(send, *await self.handler(payload))
            return
        # The body is JSON whatever the client declared (``curl -d`` says form-urlencoded); tell LitServe so.
        headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
        scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        await self.app(scope, _replay(body, receive), _refusals_as_status(send))

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            raise RequestError(413, f"body of {int(declared)} bytes; the limit is {self.max_bytes}")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise RequestError(400, "client disconnected")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise RequestError(413, f"body over {self.max_bytes} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


REFUSAL_KEY = "litforge_refused"  # an answer ``{REFUSAL_KEY: status, "detail": ...}`` becomes that status
_REFUSAL_START = f'{{"{REFUSAL_KEY}":'.encode()  # how such an answer's JSON body begins


def refusal_answer(error: RequestError) -> dict[str, Any]:
    """A request the model refused, as LitServe's worker answers it (its batch loop fails a whole batch on
    an exception): ``_refusals_as_status`` turns it into the status it names, here in the HTTP process."""
    return {REFUSAL_KEY: error.status, "detail": error.message}


def _counted(send: Send, counters: Counters, answered: list[int]) -> Send:
    """``send`` that counts each answer's status in ``counters`` (``/metrics``'s ``answers``) and notes it in
    ``answered``."""

    async def send_counted(message: Message) -> None:
        if message["type"] == "http.response.start":
            counters.answered(int(message["status"]))
            answered.append(int(message["status"]))
        await send(message)

    return send_counted


def _refusals_as_status(send: Send) -> Send:
    """``send`` for LitServe's answers: a 200 whose JSON body is a ``refusal_answer`` goes out as its own
    status with ``{"detail": ...}``; every other answer unchanged."""
    held: Message | None = None

    async def send_answer(message: Message) -> None:
        nonlocal held
        if message["type"] == "http.response.start" and message["status"] == 200:
            held = message
            return
        if held is not None and message["type"] == "http.response.body":
            start, held = held, None
            body = message.get("body", b"")
            if body.startswith(_REFUSAL_START) and not message.get("more_body", False):
                answer = json.loads(body)
                await _reply(send, int(answer[REFUSAL_KEY]), {"detail": answer["detail"]})
                return
            await send(start)
        await send(message)

    return send_answer


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _reply(send: Send, status: int, content: Any) -> None:
    body = json.dumps(content).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
