"""The quiz page's JS heap does not grow with the game (the quiz-night issue: "measure the page's JS heap in
Chromium after 5 and after 50 questions"). In a file of its own so it runs beside the other page tests."""

from __future__ import annotations

import json

import pytest
from playwright.async_api import Browser, expect

from tests.interop.test_quiz_page_light import (  # noqa: F401 (make_server is a fixture)
    AUTO_ANSWER,
    FAST_BANK,
    HEAP_OUTPUT,
    WAIT_MS,
    ServerFactory,
    heap_after_gc,
    join_public_room,
    make_server,
    url_of,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.mark.interop
async def test_js_heap_does_not_grow_with_the_game(make_server: ServerFactory, browser: Browser) -> None:  # noqa: F811 (make_server)
    """A 50-question game of 1 s questions (each revealed as soon as the page answered): the heap after
    question 50 is within 10 % (plus 256 KiB) of the heap after question 5. Both go to test-output/.
    The page answers every 0.1 s or so: the bot's answer rate limit (3 in 2 s) is lifted, else every fourth
    answer is refused and its question waits for its deadline."""
    server = await make_server(FAST_BANK, question_seconds=1.0, reveal_seconds=0.1, rate_limit_answers=100)
    context = await browser.new_context(locale="en-GB")
    page = await context.new_page()
    await join_public_room(page, url_of(server))
    await page.evaluate(AUTO_ANSWER)
    await page.get_by_label("Questions", exact=True).fill("50")
    await page.get_by_role("button", name="Start the game").click()
    await page.wait_for_function("parseInt(document.querySelector('#q-index').textContent.split(' ')[1]) > 5",
                                 polling="raf", timeout=WAIT_MS)
    after_5 = await heap_after_gc(page)
    await expect(page.locator("#podium")).to_be_visible(timeout=60_000)
    after_50 = await heap_after_gc(page)
    HEAP_OUTPUT.parent.mkdir(exist_ok=True)
    HEAP_OUTPUT.write_text(json.dumps({"after_5_questions_bytes": after_5, "after_50_questions_bytes": after_50}))
    assert after_50 <= after_5 * 1.10 + 256 * 1024, f"heap {after_5} after 5, {after_50} after 50 questions"
    await context.close()
