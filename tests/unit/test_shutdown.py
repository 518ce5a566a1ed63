"""The one stop-signal wait shared by `boshcm serve` and `quizbot run` (boshcm/shutdown.py)."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from boshcm.shutdown import until_stop_signal


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_ends_the_wait_and_the_default_handler_comes_back(signum: signal.Signals) -> None:
    before = signal.getsignal(signum)

    async def main() -> None:
        waiting = asyncio.create_task(until_stop_signal())
        await asyncio.sleep(0)                      # the handlers are in place once the task waits
        assert not waiting.done()
        os.kill(os.getpid(), signum)
        await asyncio.wait_for(waiting, 2)

    asyncio.run(main())
    assert signal.getsignal(signum) == before
