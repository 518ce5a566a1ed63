"""Waiting for the operator's stop: the one SIGINT/SIGTERM loop for `boshcm serve` and `quizbot run`."""

from __future__ import annotations

import asyncio
import signal

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def until_stop_signal() -> None:
    """Return once SIGINT or SIGTERM arrives; the default handlers are back afterwards."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
