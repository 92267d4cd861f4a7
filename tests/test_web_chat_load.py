"""Load, end to end: 100 web chat sessions at once on the whole stack (the gateway in two
workers, each request on a new connection, so either worker may get it), each on long polling
as the widget starts, each asking its own questions in its own order. Every answer arrives,
in order, at the session that asked, none lost, none crossed; then an office message for each
session reaches that session only."""
from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
import redis.asyncio as aioredis

from bot.conversation.web_outbox import WebMessage, WebOutbox
from bot.core.office import load_office
from bot.storage.crypto import conversation_id, keyring
from channels.web.session_cookie import session_of
from tests.conftest import TEST_REDIS_URL
from tests.test_e2e import stack  # noqa: F401 - the whole stack, started once for this module
from tests.web_chat_helpers import Browser, chat_cookie, texts

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SESSIONS = 100
TOPICS = {"what are your hours": "ask_hours", "where do I park": "ask_parking",
          "do you take my insurance": "ask_insurance"}


def _questions(n: int):
    """Session ``n``'s questions: all topics, in an order of its own."""
    asked = list(TOPICS)
    k = n % len(asked)
    return asked[k:] + asked[:k]


def test_a_hundred_sessions_at_once_get_their_own_answers(stack):
    office = load_office(stack.cfg.office_config)
    base = stack.gateway_url(1)
    keys = keyring(stack.cfg)

    async def session(n: int, browser: Browser):
        await browser.open()
        return [texts(await browser.say(question))[0] for question in _questions(n)]

    async def run():
        cookies = await asyncio.gather(*(chat_cookie(base) for _ in range(SESSIONS)))
        browsers = [Browser(base, cookie, connector=aiohttp.TCPConnector(force_close=True)) for cookie in cookies]
        client = aioredis.Redis.from_url(TEST_REDIS_URL)
        outbox = WebOutbox(client, keys, stack.cfg.redis_prefix)
        try:
            started = time.monotonic()
            answers = await asyncio.gather(*(session(n, b) for n, b in enumerate(browsers)))
            took = time.monotonic() - started
            owners = {b.sio.eio.sid[:3] for b in browsers}
            conversations = [conversation_id(keys, "web", session_of(keys, b.cookie)[1]) for b in browsers]
            for n, conversation in enumerate(conversations):
                await outbox.send(conversation, [WebMessage(f"office note for session {n}")])
            for conversation in conversations:  # after every note: a note sent astray would come before it
                await outbox.send(conversation, [WebMessage("last")])
            notes = await asyncio.gather(*(b.next_replies(2) for b in browsers))
            return answers, [texts(n) for n in notes], owners, took
        finally:
            await asyncio.gather(*(b.close() for b in browsers))
            await client.close()

    answers, notes, owners, took = asyncio.run(run())
    for n, got in enumerate(answers):
        assert got == [office.faq_answer(TOPICS[q]) for q in _questions(n)], n
    assert notes == [[f"office note for session {n}", "last"] for n in range(SESSIONS)]
    assert owners == {"w00", "w01"}  # both workers held sessions
    print(f"\n{SESSIONS} web chat sessions x {len(TOPICS)} questions in {took:.1f} s")
