"""Quiz benchmark: a live game with N players over BOSH, on boshcm and on Prosody, the bot the same for both.

    .venv/bin/python -m tests.perf.bench_quiz [--players 200] [--questions 10]

The bot runs as its own process (`quizbot run`) against each server, so its CPU time can be read from /proc.
Each player is its own account, logs in over BOSH, joins the room and answers every question privately to
the bot (with the <answer/> payload) after a random 0.2-3 s. Prints, per server: the spread of question
arrival across players (p50/p99 over questions), question send to last arrival, bot CPU per question,
and how many answers were scored (every answer must be).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from lxml import etree

from boshcm.xmpp.accounts import AccountStore
from quizbot.payload import NS
from tests.integration.bosh_client import BoshClient
from tests.integration.xmpp_client import XmppClient
from tests.perf.bench_bosh import BoshcmTarget, ProsodyTarget, Target, bounded, wait_for_port
from tests.perf.bench_muc import percentile

ROOM = "bench@conference.localhost"
BOT = "quiz@localhost"
TICKS = os.sysconf("SC_CLK_TCK")


def bank(count: int) -> dict[str, object]:
    return {"language": "en", "questions": [
        {"id": f"b{i}", "category": "bench", "kind": "text", "question": f"Bench question {i}: say word{i}",
         "answer": f"word{i}", "source": "https://example.org"} for i in range(count)]}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


class Player:
    def __init__(self, client: BoshClient, nick: str, arrivals: dict[str, list[float]]) -> None:
        self.client, self.nick, self.arrivals = client, nick, arrivals
        self.received = 0

    def take(self, response: etree._Element) -> None:
        now = time.perf_counter()
        for message in response.iter("{jabber:client}message"):
            question = message.find(f"{{{NS}}}question")
            if question is not None:
                self.arrivals.setdefault(question.get("id", ""), []).append(now)
                asyncio.get_running_loop().create_task(self.answer(question.get("id", "")))
            if message.find(f"{{{NS}}}received") is not None:
                self.received += 1

    async def answer(self, question_id: str) -> None:
        await asyncio.sleep(random.uniform(0.2, 3.0))
        answer = question_id.replace("b", "word")
        self.take(await self.client.send(
            f"<message xmlns='jabber:client' to='{BOT}' type='chat'><body>{answer}</body>"
            f"<answer xmlns='{NS}' question='{question_id}'/></message>"))

    async def poll(self) -> None:
        while True:
            response = await self.client.post(self.client.body())
            self.take(response)
            if response.get("type") == "terminate":
                return


async def start_bot(target: Target, directory: Path, args: argparse.Namespace) -> asyncio.subprocess.Process:
    (directory / "bank.json").write_text(json.dumps(bank(args.questions)))
    (directory / "password").write_text("quiz-secret")
    (directory / "quizbot.toml").write_text(f"""
