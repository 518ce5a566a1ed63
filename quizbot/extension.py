"""The quiz as a boshcm extension (boshcm/extensions.py): `boshcm serve` finds it through the entry point
`boshcm.extensions: quizbot`, reads its `[quizbot]` section with `EmbeddedQuizbotConfig`, serves the page and
starts the bot as an ordinary client of the embedded server over loopback c2s.

The server lends it one service account (`[quizbot] account`): made or re-keyed through the handle, with the
password kept in <data_dir>/quizbot.password, and exempt from the room quota (the bot makes a room per
!newgame requester) and the stanza rate (it speaks for whole rooms). Nothing else is special about it.

Importing this module stays light (no slixmpp): `boshcm check-config` loads it to validate `[quizbot]`.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING

from boshcm.extensions import ExtensionSpec, ServerHandle
from quizbot.config import EmbeddedQuizbotConfig

if TYPE_CHECKING:
    from aiohttp import web

    from boshcm.config import Config
    from quizbot.store import QuizStore
    from quizbot.xmpp import QuizBotClient

log = logging.getLogger(__name__)

PASSWORD_FILE = "quizbot.password"


class QuizExtension:
    """The page's routes and the in-process bot for one server."""

    def __init__(self, config: Config, quiz: EmbeddedQuizbotConfig) -> None:
        self._config = config
        self._quiz = quiz
        self.client: QuizBotClient | None = None  # while the bot runs
        self._store: QuizStore | None = None

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
        from quizbot.runner import build_client
        from quizbot.xmpp import Connection

        quiz = self._quiz
        jid = f"{quiz.account}@{server.domain}"
        password = self._password(server)
        server.ensure_account(quiz.account, password)
        rooms = ([f"{quiz.room}@{server.muc_domain}"] if quiz.room else []) + list(quiz.rooms)
        connection = Connection(jid=f"{jid}/bot", password=password, server=server.c2s_address,
                                ca_file=server.ca_file)
        self.client, self._store = build_client(quiz, connection, rooms=rooms, muc_domain=server.muc_domain,
                                                store_path=server.data_path / quiz.store)
        self.client.start()

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
        if self.client is not None:
            await self.client.stop()
            self.client = None
        if self._store is not None:
            self._store.close()
            self._store = None


def _create(config: Config, quiz: EmbeddedQuizbotConfig) -> QuizExtension:
    return QuizExtension(config, quiz)


EXTENSION = ExtensionSpec(name="quizbot", schema=EmbeddedQuizbotConfig, create=_create)
