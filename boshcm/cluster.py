"""Several boshcm nodes behind a plain round-robin load balancer (docs/scaling.md): the pure parts.

- Node ids and sids that name their node: `<node>.<random>`, so any node knows, from the sid alone and before
  any session lookup, which node owns a BOSH session. No sticky cookies, no shared store.
- The signature of a request one node passes on to the owner of its session: HMAC-SHA256 with a shared secret
  over the protocol tag, a timestamp, the sending and the owning node, the sid, the client's address, the
  Origin and the raw body. A signature proves only that a node of ours saw this request from this address;
  the owner runs every protocol check (rid window, XEP-0124 §15 keys, Origin binding) as for a direct request.
  The timestamp bounds replays to `max_skew_seconds`; a replay within it is a repeated rid, which the session
  answers from its cache (XEP-0124 §14.3) and which changes nothing.
- The choice of upstream XMPP server for a new off-board session: round robin over `upstream.server`,
  skipping a server that failed lately, trying each at most once.

No I/O, no clock: `now` comes in.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from urllib.parse import urlsplit

NODE_ID = re.compile(r"[a-z0-9-]{1,32}")
SIGNATURE_TAG = b"boshcm-hop/1"
MIN_SECRET_BYTES = 16

# The headers of a passed-on request (the body is the client's, byte for byte).
HEADER_FROM = "X-Boshcm-Node"
HEADER_TIME = "X-Boshcm-Time"
HEADER_SID = "X-Boshcm-Sid"
HEADER_CLIENT = "X-Boshcm-Client"
HEADER_SIGNATURE = "X-Boshcm-Signature"
INTERNAL_PATH = "/internal/bosh"


class ClusterError(ValueError):
    """A node table or entry that cannot be used; the message names the problem."""


def valid_node_id(node: str) -> bool:
    return NODE_ID.fullmatch(node) is not None


def parse_node(entry: str) -> tuple[str, str]:
    """`"a=http://10.0.0.1:5281"` -> ("a", "http://10.0.0.1:5281")."""
    node, sep, url = entry.partition("=")
    node, url = node.strip(), url.strip().rstrip("/")
    if not sep or not valid_node_id(node):
        raise ClusterError(f"expected NODE=URL with NODE of a-z, 0-9 and '-'; got {entry!r}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.port is None or parts.path:
        raise ClusterError(f"expected a URL like http://10.0.0.1:5281 for node {node!r}; got {url!r}")
    return node, url


def parse_nodes(entries: Sequence[str]) -> dict[str, str]:
    nodes: dict[str, str] = {}
    for entry in entries:
        node, url = parse_node(entry)
        if node in nodes:
            raise ClusterError(f"node {node!r} is listed twice")
        nodes[node] = url
    return nodes


# --- sids ---------------------------------------------------------------------------------------

def sid_factory(node: str, random_part: Callable[[], str] = lambda: secrets.token_urlsafe(24)) -> Callable[[], str]:
    """Sids for this node: `<node>.<random>` (the random part is URL-safe base64, which has no dot)."""
    return lambda: f"{node}.{random_part()}"


def node_of(sid: str) -> str | None:
    """The node a sid names, or None for a sid that names none (refused like an unknown sid)."""
    node, sep, rest = sid.partition(".")
    if not sep or not rest or not valid_node_id(node):
        return None
    return node


# --- the signed hop -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class Hop:
    """What a passed-on request asserts, all of it covered by the signature."""

    timestamp: int          # seconds since the epoch, on the sending node's wall clock
    from_node: str
    to_node: str
    sid: str
    client: str             # the client's address as the sending node saw it (after trusted proxies)
    origin: str | None      # the client's Origin header, passed on unchanged
    body: bytes


class HopRefusal(Enum):
    MALFORMED = "malformed"
    UNKNOWN_NODE = "unknown-node"
    NOT_OURS = "not-ours"
    STALE = "stale"
    BAD_SIGNATURE = "bad-signature"


def sign(secret: bytes, hop: Hop) -> str:
    mac = hmac.new(secret, digestmod=hashlib.sha256)
    origin = b"\x00" if hop.origin is None else b"\x01" + hop.origin.encode()
    for part in (SIGNATURE_TAG, str(hop.timestamp).encode(), hop.from_node.encode(), hop.to_node.encode(),
                 hop.sid.encode(), hop.client.encode(), origin, hop.body):
        # Length-prefixed: no two different hops give the same bytes to sign.
        mac.update(len(part).to_bytes(8, "big"))
        mac.update(part)
    return mac.hexdigest()


def verify(secret: bytes, hop: Hop, signature: str, *, me: str, nodes: Sequence[str], now: float,
           max_skew_seconds: float) -> HopRefusal | None:
    """None when `hop` may be served here; otherwise why not. The signature is checked in constant time."""
    if hop.from_node not in nodes or hop.from_node == me:
        return HopRefusal.UNKNOWN_NODE
    if hop.to_node != me or node_of(hop.sid) != me:
        return HopRefusal.NOT_OURS  # one hop at most: a node never passes a request on again
    if abs(now - hop.timestamp) > max_skew_seconds:
        return HopRefusal.STALE
    if not hmac.compare_digest(sign(secret, hop).encode(), signature.encode()):
        return HopRefusal.BAD_SIGNATURE
    return None


def read_secret(data: bytes) -> bytes:
    """The shared secret from the contents of `cluster.secret_file` (surrounding whitespace ignored)."""
    secret = data.strip()
    if len(secret) < MIN_SECRET_BYTES:
        raise ClusterError(f"the secret must have at least {MIN_SECRET_BYTES} bytes; it has {len(secret)}")
    return secret


# --- upstream servers ---------------------------------------------------------------------------

Address = tuple[str, int]


class UpstreamServers:
    """Round robin over the XMPP servers of `upstream.server`; a server that failed is skipped for a while.

    `candidates(now)` is the order to try for one new session: the servers not known to be down, from the
    next one in turn, then those that failed, soonest retry first (so that when all seem down each is still
    tried). The adapter tries each at most once and reports `failed` or `succeeded`.
    """

    def __init__(self, servers: Sequence[Address], *, down_seconds: float) -> None:
        if not servers:
            raise ClusterError("no upstream server")
        self._servers = tuple(servers)
        self._down_seconds = down_seconds
        self._down_until: dict[Address, float] = {}
        self._turn = 0

    @property
    def servers(self) -> tuple[Address, ...]:
        return self._servers

    def candidates(self, now: float) -> list[Address]:
        count = len(self._servers)
        start, self._turn = self._turn, (self._turn + 1) % count
        ordered = [self._servers[(start + offset) % count] for offset in range(count)]
        for server, until in list(self._down_until.items()):
            if until <= now:
                del self._down_until[server]
        up = [server for server in ordered if server not in self._down_until]
        down = sorted((server for server in ordered if server in self._down_until), key=self._down_until.__getitem__)
        return up + down

    def failed(self, server: Address, now: float) -> None:
        self._down_until[server] = now + self._down_seconds

    def succeeded(self, server: Address) -> None:
        self._down_until.pop(server, None)

    def is_down(self, server: Address, now: float) -> bool:
        return self._down_until.get(server, now) > now
