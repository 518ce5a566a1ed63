"""Several nodes: the hop between them (docs/scaling.md). Rules (sids, signatures) live in boshcm/cluster.py.

A node that receives a request for a session another node owns passes it on (`NodePeers`, an aiohttp client
with a connection pool per peer) to that node's internal listener (`InternalEndpoint`), which checks the
signature and runs the request through the same BOSH handling as a direct one: the hop adds trust only for the
client's address. The internal listener is not the public one: only the nodes reach it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

import aiohttp
from aiohttp import web

from boshcm.bosh.http import BoshEndpoint, Forwarded, OwnerAnswer
from boshcm.cluster import (
    HEADER_CLIENT,
    HEADER_FROM,
    HEADER_SID,
    HEADER_SIGNATURE,
    HEADER_TIME,
    INTERNAL_PATH,
    Hop,
    sign,
    verify,
)

log = logging.getLogger(__name__)

POOL_SIZE_PER_PEER = 1_000        # held requests wait in these connections: up to `hold` per passed-on session
POOL_KEEPALIVE_SECONDS = 10.0     # below the internal listener's idle timeout, so a reused connection is open
INTERNAL_IDLE_TIMEOUT_SECONDS = 75.0


class NodePeers:
    """The other nodes, each with its own connection pool: `forward` passes one request to its owner."""

    def __init__(self, *, me: str, nodes: Mapping[str, str], secret: bytes, wall_clock: Callable[[], float],
                 timeout_seconds: float) -> None:
        self._me, self._secret, self._wall_clock = me, secret, wall_clock
        self._urls = {node: url for node, url in nodes.items() if node != me}
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds, connect=min(3.0, timeout_seconds))
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    def knows(self, node: str) -> bool:
        return node in self._urls

    def _session(self, node: str) -> aiohttp.ClientSession:
        if (session := self._sessions.get(node)) is None:
            connector = aiohttp.TCPConnector(limit=POOL_SIZE_PER_PEER, keepalive_timeout=POOL_KEEPALIVE_SECONDS)
            session = self._sessions[node] = aiohttp.ClientSession(connector=connector, timeout=self._timeout,
                                                                   auto_decompress=False)
        return session

    def headers(self, node: str, *, sid: str, body: bytes, client: str, origin: str | None) -> dict[str, str]:
        hop = Hop(timestamp=int(self._wall_clock()), from_node=self._me, to_node=node, sid=sid, client=client,
                  origin=origin, body=body)
        headers = {HEADER_FROM: self._me, HEADER_TIME: str(hop.timestamp), HEADER_SID: sid, HEADER_CLIENT: client,
                   HEADER_SIGNATURE: sign(self._secret, hop), "Content-Type": "text/xml; charset=utf-8"}
        if origin is not None:
            headers["Origin"] = origin
        return headers

    async def forward(self, node: str, *, sid: str, body: bytes, client: str,
                      origin: str | None) -> OwnerAnswer | None:
        """The owner's answer, or None when it cannot be reached or refuses the hop."""
        url = self._urls[node] + INTERNAL_PATH
        headers = self.headers(node, sid=sid, body=body, client=client, origin=origin)
        for attempt in (1, 2):
            try:
                async with self._session(node).post(url, data=body, headers=headers) as reply:
                    data = await reply.read()
                    if reply.status != 200:
                        log.warning("node %s refused a passed-on request: HTTP %d", node, reply.status)
                        return None
                    return OwnerAnswer(body=data, content_type=reply.headers.get("Content-Type", "text/xml"))
            except aiohttp.ServerDisconnectedError:
                # A pooled connection the peer had just closed: BOSH requests may be repeated (the rid says so).
                if attempt == 2:
                    log.info("node %s closed the connection", node)
            except (aiohttp.ClientError, TimeoutError, OSError) as error:
                log.info("node %s unreachable: %r", node, error)
                return None
        return None

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        await asyncio.gather(*(session.close() for session in sessions))


class InternalEndpoint:
    """The internal listener's handler: signed requests from the other nodes, for sessions of this node."""

    def __init__(self, *, bosh: BoshEndpoint, me: str, nodes: Mapping[str, str], secret: bytes,
                 wall_clock: Callable[[], float], max_skew_seconds: float) -> None:
        self._bosh, self._me, self._nodes = bosh, me, tuple(nodes)
        self._secret, self._wall_clock, self._max_skew_seconds = secret, wall_clock, max_skew_seconds

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("POST", INTERNAL_PATH, self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        fields = [request.headers.get(name) for name in (HEADER_FROM, HEADER_TIME, HEADER_SID, HEADER_CLIENT,
                                                         HEADER_SIGNATURE)]
        from_node, timestamp, sid, client, signature = fields
        if from_node is None or timestamp is None or sid is None or client is None or signature is None \
                or not timestamp.isdigit():
            return web.Response(status=403, text="unsigned")
        try:
            body = await self._bosh.read_body(request)
        except TimeoutError:
            return web.Response(status=408, text="body too slow")
        if body is None:
            return web.Response(status=413, text="body too large")
        hop = Hop(timestamp=int(timestamp), from_node=from_node, to_node=self._me, sid=sid, client=client,
                  origin=request.headers.get("Origin"), body=body)
        refusal = verify(self._secret, hop, signature, me=self._me, nodes=self._nodes, now=self._wall_clock(),
                         max_skew_seconds=self._max_skew_seconds)
        if refusal is not None:
            log.warning("refused a request from %s claiming to be node %r: %s", request.remote, from_node,
                        refusal.value)
            return web.Response(status=403, text=refusal.value)
        return await self._bosh.handle_forwarded(request, Forwarded(sid=sid, client=client, body=body))
