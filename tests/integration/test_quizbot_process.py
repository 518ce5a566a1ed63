"""The quiz bot as a process: it comes back after a kick and a server restart, `quizbot run` from the command line,
and under `boshcm serve` in a child process of its own that is restarted when it dies and never outlives the server."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from boshcm.app import Server
from boshcm.config import load_config
from boshcm.jid import JID
from boshcm.tls import SELF_SIGNED_CERT
from quizbot.client import Connection
from quizbot.config import QuizBotConfig
from quizbot.extension import QuizExtension
from quizbot.payload import NS
from quizbot.runner import build_client
from tests.integration.quiz_players import (
    BANK,
    QUESTION_SECONDS,
    ROOM,
    Player,
    join,
    open_game,
    right_and_wrong,
    wait_until,
)
from tests.integration.xmpp_client import TIMEOUT_SECONDS, XmppClient, trusting_only
from tests.interop.prosody import free_port


async def seat(server: Server, made: list[XmppClient], name: str, *, in_room: bool = True) -> Player:
    """`join`, with a TLS context that trusts the server's certificate alone (slixmpp's own loads the system's CA
    store: about 0.1 s of CPU a client)."""
    return await join(server, made, name, join=in_room,
                      ssl_context=trusting_only(server.config.data_path / SELF_SIGNED_CERT))


async def test_bot_rejoins_after_a_kick_and_comes_back_after_a_server_restart(tmp_path: Path) -> None:
    def embedded(port: int) -> Server:
        return Server(load_config(None, {"quizbot.enabled": False, "server.data_dir": str(tmp_path / "data"),
                                         "c2s.listen": f"127.0.0.1:{port}", "http.enabled": False}))

    first = embedded(0)
    first.accounts.add("quiz", "quiz-secret")
    first.accounts.add("ann", "ann-secret")
    await first.start()
    port = first.c2s.port
    other = "other@conference.localhost"
    made: list[XmppClient] = []
    ann = await seat(first, made, "ann", in_room=False)
    muc = ann.client.xmpp.plugin["xep_0045"]
    await muc.join_muc_wait(other, "Ann", maxstanzas=0, timeout=TIMEOUT_SECONDS)  # Ann owns this room
    await muc.set_room_config(other, ann.client.xmpp.plugin["xep_0004"].make_form(ftype="submit"))
    config = QuizBotConfig(rooms=[other], questions=[], self_ping_seconds=1.0)
    client, store = build_client(config, Connection(jid="quiz@localhost/bot", password="quiz-secret",
                                                    server=("127.0.0.1", port),
                                                    ca_file=first.config.data_path / SELF_SIGNED_CERT),
                                 rooms=[other], muc_domain="conference.localhost", store_path=tmp_path / "q.sqlite")
    client.start()
    second: Server | None = None
    try:
        await wait_until(lambda: other in client.entered)
        await muc.set_role(other, "Quizbot", "none", reason="testing")
        await wait_until(lambda: other not in client.entered)
        await wait_until(lambda: other in client.entered)  # rejoined by itself

        await asyncio.gather(*(c.close() for c in made), return_exceptions=True)
        await first.stop()
        await wait_until(lambda: not client.entered)
        second = embedded(port)
        await second.start()
        await wait_until(lambda: other in client.entered)  # reconnected, rejoined (and re-created the room)
        again = await seat(second, made, "ann", in_room=False)
        _presence, _subject, occupants, _history = await again.client.xmpp.plugin["xep_0045"].join_muc_wait(
            other, "Ann", maxstanzas=0, timeout=TIMEOUT_SECONDS)
        assert f"{other}/Quizbot" in {str(p["from"]) for p in occupants}
    finally:
        await asyncio.gather(*(c.close() for c in made), return_exceptions=True)
        await client.stop()
        store.close()
        if second is not None:
            await second.stop()


async def test_quizbot_run_joins_the_rooms_named_on_the_command_line(tmp_path: Path) -> None:
    import sys

    server = Server(load_config(None, {"quizbot.enabled": False, "server.data_dir": str(tmp_path / "data"),
                                       "c2s.listen": "127.0.0.1:0", "http.enabled": False}))
    server.accounts.add("trivia", "trivia-secret")
    await server.start()
    (tmp_path / "password").write_text("trivia-secret\n")
    (tmp_path / "quizbot.toml").write_text(  # the file gives the CA and the store; the flags the rest
        f'[xmpp]\nca_file = "{server.config.data_path / SELF_SIGNED_CERT}"\n'
        f'[quizbot]\nstore = "{tmp_path / "trivia.sqlite"}"\nnick = "Trivia"\n')
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "quizbot", "run", "--config", str(tmp_path / "quizbot.toml"),
        "--jid", "trivia@localhost", "--password-file", str(tmp_path / "password"),
        "--server", f"127.0.0.1:{server.c2s.port}", "--rooms", "night@conference.localhost,day@conference.localhost")
    try:
        assert server.muc is not None
        muc = server.muc
        await wait_until(lambda: all((room := muc.room(JID.parse(f"{name}@conference.localhost"))) is not None
                                     and "Trivia" in room._occupants for name in ("night", "day")))
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), TIMEOUT_SECONDS) == 0
        await server.stop()


def _bot_ready(server: Server) -> bool:
    """The bot's room exists, is configured and has the bot in it (seen from the server: the bot is elsewhere)."""
    assert server.muc is not None
    room = server.muc.room(JID.parse(ROOM))
    return room is not None and not room.locked and room.occupant_count >= 1


