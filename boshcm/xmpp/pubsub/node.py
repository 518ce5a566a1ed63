"""A PEP node's configuration: the XEP-0060 §16.4 fields PEP clients use, read from and written to data forms.

The same parser serves publish-options (XEP-0223, FORM_TYPE pubsub#publish-options) and node configuration
(XEP-0060 §8.2, FORM_TYPE pubsub#node_config). Values are kept normalised so that a precondition check
(XEP-0060 §7.1.5) compares meanings, not spellings: "1" and "true" are the same boolean, "max" is "max".
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum

from boshcm.stanza import NS_DATA_FORMS, Element, element, qname, sub

NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_PUBSUB_OWNER = "http://jabber.org/protocol/pubsub#owner"
NS_PUBSUB_EVENT = "http://jabber.org/protocol/pubsub#event"
NS_PUBSUB_ERRORS = "http://jabber.org/protocol/pubsub#errors"
FORM_NODE_CONFIG = "http://jabber.org/protocol/pubsub#node_config"
FORM_PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options"

MAX = "max"  # XEP-0060 §16.4: pubsub#max_items "max": as many as the service allows


class AccessModel(StrEnum):
    """XEP-0060 §4.5 access models PEP offers here (XEP-0163 §3.1: presence is the default)."""

    OPEN = "open"
    PRESENCE = "presence"
    WHITELIST = "whitelist"


class SendLast(StrEnum):
    """XEP-0060 §16.4 pubsub#send_last_published_item."""

    NEVER = "never"
    ON_SUB = "on_sub"
    ON_SUB_AND_PRESENCE = "on_sub_and_presence"


class InvalidConfig(ValueError):
    """A form names an unknown field or gives a value this service does not offer."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeConfig:
    access_model: AccessModel = AccessModel.PRESENCE
    max_items: int | None = 1           # None means "max": the per-node item quota
    persist_items: bool = True
    send_last_published_item: SendLast = SendLast.ON_SUB_AND_PRESENCE
    notify_retract: bool = True
    notify_delete: bool = True
    deliver_notifications: bool = True
    deliver_payloads: bool = True
    title: str = ""

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, fields: dict[str, object]) -> NodeConfig:
        return cls(access_model=AccessModel(str(fields["access_model"])),
                   max_items=None if fields["max_items"] is None else int(str(fields["max_items"])),
                   persist_items=bool(fields["persist_items"]),
                   send_last_published_item=SendLast(str(fields["send_last_published_item"])),
                   notify_retract=bool(fields["notify_retract"]), notify_delete=bool(fields["notify_delete"]),
                   deliver_notifications=bool(fields["deliver_notifications"]),
                   deliver_payloads=bool(fields["deliver_payloads"]), title=str(fields["title"]))


_BOOLEAN_FIELDS = {"pubsub#persist_items": "persist_items", "pubsub#notify_retract": "notify_retract",
                   "pubsub#notify_delete": "notify_delete", "pubsub#deliver_notifications": "deliver_notifications",
                   "pubsub#deliver_payloads": "deliver_payloads"}


def form_values(form: Element) -> dict[str, list[str]]:
    """var -> values of a submitted data form (XEP-0004 §3.2), FORM_TYPE included."""
    values: dict[str, list[str]] = {}
    for field in form.iter(qname(NS_DATA_FORMS, "field")):
        var = field.get("var")
        if var:
            values[var] = [(value.text or "").strip() for value in field.iter(qname(NS_DATA_FORMS, "value"))]
    return values


def parse_options(values: dict[str, list[str]], base: NodeConfig, *, form_type: str) -> dict[str, object]:
    """The NodeConfig changes a submitted form asks for; InvalidConfig for anything this service lacks."""
    declared = values.get("FORM_TYPE", [form_type])
    if declared != [form_type] and declared != [FORM_NODE_CONFIG]:
        raise InvalidConfig(f"FORM_TYPE must be {form_type}")
    changes: dict[str, object] = {}
    for var, given in values.items():
        if var == "FORM_TYPE":
            continue
        value = given[0] if len(given) == 1 else None
        if value is None:
            raise InvalidConfig(f"{var} needs exactly one value")
        if var == "pubsub#access_model":
            try:
                changes["access_model"] = AccessModel(value)
            except ValueError:
                raise InvalidConfig(f"access model {value!r} is not offered") from None
        elif var == "pubsub#max_items":
            changes["max_items"] = _max_items(value)
        elif var == "pubsub#send_last_published_item":
            try:
                changes["send_last_published_item"] = SendLast(value)
            except ValueError:
                raise InvalidConfig(f"send_last_published_item {value!r} is not offered") from None
        elif var in _BOOLEAN_FIELDS:
            changes[_BOOLEAN_FIELDS[var]] = _boolean(var, value)
        elif var == "pubsub#title":
            changes["title"] = value[:256]
        else:
            raise InvalidConfig(f"{var} is not a configurable option here")
    if changes.get("deliver_payloads") is False:
        raise InvalidConfig("notifications always carry payloads here")
    return changes


def matches(config: NodeConfig, changes: dict[str, object]) -> bool:
    """XEP-0060 §7.1.5: publish-options are preconditions on an existing node's configuration."""
    return all(getattr(config, name) == value for name, value in changes.items())


def config_form(config: NodeConfig, *, form_type: str = "form") -> Element:
    form = element(NS_DATA_FORMS, "x", {"type": form_type})
    _field(form, "FORM_TYPE", FORM_NODE_CONFIG, "hidden")
    _field(form, "pubsub#access_model", config.access_model.value, "list-single",
           [model.value for model in AccessModel])
    _field(form, "pubsub#max_items", MAX if config.max_items is None else str(config.max_items), "text-single")
    _field(form, "pubsub#send_last_published_item", config.send_last_published_item.value, "list-single",
           [choice.value for choice in SendLast])
    for var, name in _BOOLEAN_FIELDS.items():
        _field(form, var, "1" if getattr(config, name) else "0", "boolean")
    _field(form, "pubsub#title", config.title, "text-single")
    return form


def _field(form: Element, var: str, value: str, field_type: str, options: list[str] | None = None) -> None:
    field = sub(form, NS_DATA_FORMS, "field", {"var": var, "type": field_type})
    for option in options or ():
        sub(sub(field, NS_DATA_FORMS, "option"), NS_DATA_FORMS, "value", text=option)
    sub(field, NS_DATA_FORMS, "value", text=value)


def _boolean(var: str, value: str) -> bool:
    # XEP-0004 §3.3: boolean is "0"/"1"/"false"/"true".
    if value in ("1", "true"):
        return True
    if value in ("0", "false"):
        return False
    raise InvalidConfig(f"{var} must be a boolean")


def _max_items(value: str) -> int | None:
    if value == MAX:
        return None
    if not value.isdigit() or not 1 <= int(value) <= 1_000_000:
        raise InvalidConfig("pubsub#max_items must be a positive number or 'max'")
    return int(value)
