"""What a link to an XMPP server is, for the transports in front of it (BOSH, the off-board WebSocket relay)."""

from __future__ import annotations

from typing import Protocol

from boshcm.errors import BoshCondition
from boshcm.stanza import Element


class UpstreamListener(Protocol):
    """Who hears from an upstream XMPP stream: a BOSH session or a WebSocket relay."""

    def upstream_opened(self, stream_id: str, domain: str) -> None: ...
    def upstream_stanzas(self, stanzas: tuple[Element | bytes, ...]) -> None: ...  # bytes: serialised already
    def upstream_closed(self, condition: BoshCondition | None, stanzas: tuple[Element, ...] = ()) -> None: ...


class Link(Protocol):
    """The XMPP side of one BOSH session or off-board WebSocket: the embedded server's session core
    (`OnboardLink`), or a TCP stream to an upstream server (`OffboardLink`)."""

    def open(self) -> None: ...
    def forward(self, stanzas: tuple[Element, ...]) -> None: ...
    def restart(self) -> None: ...
    def close(self, *, by_client: bool = False) -> None: ...