async def _scrape_until(server: Server, condition: Callable[[dict[str, float]], bool]) -> dict[str, float]:
    from tests.integration.test_metrics import scrape

    for _ in range(int(TIMEOUT_SECONDS * 10)):
        samples = {name: value for (name, labels), value in (await scrape(server)).items() if not labels}
        if condition(samples):
            return samples
        await asyncio.sleep(0.1)
    raise AssertionError(f"metrics never matched: {samples}")


async def test_by_default_the_bot_runs_in_a_process_of_its_own_plays_and_reports_its_figures(tmp_path: Path) -> None:
    bank = tmp_path / "bank.json"
    bank.write_text(json.dumps(BANK))
    config = load_config(None, {
        "server.data_dir": str(tmp_path / "data"), "c2s.listen": "127.0.0.1:0", "http.listen": "127.0.0.1:0",
        "metrics.enabled": True, "metrics.listen": "127.0.0.1:0", "quizbot.questions": [str(bank)],
        "quizbot.game.question_seconds": QUESTION_SECONDS, "quizbot.game.reveal_seconds": 0.5,
        "quizbot.game.get_ready_seconds": 0.0})
    server = Server(config)
    for name in ("ann", "ben", "cat"):
        server.accounts.add(name, f"{name}-secret")
    await server.start()
    made: list[XmppClient] = []
    try:
        extension = server.extension(QuizExtension)
        assert extension.client is None and extension.process is not None  # not on the server's event loop
        assert extension.process.pid not in (None, os.getpid())
        await wait_until(lambda: _bot_ready(server) and ROOM in extension.entered)
        ann, ben, cat = [await seat(server, made, name) for name in ("ann", "ben", "cat")]
        await open_game(ann, ben, cat, "!quiz live 2 mixed")
        question = await ann.next("question", lambda q: q.get("index") == "1")
        right, wrong = right_and_wrong(question)
        cat.say(wrong)
        ben.say(right)
        ann.say(right)  # everyone has answered: the question closes at once
        reveal = await ann.next("reveal", lambda r: r.get("question") == question.get("id"))
        assert sorted(s.get("nick") for s in reveal.findall(f"{{{NS}}}scorer")) == ["Ann", "Ben"]
        # The child's figures reach the server's /metrics: one game of three players, three answers counted.
        samples = await _scrape_until(server, lambda s: s.get("boshcm_quiz_answers_total") == 3)
        assert samples["boshcm_quiz_games_running"] == 1 and samples["boshcm_quiz_players"] == 3
        assert samples["boshcm_quiz_bot_restarts_total"] == 0
    finally:
        await asyncio.gather(*(client.close() for client in made), return_exceptions=True)
        await server.stop()
    assert extension.process is None


async def test_a_bot_process_that_dies_is_started_again_and_comes_back_to_its_room(tmp_path: Path) -> None:
    config = load_config(None, {
        "server.data_dir": str(tmp_path / "data"), "c2s.listen": "127.0.0.1:0", "http.enabled": False,
        "metrics.enabled": True, "metrics.listen": "127.0.0.1:0"})
    server = Server(config)
    await server.start()
    try:
        bot = server.extension(QuizExtension).process
        assert bot is not None
        await wait_until(lambda: _bot_ready(server))
        first = bot.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        await wait_until(lambda: bot.pid not in (None, first))
        await wait_until(lambda: _bot_ready(server))
        assert (await _scrape_until(server, lambda s: True))["boshcm_quiz_bot_restarts_total"] == 1
    finally:
        await server.stop()
    assert not _alive(first)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (ended, not yet reaped by a parent that is itself gone) counts as ended.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "\nState:\tZ" not in status.read_text()


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["stopped", "killed"])
async def test_the_bots_process_never_outlives_boshcm_serve(tmp_path: Path, how: signal.Signals) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "boshcm", "serve", "--c2s", f"127.0.0.1:{port}", "--http", f"127.0.0.1:{free_port()}",
        "--data-dir", str(tmp_path / "data"), cwd=tmp_path, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    child: int | None = None
    loops: list[bytes] = []
    try:
        assert process.stdout is not None
        while child is None:
            line = await asyncio.wait_for(process.stdout.readline(), TIMEOUT_SECONDS)
            assert line, "boshcm serve ended"
            if found := re.search(rb"the bot runs in process (\d+)", line):
                child = int(found.group(1))
            loops += re.findall(rb"event loop: (\w+)\.", line)
        # uvloop where it is installed (`boshcm[fast]`; the test extra has it), asyncio's own loop otherwise.
        assert loops == [b"uvloop" if importlib.util.find_spec("uvloop") else b"asyncio"]
        # The child's log lines come out of the server's log.
        while b"JID set to: quiz@localhost/bot" not in line:
            line = await asyncio.wait_for(process.stdout.readline(), TIMEOUT_SECONDS)
            assert line, "boshcm serve ended"
        process.send_signal(how)
        await asyncio.wait_for(process.wait(), 10)
        assert process.returncode == (0 if how == signal.SIGTERM else -signal.SIGKILL)
        for _ in range(100):
            if not _alive(child):
                break
            await asyncio.sleep(0.05)
        assert not _alive(child)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        if child is not None and _alive(child):
            os.kill(child, signal.SIGKILL)
