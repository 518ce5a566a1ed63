"""The quiz as a boshcm extension (boshcm/extensions.py): `boshcm serve` finds it through the entry point
`boshcm.extensions: quizbot`, reads its `[quizbot]` section with `EmbeddedQuizbotConfig`, serves the page and
starts the bot as an ordinary client of the embedded server over loopback c2s: in a process of its own by
default (`process = "child"`, quizbot/process.py), or on the server's event loop (`process = "inline"`, which
tests use to look inside the bot). Either way it exports the quiz's figures on the server's /metrics.

The server lends it one service account (`[quizbot] account`): made or re-keyed through the handle, with the
password kept in <data_dir>/quizbot.password, and exempt from the room quota (the bot makes a room per
!newgame requester) and the stanza rate (it speaks for whole rooms). Nothing else is special about it.

Importing this module stays light (no slixmpp): `boshcm check-config` loads it to validate `[quizbot]`.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING

from boshcm.extensions import ExtensionSpec, ServerHandle
from boshcm.metrics import Reading
from quizbot.config import EmbeddedQuizbotConfig
from quizbot.process import BotProcess, ChildOrders, QuizStats

if TYPE_CHECKING:
    from aiohttp import web

    from boshcm.config import Config
    from quizbot.client import QuizBotClient
    from quizbot.store import QuizStore

log = logging.getLogger(__name__)

PASSWORD_FILE = "quizbot.password"


class QuizExtension:
    """The page's routes and the bot for one server."""

    def __init__(self, config: Config, quiz: EmbeddedQuizbotConfig) -> None:
        self._config = config
        self._quiz = quiz
        self.client: QuizBotClient | None = None  # while the bot runs inline
        self._store: QuizStore | None = None
        self.process: BotProcess | None = None  # while the bot runs in a child process

    @property
    def service_accounts(self) -> frozenset[str]:
        return frozenset({self._quiz.account} if self._quiz.enabled else ())

    def routes(self) -> Sequence[web.RouteDef]:
        config = self._config
        # Off-board there is no embedded server for the page's bot and rooms.
        if not config.http.quiz_page or config.upstream.server:
            return []
        from quizbot.page import page_routes

        return page_routes(config, self._quiz)

    async def start(self, server: ServerHandle) -> None:
        # `[quizbot] enabled = false` (--no-quizbot) stops the bot only; the page is `http.quiz_page`.
        if not self._quiz.enabled:
            return
        if server.c2s_address is None:
            return  # c2s off or off-board: the bot has nothing to connect to (run it with `quizbot run`)
        if server.muc_domain is None:
            log.warning("quizbot: the MUC service is off (muc.enabled = false); the bot is not started")
            return
        quiz = self._quiz
        jid = f"{quiz.account}@{server.domain}"
        password = self._password(server)
        server.ensure_account(quiz.account, password)
        rooms = ([f"{quiz.room}@{server.muc_domain}"] if quiz.room else []) + list(quiz.rooms)
        store_path = server.data_path / quiz.store
        if quiz.process == "child":
            from quizbot.store import QuizStore

            # A damaged store stops `boshcm serve` with one line, as inline, rather than a child failing forever.
            QuizStore(store_path).close()
            self.process = BotProcess(ChildOrders(
                quiz=quiz, jid=jid, password=password, server=server.c2s_address, ca_file=server.ca_file,
                rooms=tuple(rooms), muc_domain=server.muc_domain, store_path=store_path,
                log_level=logging.getLogger().getEffectiveLevel()))
            await self.process.start()
        else:
            from quizbot.client import Connection
            from quizbot.runner import build_client

            connection = Connection(jid=f"{jid}/bot", password=password, server=server.c2s_address,
                                    ca_file=server.ca_file)
            self.client, self._store = build_client(quiz, connection, rooms=rooms, muc_domain=server.muc_domain,
                                                    store_path=store_path)
            self.client.start()
        for reading in self._readings():
            server.add_reading(reading)

    @property
    def entered(self) -> frozenset[str]:
        """The rooms the bot is in, in either mode (a child reports a change within a tenth of a second)."""
        if self.process is not None:
            return self.process.stats.rooms
        return frozenset(self.client.entered) if self.client is not None else frozenset()

    def stats(self) -> QuizStats:
        """Games running, players in them, answers counted (monotonic across restarts of the child)."""
        if self.process is not None:
            return dataclasses.replace(self.process.stats, answers=self.process.answers)
        if self.client is not None and self._store is not None:
            from quizbot.runner import quiz_stats

            return quiz_stats(self.client.bot, self._store)
        return QuizStats()

    def _readings(self) -> list[Reading]:
        return [
            Reading(name="boshcm_quiz_games_running", documentation="Quiz games running (lobbies not counted)",
                    read=lambda: self.stats().games),
            Reading(name="boshcm_quiz_players", documentation="Players in the quiz games running",
                    read=lambda: self.stats().players),
            Reading(name="boshcm_quiz_answers", counter=True,
                    documentation="Answers the quiz bot counted (one per player and question)",
                    read=lambda: self.stats().answers),
            Reading(name="boshcm_quiz_bot_restarts", counter=True,
                    documentation="Times the quiz bot's process ended and was started again",
                    read=lambda: self.process.restarts if self.process is not None else 0),
        ]

    @staticmethod
    def _password(server: ServerHandle) -> str:
        path = server.data_path / PASSWORD_FILE
        if path.exists():
            return path.read_text().strip()
        password = secrets.token_urlsafe(24)
        path.touch(mode=0o600)
        path.write_text(password)
        return password

    async def stop(self) -> None:
        if self.process is not None:
            await self.process.stop()
            self.process = None
        if self.client is not None:
            await self.client.stop()
            self.client = None
        if self._store is not None:
            self._store.close()
            self._store = None


def _create(config: Config, quiz: EmbeddedQuizbotConfig) -> QuizExtension:
    return QuizExtension(config, quiz)


EXTENSION = ExtensionSpec(name="quizbot", schema=EmbeddedQuizbotConfig, create=_create)
