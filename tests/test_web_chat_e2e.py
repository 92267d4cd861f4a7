"""End to end: the web chat on the whole stack (gateway in two workers, Rasa, action server),
through python-socketio's client as the widget speaks: an FAQ answered, the clarifying
question's buttons, an office message published by another process shown live and a kept one
on return, and the refusals (forged cookie, foreign origin) on the running gateway."""
from __future__ import annotations

import asyncio

import aiohttp
import pytest
import redis.asyncio as aioredis
import socketio

from bot.conversation.web_outbox import WebMessage, WebOutbox
from bot.core.office import load_office
from bot.storage.crypto import conversation_id, keyring
from channels.web.session_cookie import session_of
from tests.conftest import TEST_REDIS_URL
from tests.test_e2e import stack  # noqa: F401 - the whole stack, started once for this module
from tests.web_chat_helpers import Browser, chat_cookie, texts

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _base(stack) -> str:
    return stack.gateway_url(1)


async def _publish(stack, conversation: str, text: str) -> None:
    """As the console or another gateway would: its own Redis client, another process's view."""
    client = aioredis.Redis.from_url(TEST_REDIS_URL)
    try:
        await WebOutbox(client, keyring(stack.cfg), stack.cfg.redis_prefix).send(conversation, [WebMessage(text)])
    finally:
        await client.close()


def _conversation(stack, browser) -> str:
    keys = keyring(stack.cfg)
    return conversation_id(keys, "web", session_of(keys, browser.cookie)[1])


def test_what_are_your_hours_in_the_web_chat(stack):
    office = load_office(stack.cfg.office_config)

    async def chat():
        browser = Browser(_base(stack), await chat_cookie(_base(stack)))
        try:
            await browser.open()
            return texts(await browser.say("what are your hours"))
        finally:
            await browser.close()

    assert asyncio.run(chat()) == [office.faq_answer("ask_hours")]


def test_the_clarifying_question_offers_buttons_and_a_press_answers(stack):
    office = load_office(stack.cfg.office_config)

    async def chat():
        browser = Browser(_base(stack), await chat_cookie(_base(stack)))
        try:
            await browser.open()
            [question] = await browser.say("the shot and the bill")
            answer = texts(await browser.say(question["quick_replies"][1]["payload"]))  # what a press sends
            return question, answer
        finally:
            await browser.close()

    question, answer = asyncio.run(chat())
    assert [(q["title"], q["payload"]) for q in question["quick_replies"]] == [
        ("vaccines and flu shots", "1"), ("a bill or payment", "2")]
    assert answer == [office.faq_answer("ask_billing")]


def test_an_office_message_reaches_the_open_chat_live_and_a_closed_one_on_return(stack):
    async def chat():
        base = _base(stack)
        live = Browser(base, await chat_cookie(base), connector=aiohttp.TCPConnector(force_close=True))
        cookie = await chat_cookie(base)
        try:
            await live.open()
            await _publish(stack, _conversation(stack, live), "A nurse will call you at 3 pm.")
            got_live = texts(await live.next_replies())
            away = Browser(base, cookie)
            await _publish(stack, _conversation(stack, away), "Your form was received.")
            await away.open()
            got_later = texts(await away.next_replies())
            await away.close()
            return got_live, got_later
        finally:
            await live.close()

    assert asyncio.run(chat()) == (["A nurse will call you at 3 pm."], ["Your form was received."])


def test_the_running_gateway_refuses_a_forged_cookie_and_a_foreign_origin(stack):
    async def attempts():
        base = _base(stack)
        cookie = await chat_cookie(base)
        refused = []
        for browser in (Browser(base, cookie[:-4] + "0000"), Browser(base, cookie, origin="https://attacker.example")):
            try:
                await browser.open(wait=3)
                refused.append(False)
            except socketio.exceptions.ConnectionError:
                refused.append(True)
            finally:
                await browser.close()
        return refused

    assert asyncio.run(attempts()) == [True, True]


def test_nothing_the_web_chat_said_is_readable_in_redis_or_the_logs(stack):
    """After the tests above (run at DEBUG, the most talkative level shipped)."""
    from tests.conftest import redis_dump

    needles = ["what are your hours", "the shot and the bill", "A nurse will call you", "Your form was received"]
    blob = redis_dump(stack.cfg.redis_prefix).decode("utf-8", "replace")
    logs = "\n".join(stack.log_file(n).read_text(errors="replace") for n in ("actions", "rasa", "gateway"))
    for needle in needles:
        assert needle not in blob, f"{needle!r} found in Redis"
        assert needle not in logs, f"{needle!r} found in the logs"
