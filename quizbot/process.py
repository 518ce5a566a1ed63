"""The bot in a process of its own (`[quizbot] process = "child"`, the default): `boshcm serve` keeps one core
for the server and the bot's slixmpp work (about 2 ms per stanza) goes to the other.

Two halves joined by one socket pair (framed and pickled by `multiprocessing.connection`):
- `BotProcess`, in the server: starts the child (`python -c`, a fresh interpreter) once the listeners are up,
  restarts it with a doubling back-off when it ends, and stops it by closing the pipe (then SIGTERM, then
  SIGKILL). It feeds the child's log records into the server's logging and keeps the child's last
  `QuizStats` (for /metrics, and the rooms it is in).
- `child_main`, in the child: the same runner as `quizbot run`, against the embedded server over loopback c2s.
  It ends when the pipe ends, so it never outlives the server, not even one that was killed: the kernel closes
  the server's end of the pipe, the child reads end-of-file and leaves.

The child gets its orders (account, password, rooms, configuration) as the first message on the pipe, never on
its command line or in its environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

from quizbot.config import QuizBotConfig

log = logging.getLogger(__name__)

STATS_POLL_SECONDS = 0.1     # how often the child looks at its figures; it reports them when they change,
STATS_SECONDS = 1.0          # and at least this often
FIRST_RESTART_SECONDS = 1.0  # back-off after the child ends: 1, 2, 4 ... 60 s
MAX_RESTART_SECONDS = 60.0
STABLE_SECONDS = 60.0        # a child that ran this long starts the back-off again from the first step
STOP_SECONDS = 5.0           # how long a child may take to leave its rooms before it is terminated


@dataclass(frozen=True, slots=True, kw_only=True)
class QuizStats:
    """What the bot reports for /metrics."""

    games: int = 0    # games running (lobbies not counted)
    players: int = 0  # players in those games
    answers: int = 0  # counted answers since the bot started (one per player and question)
    rooms: frozenset[str] = frozenset()  # rooms the bot is in (joined and configured)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildOrders:
    """Everything the child needs, pickled to it when it is spawned."""

    quiz: QuizBotConfig
    jid: str
    password: str = field(repr=False)
    server: tuple[str, int]
    ca_file: Path | None
    rooms: tuple[str, ...]
    muc_domain: str
    store_path: Path
    log_level: int


@dataclass(frozen=True, slots=True, kw_only=True)
class _LogLine:
    record: dict[str, Any]


class BotProcess:
    """The server's side: one child at a time, restarted until `stop()`."""

    def __init__(self, orders: ChildOrders, *, first_restart_seconds: float = FIRST_RESTART_SECONDS) -> None:
        self._orders = orders
        self._first_restart_seconds = first_restart_seconds
        self._task: asyncio.Task[None] | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._link: Pipe | None = None
        self._stopping = False
        self.stats = QuizStats()
        self.restarts = 0
        self._answers_before = 0  # counted by earlier children, so that the answers counter only grows

    @property
    def pid(self) -> int | None:
        """The running child's process id."""
        process = self._process
        return process.pid if process is not None and process.returncode is None else None

    @property
    def answers(self) -> int:
        return self._answers_before + self.stats.answers

    async def start(self) -> None:
        """Start the first child (so that it has a pid when this returns) and watch it."""
        process = await self._spawn()
        self._task = asyncio.get_running_loop().create_task(self._supervise(process))

    async def stop(self) -> None:
        self._stopping = True
        if self._task is None:
            return
        self._hang_up()  # the child reads end-of-file and leaves its rooms
        done, _pending = await asyncio.wait([self._task], timeout=STOP_SECONDS)
        process = self._process
        if not done and process is not None and process.returncode is None:
            log.warning("quizbot: the bot's process %s did not stop in %ss; terminating it", process.pid,
                        STOP_SECONDS)
            process.terminate()
            done, _pending = await asyncio.wait([self._task], timeout=STOP_SECONDS)
            if not done and process.returncode is None:
                process.kill()
                await asyncio.wait([self._task], timeout=STOP_SECONDS)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    async def _supervise(self, process: asyncio.subprocess.Process) -> None:
        loop = asyncio.get_running_loop()
        delay = self._first_restart_seconds
        while True:
            started = loop.time()
            code = await self._watch(process)
            if self._stopping:
                return
            if loop.time() - started >= STABLE_SECONDS:
                delay = self._first_restart_seconds
            log.warning("quizbot: the bot's process ended (exit code %s); starting it again in %.0f s", code, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RESTART_SECONDS)
            self.restarts += 1
            process = await self._spawn()

    async def _spawn(self) -> asyncio.subprocess.Process:
        ours, theirs = socket.socketpair()
        link = Pipe(ours.detach())
        # A fresh interpreter (no copy of the server's state), which finds quizbot where the server found it.
        package_root = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [package_root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])}
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-c", f"from quizbot.process import child_main; child_main({theirs.fileno()})",
                stdin=asyncio.subprocess.DEVNULL, pass_fds=(theirs.fileno(),), env=env)
        except BaseException:
            link.close()
            raise
        finally:
            theirs.close()  # only the child holds it now: its end-of-file is the child's end
        self._process, self._link = process, link
        log.info("quizbot: the bot runs in process %s", process.pid)
        try:
            link.send(self._orders)
            asyncio.get_running_loop().add_reader(link.fileno(), self._receive)
        except OSError:
            self._hang_up()  # the child died at once; its exit code says why
        return process

    async def _watch(self, process: asyncio.subprocess.Process) -> int:
        try:
            return await process.wait()
        finally:
            self._hang_up()
            self._answers_before += self.stats.answers
            self.stats = QuizStats()

    def _hang_up(self) -> None:
        if self._link is not None:
            asyncio.get_running_loop().remove_reader(self._link.fileno())
            self._link.close()
            self._link = None

    def _receive(self) -> None:
        link = self._link
        try:
            while link is not None and link.poll():
                message = link.recv()
                if isinstance(message, QuizStats):
                    self.stats = message
                elif isinstance(message, _LogLine):
                    record = logging.makeLogRecord(message.record)
                    logger = logging.getLogger(record.name)
                    if logger.isEnabledFor(record.levelno):
                        logger.handle(record)
        except (EOFError, OSError):
            self._hang_up()  # the child is gone; its exit says so too


