"""Waiting for the operator's stop: the one SIGINT/SIGTERM handling for `boshcm serve` and `quizbot run`."""

from __future__ import annotations

import asyncio
import signal
from types import TracebackType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """SIGINT and SIGTERM are caught from the moment this is entered — before start-up, so that a stop asked for
    while the server is still starting is kept (it stops as soon as it has started) instead of killing the process
    by the default action; the default handlers are back on exit.

        with StopSignals() as stop:
            await server.start()
            await stop.wait()
    """

    def __init__(self) -> None:
        self._stop = asyncio.Event()

    def __enter__(self) -> StopSignals:
        loop = asyncio.get_running_loop()
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, self._stop.set)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        loop = asyncio.get_running_loop()
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)

    async def wait(self) -> None:
        """Return once SIGINT or SIGTERM has arrived (at once if one came already)."""
        await self._stop.wait()
