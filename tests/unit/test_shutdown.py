"""The one stop-signal wait shared by `boshcm serve` and `quizbot run` (boshcm/shutdown.py)."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from boshcm.shutdown import StopSignals


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_ends_the_wait_and_the_default_handler_comes_back(signum: signal.Signals) -> None:
    before = signal.getsignal(signum)

    async def main() -> None:
        with StopSignals() as stop:
            waiting = asyncio.create_task(stop.wait())
            await asyncio.sleep(0)
            assert not waiting.done()
            os.kill(os.getpid(), signum)
            await asyncio.wait_for(waiting, 2)

    asyncio.run(main())
    assert signal.getsignal(signum) == before


def test_a_stop_signal_during_start_up_is_kept_until_the_wait() -> None:
    """`boshcm serve` enters before starting: a SIGTERM while it starts must neither kill the process by the default
    action nor be lost — the wait that follows returns at once."""

    async def main() -> None:
        with StopSignals() as stop:
            os.kill(os.getpid(), signal.SIGTERM)  # "start-up" still going on
            await asyncio.sleep(0.05)
            await asyncio.wait_for(stop.wait(), 1)

    asyncio.run(main())
