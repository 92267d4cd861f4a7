"""Staff and the web chat: the console shows each conversation's channel, and a reply typed
there reaches the patient's browser live (or when the browser comes back), never as an SMS;
the outbound gate for texts does not apply, and the audit says so."""
from __future__ import annotations

import asyncio

import pytest

from bot.storage.crypto import conversation_id, keyring
from channels.web.session_cookie import session_of
from tests.test_sms_outbound import stack  # noqa: F401 - the gateway + stand-in Rasa + provider stand-in
from tests.test_staff_console import _audit, _plain_http_cookies, console  # noqa: F401 - fixtures
from tests.web_chat_helpers import Browser, chat_cookie, texts

REPLY = "Hi, this is the office. A nurse will call you this afternoon."  # synthetic


@pytest.fixture
async def web_patient(console):
    """(browser, its conversation): a patient in the web chat whose conversation waits for staff."""
    client, stub, provider, cfg, app = console["stack"]
    base = f"http://127.0.0.1:{client.server.port}"
    cookie = await chat_cookie(base)
    conversation = conversation_id(keyring(cfg), "web", session_of(keyring(cfg), cookie)[1])
    browser = Browser(base, cookie)
    await browser.open()
    await console["queue"].escalate(conversation, "web", "patient_request")
    yield browser, conversation
    await browser.close()


async def test_a_staff_reply_reaches_the_browser_live_and_not_by_sms(console, web_patient):
    client, stub, provider, cfg, app = console["stack"]
    browser, conversation = web_patient
    await browser.sio.emit("user_uttered", {"message": "can someone call me about my knee"})
    alice = await console["sign_in"]("alice")
    for _ in range(50):  # the patient's message reaches the staff inbox; the bot stays silent
        items = (await (await alice.client.get(f"/staff/api/conversations/{conversation}/log")).json())["items"]
        if items:
            break
        await asyncio.sleep(0.1)
    assert [i["text"] for i in items] == ["can someone call me about my knee"] and stub.calls == []

    resp, queue_page = await alice.page("/staff/queue")
    assert "Web chat" in queue_page
    rows = (await (await alice.client.get("/staff/api/queue")).json())["rows"]
    assert [(r["conversation"], r["channel_label"]) for r in rows] == [(conversation, "Web chat")]
    resp, page = await alice.page(f"/staff/conversations/{conversation}")
    assert "Channel: Web chat" in page

    assert (await alice.post(f"/staff/conversations/{conversation}/claim")).status == 303
    assert (await alice.post(f"/staff/conversations/{conversation}/reply", {"text": REPLY})).status == 303
    assert await browser.next_replies() == [{"text": REPLY}]
    resp, page = await alice.page(f"/staff/conversations/{conversation}")
    assert "Reply sent to the patient&#39;s web chat." in page and REPLY in page
    assert provider.sent == []  # no text message, to anyone

    assert (await alice.post(f"/staff/conversations/{conversation}/resolve")).status == 303
    [notice] = texts(await browser.next_replies())
    assert "automated assistant" in notice
    actor = f"staff:{console['staff']['alice'].member.id}"
    done = [(e.action, e.outcome, e.details) for e in await _audit(console) if e.actor == actor
            and e.subject == conversation]
    assert ("staff_reply", "sent") in [(a, o) for a, o, _ in done]
    queued = [d for a, o, d in done if a == "web_message_queued"]
    assert len(queued) == 2 and all(d == {"channel": "web", "outbound_gate": "not_applicable"} for d in queued)


async def test_a_staff_reply_to_a_closed_chat_is_shown_when_the_patient_comes_back(console, web_patient):
    client, stub, provider, cfg, app = console["stack"]
    browser, conversation = web_patient
    cookie = browser.cookie
    await browser.close()
    alice = await console["sign_in"]("alice")
    assert (await alice.post(f"/staff/conversations/{conversation}/claim")).status == 303
    assert (await alice.post(f"/staff/conversations/{conversation}/reply", {"text": REPLY})).status == 303
    back = Browser(browser.base, cookie)
    try:
        await back.open()
        assert texts(await back.next_replies()) == [REPLY]
    finally:
        await back.close()
