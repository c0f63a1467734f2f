"""A deadline for receiving each request, headers and body (``litforge serve --read-timeout SECONDS``).

uvicorn bounds idle keep-alive connections (``timeout_keep_alive``) but not a request being received: a
client that sends a header line every few seconds, or its body a byte at a time, holds its connection
open for as long as it likes (Slowloris; uvicorn issue #157). ``RequestDeadlineProtocol`` is uvicorn's own
HTTP protocol (httptools when installed, else h11, as uvicorn picks) with one timer per request: armed
when a connection opens or the first bytes of its next request arrive, disarmed once the request is
complete (headers and body) or answered, and closing the connection if it fires first. How long the
model takes to answer is not bounded by it.

The timeout travels to every server process (uvicorn's spawned workers, LitServe's forked servers) in
``LITFORGE_SERVE_READ_TIMEOUT``, set by ``configure``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

READ_TIMEOUT_ENV = "LITFORGE_SERVE_READ_TIMEOUT"
DEFAULT_READ_TIMEOUT = 15.0

logger = logging.getLogger("uvicorn.error")


def configure(seconds: float) -> None:
    """Set the read timeout of every ``RequestDeadlineProtocol`` of this process and its children."""
    os.environ[READ_TIMEOUT_ENV] = repr(float(seconds))


class RequestDeadlineProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
    """uvicorn's HTTP protocol, closing a connection whose request is not received within the timeout.

    Uses the protocol's ``cycle`` (the request being answered) and its ``more_body`` (False once the
    whole body is in), which both of uvicorn's HTTP/1.1 implementations keep.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read_timeout = float(os.environ.get(READ_TIMEOUT_ENV, DEFAULT_READ_TIMEOUT))
        self._deadline: asyncio.TimerHandle | None = None
        self._previous_cycle: Any = None  # the request already received when the deadline was armed

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._deadline is None:  # the first bytes of the next request on a kept-alive connection
            self._arm()
        super().data_received(data)
        cycle = self.cycle
        if cycle is not None and cycle is not self._previous_cycle and not cycle.more_body:
            self._disarm()  # this request is complete

    def on_response_complete(self) -> None:
        self._disarm()  # answered (maybe before its body was read): uvicorn's keep-alive timer takes over
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._previous_cycle = self.cycle
        self._deadline = self.loop.call_later(self.read_timeout, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            logger.info("closing %s: request not received within %s s", self.client, self.read_timeout)
            self.transport.close()
