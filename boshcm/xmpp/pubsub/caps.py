"""XEP-0115 entity capabilities, as far as PEP needs them: which `<node>+notify` features each resource has.

A presence carries `<c node ver hash/>`. A `ver` seen before is looked up in a bounded cache; an unknown one
becomes an order to ask that resource (disco#info on `node#ver`), and the answer is a later fact. Answers
whose features hash to the advertised `ver` (XEP-0115 §5) are cached for everyone; others count only for
the resource that sent them. Nothing here waits: one question per resource is outstanding at most.
"""

from __future__ import annotations

import base64
import hashlib
from collections import OrderedDict
from dataclasses import dataclass

from boshcm.jid import JID, InvalidJID
from boshcm.stanza import NS_DATA_FORMS, NS_DISCO_INFO, NS_XML, Element, element, make_stanza, qname

NS_CAPS = "http://jabber.org/protocol/caps"
NOTIFY_SUFFIX = "+notify"
# Most +notify features kept per capability set: no client is interested in more nodes than this.
MAX_INTERESTS = 256

_HASHES = {"sha-1": "sha1", "sha-224": "sha224", "sha-256": "sha256", "sha-384": "sha384", "sha-512": "sha512"}


@dataclass(frozen=True, slots=True, kw_only=True)
class CapsQuery:
    """Ask `to` what its capabilities are (XEP-0115 §6.2); the iq is ready to send."""

    to: JID
    iq: Element


@dataclass(frozen=True, slots=True, kw_only=True)
class _Asked:
    to: JID
    key: str | None          # "hash ver" to cache under when the answer verifies; None for legacy caps
    ver: str
    algorithm: str


class CapsBook:
    def __init__(self, *, domain: str, max_entries: int = 1024) -> None:
        self._domain = domain
        self._max_entries = max_entries
        self._known: OrderedDict[str, frozenset[str]] = OrderedDict()
        self._interests: dict[JID, frozenset[str]] = {}
        self._pending: dict[str, _Asked] = {}
        self._asked: dict[JID, str] = {}
        self._counter = 0

    def interests(self, jid: JID) -> frozenset[str]:
        """Nodes whose notifications `jid` asked for with `<node>+notify`."""
        return self._interests.get(jid, frozenset())

    def presence(self, jid: JID, presence: Element) -> CapsQuery | None:
        """An available presence from `jid`; learn its interests now, or ask for them."""
        caps = presence.find(qname(NS_CAPS, "c"))
        if caps is None:
            return None  # keeps what it said before: not every client repeats caps on each presence
        node, ver, algorithm = caps.get("node", ""), caps.get("ver", ""), caps.get("hash", "")
        if not node or not ver:
            return None
        key = f"{algorithm} {ver}" if algorithm in _HASHES else None
        if key is not None and key in self._known:
            self._known.move_to_end(key)
            self._interests[jid] = self._known[key]
            return None
        self._counter += 1
        query_id = f"caps{self._counter}"
        if (previous := self._asked.pop(jid, None)) is not None:
            self._pending.pop(previous, None)
        self._asked[jid] = query_id
        self._pending[query_id] = _Asked(to=jid, key=key, ver=ver, algorithm=algorithm)
        iq = make_stanza("iq", {"type": "get", "id": query_id, "to": str(jid), "from": self._domain})
        iq.append(element(NS_DISCO_INFO, "query", {"node": f"{node}#{ver}"}))
        return CapsQuery(to=jid, iq=iq)

    def answer(self, iq: Element) -> JID | None:
        """An iq result/error from a client; the JID whose interests it settled, or None if not ours."""
        asked = self._pending.get(iq.get("id", ""))
        if asked is None:
            return None
        try:
            sender = JID.parse(iq.get("from", ""))
        except InvalidJID:
            return None
        if sender != asked.to:
            return None  # only the asked resource may answer (its own id, from its own JID)
        del self._pending[iq.get("id", "")]
        self._asked.pop(sender, None)
        query = iq.find(qname(NS_DISCO_INFO, "query"))
        if iq.get("type") != "result" or query is None:
            return None
        interests = frozenset(sorted(
            var.removesuffix(NOTIFY_SUFFIX)
            for var in (feature.get("var", "") for feature in query.iter(qname(NS_DISCO_INFO, "feature")))
            if var.endswith(NOTIFY_SUFFIX) and len(var) > len(NOTIFY_SUFFIX))[:MAX_INTERESTS])
        self._interests[sender] = interests
        if asked.key is not None and verification_hash(query, asked.algorithm) == asked.ver:
            self._known[asked.key] = interests
            while len(self._known) > self._max_entries:
                self._known.popitem(last=False)
        return sender

    def forget(self, jid: JID) -> None:
        self._interests.pop(jid, None)
        if (query_id := self._asked.pop(jid, None)) is not None:
            self._pending.pop(query_id, None)


def verification_hash(query: Element, algorithm: str) -> str | None:
    """XEP-0115 §5.1 verification string hashed with `algorithm`; None when §5.4 says not to trust it."""
    if algorithm not in _HASHES:
        return None
    identities = [(identity.get("category", ""), identity.get("type", ""), identity.get(qname(NS_XML, "lang"), ""),
                   identity.get("name", "")) for identity in query.iter(qname(NS_DISCO_INFO, "identity"))]
    features = [feature.get("var", "") for feature in query.iter(qname(NS_DISCO_INFO, "feature"))]
    if len(set(identities)) != len(identities) or len(set(features)) != len(features):
        return None  # §5.4 3.3/3.4: duplicates make the answer unusable
    text = "".join("/".join(identity) + "<" for identity in sorted(identities))
    text += "".join(feature + "<" for feature in sorted(features))
    forms: dict[str, list[tuple[str, list[str]]]] = {}
    for form in query.iter(qname(NS_DATA_FORMS, "x")):
        form_type: str | None = None
        fields: list[tuple[str, list[str]]] = []
        for field in form.iter(qname(NS_DATA_FORMS, "field")):
            values = sorted(value.text or "" for value in field.iter(qname(NS_DATA_FORMS, "value")))
            if field.get("var") == "FORM_TYPE":
                if field.get("type") not in (None, "hidden") or len(values) != 1:
                    return None
                form_type = values[0]
            else:
                fields.append((field.get("var", ""), values))
        if form_type is None:
            continue  # §5.4 3.6: forms without FORM_TYPE are ignored
        if form_type in forms:
            return None
        forms[form_type] = fields
    for form_type in sorted(forms):
        text += form_type + "<"
        for var, values in sorted(forms[form_type]):
            text += var + "<" + "".join(value + "<" for value in values)
    digest = hashlib.new(_HASHES[algorithm], text.encode("utf-8")).digest()
    return base64.b64encode(digest).decode("ascii")
