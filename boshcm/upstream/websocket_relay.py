"""Off-board WebSocket: one RFC 7395 WebSocket relayed to an upstream XMPP server over an off-board link.

The framing is translated (`<open/>`/`<close/>` to and from the link's stream); the stream itself is the link's
(upstream/offboard_link.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from boshcm.errors import BoshCondition, RemoteProtocolError, StreamErrorCondition
from boshcm.stanza import NS_FRAMING, Element, element, local_name, namespace_of, stream_error_element
from boshcm.upstream.link import Link
from boshcm.ws_frames import CLOSE_FRAME, FrameWriter
from boshcm.xml.parser import parse_document
from boshcm.xml.writer import serialize

# (listener, to, lang) -> a link to the upstream server, not yet opened
RelayFactory = Callable[[Any, str, "str | None"], Link]


class WebSocketRelay(FrameWriter):
    """Off-board: one WebSocket relayed to an upstream XMPP server over TCP (the framing is translated)."""

    def __init__(self, ws: web.WebSocketResponse, *, new_link: RelayFactory, max_frame_bytes: int,
                 max_depth: int, peer: str, transport: asyncio.Transport | None) -> None:
        super().__init__(ws, peer, transport)
        self._new_link = new_link
        self._max_frame_bytes, self._max_depth = max_frame_bytes, max_depth
        self._link: Link | None = None
        self._done = False

    async def run(self) -> None:
        writer = self._start_writing()
        try:
            async for message in self._ws:
                if message.type is not WSMsgType.TEXT or self._done:
                    break
                self._on_frame(message.data.encode())
        except BaseException:
            writer.cancel()
            raise
        finally:
            if self._link is not None:
                # Lost, not closed (or already closed, which makes this a no-op): no `</stream:stream>`, so a
                # XEP-0198 stream stays resumable. The link keeps its listener (this relay) while it winds down;
                # the relay lets go of the link, so that the pair is freed without the cyclic collector.
                self._link.close()
                self._link = None
            self._end_writes()
        await writer

    def _on_frame(self, data: bytes) -> None:
        try:
            received = parse_document(data, max_bytes=self._max_frame_bytes, max_depth=self._max_depth)
        except RemoteProtocolError as error:
            self._fail(stream_error_element(error.condition, error.text))
            return
        if namespace_of(received) == NS_FRAMING and local_name(received) == "open":
            if self._link is None:
                self._link = self._new_link(self, received.get("to") or "",
                                            received.get("{http://www.w3.org/XML/1998/namespace}lang"))
                self._link.open()
            else:
                self._link.restart()  # RFC 7395 §3.7: the client's new <open/> after SASL
        elif namespace_of(received) == NS_FRAMING and local_name(received) == "close":
            if self._link is not None:
                self._link.close(by_client=True)
            self._finish()
        elif self._link is not None:
            self._link.forward((received,))

    # --- UpstreamListener -------------------------------------------------------------------------

    def upstream_opened(self, stream_id: str, domain: str) -> None:
        attrs = {"from": domain, "id": stream_id, "version": "1.0", "{http://www.w3.org/XML/1998/namespace}lang": "en"}
        self._send(serialize(element(NS_FRAMING, "open", attrs)).decode())

    def upstream_stanzas(self, stanzas: tuple[Element | bytes, ...]) -> None:
        for stanza in stanzas:
            self._send((stanza if isinstance(stanza, bytes) else serialize(stanza)).decode())

    def upstream_closed(self, condition: BoshCondition | None, stanzas: tuple[Element, ...] = ()) -> None:
        if condition is BoshCondition.REMOTE_STREAM_ERROR and stanzas:
            self._fail(stanzas[0])
        elif condition is BoshCondition.POLICY_VIOLATION:
            # The client sent more than its upstream server took (upstream.max_backlog_bytes): its own doing.
            self._fail(stream_error_element(StreamErrorCondition.POLICY_VIOLATION))
        elif condition is not None:
            self._fail(stream_error_element(StreamErrorCondition.REMOTE_CONNECTION_FAILED))
        else:
            self._finish()

    def shutdown(self) -> None:
        """The node stops: the client hears `system-shutdown` and reconnects (through another node); the
        upstream link is dropped without `</stream:stream>`, so its XEP-0198 stream can be resumed there."""
        if self._done:
            return
        if self._link is not None:
            self._link.close(by_client=False)
        self._fail(stream_error_element(StreamErrorCondition.SYSTEM_SHUTDOWN))

    def _fail(self, error: Element) -> None:
        self._send(serialize(error).decode())
        self._finish()

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            self._send(CLOSE_FRAME)
            self._end_writes()