[xmpp]
jid = "{BOT}/bot"
password_file = "{directory / 'password'}"
server = "127.0.0.1:{target.c2s_port}"
ca_file = "{target.cert_path}"
[quizbot]
rooms = ["{ROOM}"]
questions = ["{directory / 'bank.json'}"]
store = "{directory / 'quiz.sqlite'}"
[quizbot.game]
question_seconds = {args.question_seconds}
reveal_seconds = 3.0
""")
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "quizbot", "run", "--config",
                                                 str(directory / "quizbot.toml"), "--log-level", "warning")


async def measure(target: Target, args: argparse.Namespace, directory: Path) -> dict[str, float]:
    bot = await start_bot(target, directory, args)
    starter = XmppClient("starter@localhost/desk", "starter-secret", port=target.c2s_port, ca_cert=target.cert_path,
                         plugins=("xep_0045",))
    await starter.connect()
    muc = starter.xmpp.plugin["xep_0045"]
    for _attempt in range(100):  # the bot creates the room; join once it is there
        await asyncio.sleep(0.2)
        try:
            _presence, _subject, occupants, _history = await muc.join_muc_wait(ROOM, "Starter", maxstanzas=0,
                                                                              timeout=5)
        except Exception:  # not there yet (or still locked)
            continue
        if any(str(o["from"]).endswith("/Quizbot") for o in occupants):
            break
        muc.leave_muc(ROOM, "Starter")
    arrivals: dict[str, list[float]] = {}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=600)) as http:
        async def login(index: int) -> BoshClient:
            client = BoshClient(http, target.url, wait=60)
            await client.login(f"p{index}", "player-secret", resource="web")
            return client

        clients = await bounded(args.players, 25, login)
        players = [Player(client, f"P{index}", arrivals) for index, client in enumerate(clients)]
        pollers = [asyncio.create_task(p.poll()) for p in players]
        for player in players:
            await player.client.send(f"<presence xmlns='jabber:client' to='{ROOM}/{player.nick}'>"
                                     "<x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x>"
                                     "</presence>")
        await asyncio.sleep(3)
        reveals: list[etree._Element] = []

        def on_message(message: object) -> None:
            element = etree.fromstring(str(message).encode())
            found = element.find(f"{{{NS}}}reveal")
            if found is not None:
                reveals.append(found)

        starter.xmpp.add_event_handler("groupchat_message", on_message)
        cpu_before = cpu_seconds(bot.pid)
        started = time.perf_counter()
        starter.xmpp.send_message(mto=ROOM, mbody=f"!quiz live {args.questions}", mtype="groupchat")
        await asyncio.sleep(1)
        starter.xmpp.send_message(mto=ROOM, mbody="!start", mtype="groupchat")
        deadline = time.perf_counter() + args.questions * (args.question_seconds + 10) + 30
        while len(reveals) < args.questions and time.perf_counter() < deadline:
            await asyncio.sleep(0.5)
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(bot.pid) - cpu_before
        for task in pollers:
            task.cancel()
    spreads = [(max(t) - min(t)) * 1000 for t in arrivals.values()]
    scored = sum(len(r.findall(f"{{{NS}}}scorer")) for r in reveals)
    print(f"  {target.name}: {len(reveals)} questions in {elapsed:.1f} s", file=sys.stderr)
    await starter.close()
    bot.terminate()
    await bot.wait()
    return {"players": args.players, "questions revealed": len(reveals),
            "players receiving each question (min)": min((len(t) for t in arrivals.values()), default=0),
            "question spread p50 (ms)": statistics.median(spreads) if spreads else float("nan"),
            "question spread p99 (ms)": percentile(spreads, 0.99) if spreads else float("nan"),
            "answers scored": scored, "answers scored (%)": 100 * scored / (args.players * args.questions),
            "bot CPU per question (ms)": 1000 * cpu / max(1, len(reveals))}


async def prepare_boshcm(directory: Path, players: int) -> Target:
    target = BoshcmTarget(directory / "boshcm")
    (directory / "boshcm" / "data").mkdir(parents=True)
    store = AccountStore(directory / "boshcm" / "data" / "accounts.sqlite")
    for name, password in [("quiz", "quiz-secret"), ("starter", "starter-secret"),
                           *((f"p{i}", "player-secret") for i in range(players))]:
        store.add(name, password)
    store.close()
    return target


async def prepare_prosody(directory: Path, players: int) -> Target:
    return ProsodyTarget(directory / "prosody")  # accounts are registered once it runs


async def register_on_prosody(target: ProsodyTarget, players: int) -> None:
    semaphore = asyncio.Semaphore(8)

    async def one(name: str, password: str) -> None:
        async with semaphore:
            await asyncio.to_thread(target.prosody.register, name, password)

    await asyncio.gather(one("quiz", "quiz-secret"), one("starter", "starter-secret"),
                         *(one(f"p{i}", "player-secret") for i in range(players)))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--players", type=int, default=200)
    parser.add_argument("--questions", type=int, default=10)
    parser.add_argument("--question-seconds", type=float, default=10.0)
    parser.add_argument("--only", choices=["boshcm", "prosody"])
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        for name in ("boshcm", "prosody"):
            if args.only and name != args.only:
                continue
            target = await (prepare_boshcm if name == "boshcm" else prepare_prosody)(directory, args.players)
            await target.start()
            try:
                if isinstance(target, ProsodyTarget):
                    await register_on_prosody(target, args.players)
                await wait_for_port(target.c2s_port)
                bot_directory = directory / f"bot-{name}"
                bot_directory.mkdir()
                print(f"measuring {name} ...", file=sys.stderr)
                results[name] = await measure(target, args, bot_directory)
                print(f"  {results[name]}", file=sys.stderr)
            finally:
                await target.stop()
    names = list(results)
    print(f"{'':40}" + "".join(f"{n:>12}" for n in names) + ("     ratio" if len(names) == 2 else ""))
    for label in results[names[0]]:
        values = [results[n][label] for n in names]
        ratio = f"{values[0] / values[1]:10.2f}" if len(values) == 2 and values[1] else ""
        print(f"{label:40}" + "".join(f"{v:12.2f}" for v in values) + ratio)


if __name__ == "__main__":
    asyncio.run(main())
