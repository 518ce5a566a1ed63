"""Quiz bot configuration: the `[quizbot]` section of boshcm.toml (in-process bot) and conf/quizbot.toml
(standalone bot against any XMPP server). Loaded by boshcm's TOML loader: unknown keys and bad values are
refused with the dotted key named. Reference: docs/configuration.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from boshcm.jid import JID, InvalidJID
from boshcm.toml_config import ConfigError, load_toml, parse_host_port
from quizbot.game import GameSettings
from quizbot.room import DEFAULT_BOARD_SIZE, DEFAULT_QUIET_ABOVE

# Package data: found the same way in a checkout and in an installed wheel.
SHIPPED_BANKS = Path(__file__).resolve().parent / "banks"
# A podium needs three. The reveal message (body, <reveal/>, <scores/>) with 10 names is about 2 KB, with 50
# about 8 KB, with 2,000 about 300 KB, above the server's stanza limit.
BOARD_SIZES = (3, 50)


@dataclass(frozen=True, slots=True, kw_only=True)
class QuizBotConfig:
    nick: str = "Quizbot"
    rooms: list[str] = field(default_factory=list)
    language: str = "en"
    admins: list[str] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)
    store: str = "quizbot.sqlite"
    self_ping_seconds: float = 60.0
    board_size: int = DEFAULT_BOARD_SIZE  # names on the room's boards; each player hears its own place privately
    # In a room the bot owns, on a server whose rooms show every occupant to moderators: above this many occupants
    # only moderators' presence is broadcast (back below half of it); 0: never. Above it, in any room, commands typed
    # in the room are answered to their sender alone.
    quiet_above: int = DEFAULT_QUIET_ABOVE
    game: GameSettings = field(default_factory=GameSettings)  # [quizbot.game]: timers and points

    def validate(self, section: str) -> None:
        if self.language not in ("de", "en"):
            raise ConfigError(f"{section}.language", f"must be de or en; got {self.language!r}")
        if not self.nick.strip():
            raise ConfigError(f"{section}.nick", "must not be empty")
        for key, jids, bare in (("rooms", self.rooms, True), ("admins", self.admins, True)):
            for index, text in enumerate(jids):
                _check_jid(f"{section}.{key}[{index}]", text, need_local=True, bare=bare)
        if self.self_ping_seconds <= 0:
            raise ConfigError(f"{section}.self_ping_seconds", "must be positive")
        low, high = BOARD_SIZES
        if not low <= self.board_size <= high:
            raise ConfigError(f"{section}.board_size", f"must be from {low} to {high}; got {self.board_size}")
        if self.quiet_above < 0:
            raise ConfigError(f"{section}.quiet_above", f"must be 0 (never) or more; got {self.quiet_above}")

    def bank_paths(self) -> list[Path]:
        if self.questions:
            return [Path(path) for path in self.questions]
        return sorted(SHIPPED_BANKS.glob("*.json"))


@dataclass(frozen=True, slots=True, kw_only=True)
class EmbeddedQuizbotConfig(QuizBotConfig):
    """`[quizbot]` in boshcm.toml: the bot `boshcm serve` starts on the embedded server (quizbot/extension.py)."""

    enabled: bool = True
    account: str = "quiz"
    room: str = "quiz"
    # "child": a process of its own, on another core (quizbot/process.py); "inline": on the server's event loop.
    process: str = "child"

    def validate(self, section: str) -> None:
        QuizBotConfig.validate(self, section)
        if self.process not in ("child", "inline"):
            raise ConfigError(f"{section}.process", f"must be child or inline; got {self.process!r}")
        if not self.account or "@" in self.account:
            raise ConfigError(f"{section}.account", "must be a local part like 'quiz'")
        if "@" in self.room:
            raise ConfigError(f"{section}.room", "must be a local part like 'quiz' (or empty for none)")


@dataclass(frozen=True, slots=True, kw_only=True)
class XmppAccountConfig:
    jid: str = ""
    password_file: str = ""
    server: str = ""  # HOST:PORT; empty: the JID's domain, port 5222
    verify_tls: bool = True
    ca_file: str = ""

    def validate(self, section: str) -> None:
        if self.jid:
            _check_jid(f"{section}.jid", self.jid, need_local=True, bare=False)
        if self.server:
            parse_host_port(self.server, f"{section}.server")


@dataclass(frozen=True, slots=True, kw_only=True)
class StandaloneConfig:
    """conf/quizbot.toml: `[xmpp]` (the bot's account) and `[quizbot]` (what it does)."""

    xmpp: XmppAccountConfig = field(default_factory=XmppAccountConfig)
    quizbot: QuizBotConfig = field(default_factory=QuizBotConfig)


def load_standalone(path: Path | str | None, overrides: dict[str, object] | None = None) -> StandaloneConfig:
    config: StandaloneConfig = load_toml(StandaloneConfig, path, overrides)
    if not config.xmpp.jid:
        raise ConfigError("xmpp.jid", "the bot's account is required (--jid or [xmpp] jid)")
    if not config.xmpp.password_file:
        raise ConfigError("xmpp.password_file", "required (--password-file or [xmpp] password_file)")
    return config


def _check_jid(key: str, text: str, *, need_local: bool, bare: bool) -> None:
    try:
        jid = JID.parse(text)
    except InvalidJID as exc:
        raise ConfigError(key, str(exc)) from exc
    if (need_local and jid.local is None) or (bare and jid.resource is not None):
        raise ConfigError(key, f"expected a bare JID like name@example.org; got {text!r}")
