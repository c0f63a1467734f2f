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
        self._deadline: float | None = None  # loop time by which the request being received must be in
        self._timer: asyncio.TimerHandle | None = None  # at most one per connection, re-armed lazily
        self._previous_cycle: Any = None  # the request already received when the deadline was set

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._deadline is None:  # the first bytes of the next request on a kept-alive connection
            self._arm()
        super().data_received(data)
        cycle = self.cycle
        if cycle is not None and cycle is not self._previous_cycle and not cycle.more_body:
            self._deadline = None  # this request is complete

    def on_response_complete(self) -> None:
        self._deadline = (
            None  # answered (maybe before its body was read): uvicorn's keep-alive timer takes over
        )
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def _arm(self) -> None:
        """Start the clock for the request now being received. Setting a number per request, not a new
        timer: the connection's one timer, when it fires, checks the deadline then in force."""
        self._previous_cycle = self.cycle
        self._deadline = self.loop.time() + self.read_timeout
        if self._timer is None:
            self._timer = self.loop.call_at(self._deadline, self._check)

    def _check(self) -> None:
        self._timer = None
        if self._deadline is None:
            return  # no request is being received; the next one arms the timer again
        if self.loop.time() < self._deadline:  # a later request set a later deadline
            self._timer = self.loop.call_at(self._deadline, self._check)
        elif not self.transport.is_closing():
            logger.info("closing %s: request not received within %s s", self.client, self.read_timeout)
            self.transport.close()
