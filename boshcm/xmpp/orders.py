"""The router's orders, which the hub performs: deliver a stanza to a bound full JID, close a session.

Every job of the router (routing, presence, roster, offline storage, server iqs) answers with these, so they
live apart from all of them; `boshcm.xmpp.router` re-exports them for the hub and the sessions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from boshcm.errors import StreamErrorCondition
from boshcm.jid import JID
from boshcm.stanza import Element, addressed_copy


@dataclass(frozen=True, slots=True, kw_only=True)
class Deliver:
    """Put `stanza` on the session bound to the full JID `to`."""

    to: JID
    stanza: Element


@dataclass(frozen=True, slots=True, kw_only=True)
class Disconnect:
    """Close the session bound to `jid` with a stream error."""

    jid: JID
    condition: StreamErrorCondition


RouterAction = Deliver | Disconnect


def fan_out(stanza: Element, recipients: Iterable[JID]) -> list[RouterAction]:
    """One copy of `stanza` for each recipient, addressed to it."""
    return [Deliver(to=jid, stanza=addressed_copy(stanza, jid)) for jid in recipients]
