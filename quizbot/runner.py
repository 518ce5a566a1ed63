"""Building and running the bot: for boshcm's `[quizbot]` section (in-process, on the embedded server, through
quizbot/extension.py) or from conf/quizbot.toml (standalone, against any XMPP server)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from boshcm.shutdown import StopSignals
from quizbot.bot import BotSettings, QuizBot
from quizbot.client import Connection, QuizBotClient
from quizbot.config import QuizBotConfig, StandaloneConfig
from quizbot.process import QuizStats
from quizbot.questions import BankSet, Question, load_bank
from quizbot.store import QuizStore

log = logging.getLogger(__name__)


def load_banks(paths: Sequence[Path]) -> tuple[BankSet, list[str]]:
    """Every bank that validates; a faulty bank is refused whole and reported with each fault."""
    questions: list[Question] = []
    report: list[str] = []
    for path in paths:
        result = load_bank(path)
        if result.errors:
            faults = "; ".join(str(error) for error in result.errors[:10])
            more = f" (+{len(result.errors) - 10} more)" if len(result.errors) > 10 else ""
            log.error("quizbot: refused question bank %s: %s%s", path, faults, more)
            report.append(f"{path.name}: refused ({len(result.errors)} faults: {faults}{more})")
        else:
            questions += result.questions
            report.append(f"{path.name}: {len(result.questions)} questions")
    return BankSet(questions), report


class CountingStore(QuizStore):
    """The store, counting the answers it records (one per player and question) for /metrics."""

    answers = 0

    def answer(self, *, game_id: str, question_id: str, player: str, correct: bool, points: int,
               seconds: float | None, wall: float) -> None:
        super().answer(game_id=game_id, question_id=question_id, player=player, correct=correct, points=points,
                       seconds=seconds, wall=wall)
        self.answers += 1


def quiz_stats(bot: QuizBot, store: QuizStore, *, entered: Iterable[str] = ()) -> QuizStats:
    """The bot's figures for /metrics, read from its rooms (cheap: a few rooms, no queries)."""
    games = [room.game for room in bot.rooms.values() if room.game is not None and not room.game.ended]
    return QuizStats(games=len(games), players=sum(len(game.scores()) for game in games),
                     answers=store.answers if isinstance(store, CountingStore) else 0, rooms=frozenset(entered))


def build_client(config: QuizBotConfig, connection: Connection, *, rooms: Sequence[str], muc_domain: str,
                 store_path: Path) -> tuple[QuizBotClient, QuizStore]:
    banks, report = load_banks(config.bank_paths())
    store = CountingStore(store_path)
    settings = BotSettings(jid=connection.jid.partition("/")[0], muc_domain=muc_domain,
                           admins=frozenset(config.admins), rooms=tuple(dict.fromkeys(rooms)),
                           language=config.language, game=config.game, board_size=config.board_size,
                           quiet_above=config.quiet_above)
    bot = QuizBot(settings=settings, memory=store.memory(), banks=banks, bank_report=report)
    client = QuizBotClient(bot, connection, store=store, nick=config.nick, self_ping_seconds=config.self_ping_seconds,
                           reload_banks=lambda: load_banks(config.bank_paths()))
    return client, store


async def run_standalone(config: StandaloneConfig) -> None:
    """`quizbot run`: until SIGINT/SIGTERM, reconnecting whenever the server goes away."""
    xmpp, quiz = config.xmpp, config.quizbot
    password = Path(xmpp.password_file).read_text().strip()
    server = None
    if xmpp.server:
        host, _, port = xmpp.server.rpartition(":")
        server = (host.strip("[]"), int(port))
    domain = xmpp.jid.partition("@")[2].partition("/")[0]
    muc_domain = quiz.rooms[0].partition("@")[2] if quiz.rooms else f"conference.{domain}"
    connection = Connection(jid=xmpp.jid, password=password, server=server,
                            ca_file=Path(xmpp.ca_file) if xmpp.ca_file else None, verify_tls=xmpp.verify_tls)
    client, store = build_client(quiz, connection, rooms=quiz.rooms, muc_domain=muc_domain,
                                 store_path=Path(quiz.store))
    with StopSignals() as stop:
        client.start()
        try:
            await stop.wait()
        finally:
            await client.stop()
            store.close()
