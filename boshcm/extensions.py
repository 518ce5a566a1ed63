"""The extension seam: how code that runs beside the server (the quiz bot and its page) plugs in without the
server knowing it.

Layers point one way: an extension may import boshcm; boshcm never imports an extension. An installed
distribution names an `ExtensionSpec` under the entry-point group `boshcm.extensions`; the entry point's name
is the extension's configuration section (`[quizbot]`), which the extension owns: its schema is a frozen
dataclass read by the same TOML loader, so unknown keys and bad values are refused with the dotted key named,
and `boshcm check-config` validates it. The schema has `enabled: bool`, which `boshcm serve --no-<name>` sets to
false; what it turns off is the extension's to say (the quiz: the bot, not the page).

What an extension gets:
- routes on the server's HTTP application (`Extension.routes`);
- start and stop with the server (`Extension.start(handle)` once every listener is up, `Extension.stop()`
  before the listeners close);
- a narrow `ServerHandle`: the domain, the MUC domain, where c2s listens, which CA file verifies it, the data
  directory, "ensure this account" for the accounts it declared, and "export this reading" on /metrics;
- privileges in one generic form: the local parts in `Extension.service_accounts` are exempt from the room
  quota and the per-session stanza rate (an account that speaks for whole rooms), and only they may be
  ensured. Everything else it does as an ordinary client of the server.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from boshcm.toml_config import ConfigError

if TYPE_CHECKING:
    from aiohttp import web

    from boshcm.config import Config
    from boshcm.metrics import Reading

ENTRY_POINT_GROUP = "boshcm.extensions"


class ServerHandle(Protocol):
    """What a running server shows an extension."""

    @property
    def domain(self) -> str: ...

    @property
    def muc_domain(self) -> str | None:
        """None when the MUC service is off."""

    @property
    def c2s_address(self) -> tuple[str, int] | None:
        """Where a local client reaches c2s (STARTTLS); None when c2s does not listen (disabled, off-board)."""

    @property
    def ca_file(self) -> Path | None:
        """The self-signed certificate c2s presents; None when the operator's certificate is configured."""

    @property
    def data_path(self) -> Path: ...

    def ensure_account(self, username: str, password: str) -> None:
        """Afterwards `username` (a declared service account) logs in with `password`."""

    def add_reading(self, reading: Reading) -> None:
        """Export a value read at scrape time on the server's /metrics; nothing when `[metrics]` is off."""


class Extension(Protocol):
    """One extension, created from its configuration section for one server."""

    @property
    def service_accounts(self) -> frozenset[str]:
        """Local parts exempt from the room quota and the stanza rate; the only accounts it may ensure."""

    def routes(self) -> Sequence[web.RouteDef]: ...

    async def start(self, server: ServerHandle) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtensionSpec:
    """What an entry point of the group `boshcm.extensions` names."""

    name: str                                   # the configuration section, and the entry point's name
    schema: type[Any]                           # frozen dataclass with `enabled: bool`; may have validate(section)
    create: Callable[[Config, Any], Extension]  # (server configuration, this section) -> the extension


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtensionSection:
    """An extension's validated configuration section, as `Config.extensions[name]`."""

    spec: ExtensionSpec
    settings: Any  # an instance of spec.schema


@functools.cache
def installed() -> tuple[ExtensionSpec, ...]:
    """Every installed extension. Raises ConfigError naming one that cannot be loaded."""
    specs: list[ExtensionSpec] = []
    for point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda point: point.name):
        try:
            spec = point.load()
        except Exception as exc:  # an extension's import error, whatever it is, stops start-up with one line
            raise ConfigError(point.name, f"extension {point.value} cannot be loaded: {exc}") from exc
        if not isinstance(spec, ExtensionSpec) or spec.name != point.name:
            raise ConfigError(point.name, f"entry point {point.value} is not an ExtensionSpec named {point.name!r}")
        specs.append(spec)
    return tuple(specs)


def installed_names() -> list[str]:
    """The installed extensions' section names, without importing them (for command-line flags)."""
    return sorted({point.name for point in entry_points(group=ENTRY_POINT_GROUP)})


def check_spec(spec: ExtensionSpec) -> None:
    fields = {field.name: field for field in dataclasses.fields(spec.schema)}
    if "enabled" not in fields:
        raise ConfigError(spec.name, "extension schema has no 'enabled' option")
