"""What both WebSocket adapters share: the RFC 7395 close frame and one bounded writer task per socket.

The on-board adapter (websocket.py) and the off-board relay (upstream/websocket_relay.py) both write through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import deque
from typing import Final

from aiohttp import WSCloseCode, web

log = logging.getLogger(__name__)
wire_log = logging.getLogger("boshcm.wire")

# Strophe recognises the server's close only in exactly this form (docs/protocol.md, "Interoperability notes").
CLOSE_FRAME: Final = '<close xmlns="urn:ietf:params:xml:ns:xmpp-framing" />'
CLOSE_TIMEOUT_SECONDS: Final = 2.0
# A client that stops reading must not grow our memory without bound (as for TCP in xmpp/c2s.py).
MAX_QUEUED_BYTES: Final = 4 * 1024 * 1024


class FrameWriter:
    """One writer task per socket: frames are queued synchronously (sinks must not block) and sent in order.

    The queue is bounded in bytes: past `MAX_QUEUED_BYTES` the frames not yet sent are dropped, the subclass
    is told (`_overflowed`) so it can end the stream, and a socket that does not take even that is aborted.
    """

    def __init__(self, ws: web.WebSocketResponse, peer: str, transport: asyncio.Transport | None,
                 max_queued_bytes: int = MAX_QUEUED_BYTES) -> None:
        self._ws, self._peer = ws, peer
        self._transport = transport
        # Frames for the writer task, oldest first (None: no more), and the future it waits on while there are none.
        # Not an asyncio.Queue: that is four deques and an Event per socket for the cyclic collector to walk.
        self._frames: deque[str | None] = deque()
        self._wakeup: asyncio.Future[None] | None = None
        self._queued_bytes = 0
        self._max_queued_bytes = max_queued_bytes
        self._overflow = False

    def _put(self, frame: str | None) -> None:
        self._frames.append(frame)
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def _send(self, frame: str) -> None:
        self._put(frame)
        self._queued_bytes += len(frame)
        if self._queued_bytes > self._max_queued_bytes and not self._overflow:
            self._overflow = True
            self._frames.clear()
            self._queued_bytes = 0
            if self._transport is not None:
                # The last frames get a short chance; a client that reads nothing is cut off.
                asyncio.get_running_loop().call_later(CLOSE_TIMEOUT_SECONDS, self._transport.abort)
            self._overflowed()

    def _overflowed(self) -> None:
        """The client is not keeping up; end the stream."""

    def _end_writes(self) -> None:
        self._put(None)

    def _start_writing(self) -> asyncio.Task[None]:
        """The write loop as a task beside the reader, the calling (handler's) task. Not a TaskGroup: on Python
        3.11 a cancelled TaskGroup keeps the CancelledError in a frame of its own traceback, a reference cycle
        holding the adapter and its session until a full collection, for every phone that drops its connection.
        As a TaskGroup would, a writer that fails (a bug: it handles a gone client itself) cancels the reader."""
        reader = asyncio.current_task()
        assert reader is not None
        writer = asyncio.create_task(self._write_loop())
        writer.add_done_callback(functools.partial(_cancel_reader_on_failure, reader, self._peer))
        return writer

    async def _next_frame(self) -> str | None:
        while not self._frames:
            self._wakeup = asyncio.get_running_loop().create_future()
            try:
                await self._wakeup
            finally:
                self._wakeup = None
        return self._frames.popleft()

    async def _write_loop(self) -> None:
        while (frame := await self._next_frame()) is not None:
            self._queued_bytes -= len(frame)
            wire_log.debug("%s WS SEND %r", self._peer, frame)
            try:
                await self._ws.send_str(frame)
            except ConnectionError:
                return
        if not self._ws.closed:
            with contextlib.suppress(ConnectionError, TimeoutError):
                await asyncio.wait_for(self._ws.close(code=WSCloseCode.OK), CLOSE_TIMEOUT_SECONDS)


def _cancel_reader_on_failure(reader: asyncio.Task[object], peer: str, writer: asyncio.Task[None]) -> None:
    if not writer.cancelled() and (error := writer.exception()) is not None:
        log.error("ws %s: writing failed, closing the connection", peer, exc_info=error)
        reader.cancel()