# --- the child ---------------------------------------------------------------------------------------------


class _PipeHandler(logging.Handler):
    """The child's log records, sent to the server, which logs them with its own handlers."""

    def __init__(self, link: Pipe) -> None:
        super().__init__()
        self._link = link
        self._lock_send = threading.Lock()  # slixmpp and the store may log from other threads

    def emit(self, record: logging.LogRecord) -> None:
        try:
            # Plain values only: whatever else a record carries may not pickle.
            fields = {key: value for key, value in record.__dict__.items()
                      if isinstance(value, str | int | float | bool) or value is None}
            fields["msg"], fields["args"] = record.getMessage(), None
            if record.exc_info:
                fields["exc_text"] = logging.Formatter().formatException(record.exc_info)
            with self._lock_send:
                self._link.send(_LogLine(record=fields))
        except OSError:
            pass  # the server has gone; the child is leaving too
        except Exception:  # a log line that cannot be sent must not stop the bot
            self.handleError(record)


def child_main(fd: int) -> None:
    """The child's entry point (`BotProcess` runs it with `python -c`): its orders come first on the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the server stops us itself
    link = Pipe(fd)
    try:
        orders = link.recv()
    except (EOFError, OSError):
        return  # the server went before it told us anything
    assert isinstance(orders, ChildOrders)
    root = logging.getLogger()
    root.handlers[:] = [_PipeHandler(link)]
    root.setLevel(orders.log_level)
    from boshcm.database import DatabaseFault

    try:
        asyncio.run(_run_child(orders, link))
    except DatabaseFault as exc:
        log.error("quizbot: %s", exc)
        raise SystemExit(1) from exc


async def _run_child(orders: ChildOrders, link: Pipe) -> None:
    from quizbot.client import Connection
    from quizbot.runner import build_client, quiz_stats

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    def hung_up() -> None:
        with contextlib.suppress(EOFError, OSError):
            link.recv()  # the server sends nothing more: readable means it has gone
        loop.remove_reader(link.fileno())
        stop.set()

    loop.add_reader(link.fileno(), hung_up)
    connection = Connection(jid=f"{orders.jid}/bot", password=orders.password, server=orders.server,
                            ca_file=orders.ca_file)
    client, store = build_client(orders.quiz, connection, rooms=orders.rooms, muc_domain=orders.muc_domain,
                                 store_path=orders.store_path)
    client.start()
    sent, sent_at = None, 0.0
    try:
        while not stop.is_set():
            stats = quiz_stats(client.bot, store, entered=client.entered)
            if stats != sent or loop.time() - sent_at >= STATS_SECONDS:
                try:
                    link.send(stats)
                except OSError:
                    break  # the server has gone
                sent, sent_at = stats, loop.time()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), STATS_POLL_SECONDS)
    finally:
        await client.stop()
        store.close()
