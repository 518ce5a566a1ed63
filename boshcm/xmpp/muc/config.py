"""Room configuration (XEP-0045 §10.2): the settings and the muc#roomconfig data form (XEP-0004)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from boshcm.stanza import NS_DATA_FORMS, Element, element, qname, sub
from boshcm.xmpp.muc.roles import PRESENT_ROLES as ROLES
from boshcm.xmpp.muc.roles import Role

FORM_TYPE = "http://jabber.org/protocol/muc#roomconfig"
# Not a registered muc#roomconfig field: named in Clark notation (XEP-0068 §3.4), as Prosody names its own.
QUIET_ABOVE = "{urn:boshcm:muc:0}roomconfig_quietabove"


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomConfig:
    name: str = ""
    description: str = ""
    persistent: bool = False
    public: bool = True
    password: str = ""
    members_only: bool = False
    moderated: bool = False
    max_users: int = 0                # 0: no limit
    whois: str = "moderators"         # who sees real JIDs: moderators (semi-anonymous) | anyone
    change_subject: bool = False      # participants may change the subject
    allow_invites: bool = True
    history_length: int = 20
    # XEP-0045 §10.2 muc#roomconfig_presencebroadcast: the roles whose presence everyone sees. A quiz room
    # broadcasts only its moderators', so N joins cost O(N) stanzas instead of O(N²).
    presence_broadcast: tuple[Role, ...] = ROLES
    # boshcm's own field (QUIET_ABOVE): with more occupants than this, only moderators' presence is broadcast, until
    # fewer than half of it are left. The room switches at the join that crosses it, so a wave of joins never
    # makes it walk a crowd twice (loud joins, then the N² unavailables of going quiet late). 0: never.
    quiet_above: int = 0

    def to_dict(self) -> dict[str, object]:
        data = dataclasses.asdict(self)
        data["presence_broadcast"] = list(self.presence_broadcast)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> RoomConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        if isinstance(roles := values.get("presence_broadcast"), list):
            values["presence_broadcast"] = tuple(role for role in ROLES if role in roles)
        return cls(**values)  # type: ignore[arg-type]


# form variable -> (field name, type)
_FIELDS: dict[str, tuple[str, str]] = {
    "muc#roomconfig_roomname": ("name", "text-single"),
    "muc#roomconfig_roomdesc": ("description", "text-single"),
    "muc#roomconfig_persistentroom": ("persistent", "boolean"),
    "muc#roomconfig_publicroom": ("public", "boolean"),
    "muc#roomconfig_passwordprotectedroom": ("password_protected", "boolean"),
    "muc#roomconfig_roomsecret": ("password", "text-private"),
    "muc#roomconfig_membersonly": ("members_only", "boolean"),
    "muc#roomconfig_moderatedroom": ("moderated", "boolean"),
    "muc#roomconfig_maxusers": ("max_users", "text-single"),
    "muc#roomconfig_whois": ("whois", "list-single"),
    "muc#roomconfig_changesubject": ("change_subject", "boolean"),
    "muc#roomconfig_allowinvites": ("allow_invites", "boolean"),
    "muc#roomconfig_historylength": ("history_length", "text-single"),
    "muc#roomconfig_presencebroadcast": ("presence_broadcast", "list-multi"),
    QUIET_ABOVE: ("quiet_above", "text-single"),
}


def config_form(config: RoomConfig) -> Element:
    form = element(NS_DATA_FORMS, "x", {"type": "form"})
    sub(form, NS_DATA_FORMS, "title", text="Room configuration")
    hidden = sub(form, NS_DATA_FORMS, "field", {"var": "FORM_TYPE", "type": "hidden"})
    sub(hidden, NS_DATA_FORMS, "value", text=FORM_TYPE)
    for var, (name, field_type) in _FIELDS.items():
        field = sub(form, NS_DATA_FORMS, "field", {"var": var, "type": field_type})
        if name == "presence_broadcast":
            for role in ROLES:
                sub(sub(field, NS_DATA_FORMS, "option", {"label": role}), NS_DATA_FORMS, "value", text=role)
            for role in config.presence_broadcast:
                sub(field, NS_DATA_FORMS, "value", text=role)
            continue
        if name == "password_protected":
            value: object = bool(config.password)
        else:
            value = getattr(config, name)
        text = ("1" if value else "0") if isinstance(value, bool) else str(value)
        if name == "whois":
            for option in ("moderators", "anyone"):
                sub(sub(field, NS_DATA_FORMS, "option", {"label": option}), NS_DATA_FORMS, "value", text=option)
        sub(field, NS_DATA_FORMS, "value", text=text)
    return form


def parse_config_submission(form: Element, current: RoomConfig) -> RoomConfig:
    """Apply a submitted form; an empty submission accepts the current (instant room) settings."""
    changes: dict[str, object] = {}
    password_protected: bool | None = None
    for field in form.iter(qname(NS_DATA_FORMS, "field")):
        var = field.get("var", "")
        if var not in _FIELDS:
            continue
        name, field_type = _FIELDS[var]
        value = field.findtext(qname(NS_DATA_FORMS, "value")) or ""
        if name == "presence_broadcast":
            chosen = {v.text for v in field.iter(qname(NS_DATA_FORMS, "value")) if v.text}
            if chosen - set(ROLES):
                raise ValueError(f"{var} takes only {', '.join(ROLES)}")
            changes[name] = tuple(role for role in ROLES if role in chosen)
        elif field_type == "boolean":
            flag = value in ("1", "true")
            if name == "password_protected":
                password_protected = flag
            else:
                changes[name] = flag
        elif name in ("max_users", "history_length", "quiet_above"):
            if value and not value.isdigit():
                raise ValueError(f"{var} must be a number")
            changes[name] = int(value or 0)
        elif name == "whois":
            if value not in ("moderators", "anyone"):
                raise ValueError(f"{var} must be moderators or anyone")
            changes[name] = value
        else:
            changes[name] = value
    if password_protected is False:
        changes["password"] = ""
    return dataclasses.replace(current, **changes)  # type: ignore[arg-type]
