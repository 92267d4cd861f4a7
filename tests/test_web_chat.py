"""The web chat (channels/web) against the real Redis, with the stand-in Rasa, through
python-socketio's client speaking the rasa-webchat protocol: the session cookie decides the
session, foreign origins are refused, sessions never see each other's messages, office
messages reach the browser live or when it comes back, buttons, rate limits, malformed events."""
from __future__ import annotations

import asyncio

import aiohttp
import pytest
import redis.asyncio as aioredis
import socketio

from bot.conversation.web_outbox import WebMessage, WebOutbox
from bot.storage.crypto import conversation_id, keyring
from channels.web.session_cookie import COOKIE, cookie_value, new_session, public_label, session_of
from channels.web.socket_server import MAX_REFUSALS, SLOW_DOWN
from tests.conftest import TEST_REDIS_URL, redis_dump
from tests.gateway_helpers import StubRasa
from tests.web_chat_helpers import Browser, WebSocketBrowser, chat_cookie, texts, web_gateway

FOREIGN = "https://attacker.example"


def echo(call):
    """The stand-in Rasa's answer: the text back, with the conversation it came from."""
    return [{"text": f"echo {call['text']} for {call['sender']}", "phi_class": "public"}]


@pytest.fixture
async def chat(settings_env, aiohttp_server, monkeypatch):
    """(base URL, stand-in Rasa, settings, app); WEBCHAT_RATE_LIMIT_PER_MINUTE=3."""
    stub = StubRasa(settings_env["RASA_GATEWAY_SECRET"])
    base, cfg, app = await web_gateway(stub, aiohttp_server, monkeypatch, WEBCHAT_RATE_LIMIT_PER_MINUTE="3",
                                       WEBCHAT_ALLOWED_ORIGINS="https://www.office.example")
    return base, stub, cfg, app


@pytest.fixture
async def browsers():
    opened = []

    def make(*args, **kwargs) -> Browser:
        browser = Browser(*args, **kwargs)
        opened.append(browser)
        return browser

    yield make
    for browser in opened:
        await browser.close()


@pytest.fixture
async def outbox(chat):
    """The web outbox as another process holds it: its own Redis client."""
    base, stub, cfg, app = chat
    client = aioredis.Redis.from_url(TEST_REDIS_URL)
    yield WebOutbox(client, keyring(cfg), cfg.redis_prefix)
    await client.close()


def _audited(redis_sync, prefix, action):
    return [fields[b"outcome"].decode() for _, fields in redis_sync.xrange(f"{prefix}audit")
            if fields[b"action"] == action.encode()]


def _conversation(cfg, cookie):
    return conversation_id(keyring(cfg), "web", session_of(keyring(cfg), cookie)[1])


# -- the protocol ---------------------------------------------------------------------------------
async def test_a_question_reaches_the_pipeline_as_a_web_message_and_the_answer_comes_back(chat, browsers):
    base, stub, cfg, app = chat
    cookie = await chat_cookie(base)
    browser = browsers(base, cookie)
    label = await browser.open()
    sid = session_of(keyring(cfg), cookie)[1]
    assert label == public_label(keyring(cfg), sid) and sid not in label
    assert await browser.say("what are your hours") == [{"text": "hello from the bot"}]
    [call] = stub.calls
    assert call["channel"] == "web" and call["text"] == "what are your hours"
    assert call["sender"] == conversation_id(keyring(cfg), "web", sid)


async def test_the_label_the_widget_sends_is_ignored_the_cookie_decides(chat, browsers):
    base, stub, cfg, app = chat
    stub.answer = echo
    first, second = browsers(base, await chat_cookie(base)), browsers(base, await chat_cookie(base))
    label_one = await first.open()
    assert await second.open(kept_label=label_one) != label_one  # a copied label grants nothing
    [reply] = texts(await second.say("hi"))
    assert reply == f"echo hi for {_conversation(cfg, second.cookie)}"
    assert _conversation(cfg, first.cookie) not in reply


async def test_a_reload_keeps_the_session_and_each_message_is_a_new_one(chat, browsers):
    """Message ids are per connection: the same words after a reload are answered again, not
    replayed as a duplicate of the first connection's message."""
    base, stub, cfg, app = chat
    cookie = await chat_cookie(base)
    first = browsers(base, cookie)
    label = await first.open()
    await first.say("hi")
    await first.close()
    again = browsers(base, cookie)
    assert await again.open(kept_label=label) == label
    stub.replies = [{"text": "a fresh answer", "phi_class": "public"}]
    assert texts(await again.say("hi")) == ["a fresh answer"]
    assert len(stub.calls) == 2 and stub.calls[0]["message_id"] != stub.calls[1]["message_id"]


async def test_two_sessions_never_see_each_others_messages(chat, browsers):
    base, stub, cfg, app = chat
    stub.answer = echo
    patients = [browsers(base, await chat_cookie(base)) for _ in range(2)]
    for patient in patients:
        await patient.open()

    async def talk(patient, n):
        return [texts(await patient.say(f"message {n}-{k}"))[0] for k in range(3)]

    answers = await asyncio.gather(*(talk(p, n) for n, p in enumerate(patients)))
    for n, (patient, got) in enumerate(zip(patients, answers)):
        conversation = _conversation(cfg, patient.cookie)
        assert got == [f"echo message {n}-{k} for {conversation}" for k in range(3)]
        assert patient.replies.empty()  # nothing of the other's


async def test_buttons_become_quick_replies_and_a_command_payload_is_dropped(chat, browsers):
    base, stub, cfg, app = chat
    stub.replies = [{"text": "Did you mean:\n1) hours\n2) parking", "phi_class": "public",
                     "buttons": [{"title": "hours", "payload": "1"}, {"title": "parking", "payload": "2"},
                                 {"title": "sneaky", "payload": "/ask_hours"}]}]
    browser = browsers(base, await chat_cookie(base))
    await browser.open()
    [reply] = await browser.say("hours or parking")
    assert reply == {"text": "Did you mean:\n1) hours\n2) parking", "quick_replies": [
        {"content_type": "text", "title": "hours", "payload": "1"},
        {"content_type": "text", "title": "parking", "payload": "2"}]}
    stub.replies = [{"text": "We're open 8 to 5.", "phi_class": "public"}]
    assert texts(await browser.say("1")) == ["We're open 8 to 5."]  # the payload comes back as typed text
    assert stub.calls[-1]["text"] == "1"


async def test_phi_to_an_unverified_web_conversation_is_blocked(chat, browsers):
    base, stub, cfg, app = chat
    stub.replies = [{"text": "public part", "phi_class": "public"}, {"text": "your visit reason is X", "phi_class": "phi"}]
    browser = browsers(base, await chat_cookie(base))
    await browser.open()
    assert texts(await browser.say("why was my visit")) == ["public part"]


async def test_an_emergency_is_redirected_without_asking_rasa(chat, browsers):
    base, stub, cfg, app = chat
    browser = browsers(base, await chat_cookie(base))
    await browser.open()
    [redirect] = texts(await browser.say("my husband collapsed and isn't breathing"))
    assert "911" in redirect and stub.calls == []


async def test_nothing_readable_in_redis(chat, browsers, redis_sync):
    base, stub, cfg, app = chat
    cookie = await chat_cookie(base)
    browser = browsers(base, cookie)
    await browser.open()
    await browser.say("my name is Alex Demopatient")
    blob = redis_dump(cfg.redis_prefix)
    sid = session_of(keyring(cfg), cookie)[1]
    for needle in ("Alex", "Demopatient", sid, cookie):
        assert needle.encode() not in blob, needle


# -- who may connect ------------------------------------------------------------------------------
async def test_a_forged_or_altered_cookie_is_refused_and_audited(chat, browsers, redis_sync, prefix):
    base, stub, cfg, app = chat
    real = await chat_cookie(base)
    forged = [f"{new_session()}.{'0' * 64}", real[:-1] + ("0" if real[-1] != "0" else "1"),
              f"{new_session()}.{real.split('.')[1]}"]
    for value in forged:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await browsers(base, value).open()
    assert _audited(redis_sync, prefix, "web_chat_refused") == ["bad_cookie"] * 3
    assert stub.calls == []


async def test_a_browser_that_keeps_no_cookie_is_refused(chat, browsers, redis_sync, prefix):
    """As a page of another site is: the widget's requests carry no credentials there, so the
    cookie the handshake offers never comes back, and the connection is refused."""
    base, stub, cfg, app = chat
    with pytest.raises(socketio.exceptions.ConnectionError):
        await browsers(base, keep_cookies=False).open(wait=2)
    assert "cookie_mismatch" in _audited(redis_sync, prefix, "web_chat_refused")


async def test_a_browser_without_a_cookie_that_keeps_the_offered_one_gets_a_new_session(chat, browsers):
    """A page of the gateway's own site that is not /chat: the polling handshake sets the cookie."""
    base, stub, cfg, app = chat
    browser = browsers(base)
    label = await browser.open()
    assert browser.cookie and label == public_label(keyring(cfg), session_of(keyring(cfg), browser.cookie)[1])
    assert texts(await browser.say("hi")) == ["hello from the bot"]


async def test_a_websocket_handshake_needs_its_cookie(chat, redis_sync, prefix):
    base, stub, cfg, app = chat
    bare = WebSocketBrowser(base, None)
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await bare.open()
        assert refused.value.status == 403
    finally:
        await bare.close()
    assert "no_cookie" in _audited(redis_sync, prefix, "web_chat_refused")
    browser = WebSocketBrowser(base, await chat_cookie(base))
    try:
        await browser.open()
        await browser.session()
        assert await browser.say("hi") == {"text": "hello from the bot"}
    finally:
        await browser.close()


async def test_a_polling_session_upgrades_to_a_websocket_with_its_cookie_only(chat, browsers, redis_sync, prefix):
    base, stub, cfg, app = chat
    cookie = await chat_cookie(base)
    polling = browsers(base, cookie)
    await polling.open()
    eio_sid = polling.sio.eio.sid
    thief = WebSocketBrowser(base, await chat_cookie(base))
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await thief.open(eio_sid)
    finally:
        await thief.close()
    assert "cookie_mismatch" in _audited(redis_sync, prefix, "web_chat_refused")
    assert texts(await polling.say("still here")) == ["hello from the bot"]


async def test_an_engine_io_session_id_is_useless_without_its_cookie(chat, browsers, redis_sync, prefix):
    base, stub, cfg, app = chat
    victim = browsers(base, await chat_cookie(base))
    await victim.open()
    sid = victim.sio.eio.sid
    other = await chat_cookie(base)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        for cookie in (other, None):
            headers = {"Cookie": f"{COOKIE}={cookie}"} if cookie else {}
            async with http.post(f"{base}/socket.io/?EIO=4&transport=polling&sid={sid}", headers=headers,
                                 data='42["user_uttered",{"message":"hijack"}]') as resp:
                assert resp.status == 403
    assert _audited(redis_sync, prefix, "web_chat_refused").count("cookie_mismatch") == 2
    assert stub.calls == []
    assert texts(await victim.say("still mine")) == ["hello from the bot"]


async def test_a_foreign_origin_is_refused_and_an_allowed_one_accepted(chat, browsers, redis_sync, prefix):
    base, stub, cfg, app = chat
    cookie = await chat_cookie(base)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await browsers(base, cookie, origin=FOREIGN).open()
    hijack = WebSocketBrowser(base, cookie, origin=FOREIGN)  # cross-site WebSocket hijacking
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await hijack.open()
    finally:
        await hijack.close()
    assert _audited(redis_sync, prefix, "web_chat_refused") == ["bad_origin", "bad_origin"]
    assert stub.calls == []
    for origin in (base, "https://www.office.example"):  # its own, and one WEBCHAT_ALLOWED_ORIGINS names
        browser = browsers(base, await chat_cookie(base), origin=origin)
        await browser.open()
        assert texts(await browser.say("hi")) == ["hello from the bot"]
        over_ws = WebSocketBrowser(base, await chat_cookie(base), origin=origin)
        try:
            await over_ws.open()
            await over_ws.session()
            assert await over_ws.say("hi") == {"text": "hello from the bot"}
        finally:
            await over_ws.close()


async def test_a_cross_site_request_without_an_origin_is_refused(chat):
    base, stub, cfg, app = chat
    cookie = await chat_cookie(base)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        for site, status in (("cross-site", 403), ("same-site", 403), ("same-origin", 200)):
            async with http.get(f"{base}/socket.io/?EIO=4&transport=polling",
                                headers={"Cookie": f"{COOKIE}={cookie}", "Sec-Fetch-Site": site}) as resp:
                assert resp.status == status, site


# -- refusals inside a connection -----------------------------------------------------------------
async def test_the_rate_limit_per_session_and_the_emergency_beyond_it(chat, browsers, redis_sync, prefix):
    base, stub, cfg, app = chat
    browser = browsers(base, await chat_cookie(base))
    await browser.open()
    for n in range(3):  # WEBCHAT_RATE_LIMIT_PER_MINUTE=3
        assert texts(await browser.say(f"question {n}")) == ["hello from the bot"]
    assert texts(await browser.say("one more")) == [SLOW_DOWN]
    [redirect] = texts(await browser.say("i want to kill myself"))
    assert "988" in redirect
    assert len(stub.calls) == 3
    assert _audited(redis_sync, prefix, "rate_limited") == ["refused", "emergency_redirected"]
    other = browsers(base, await chat_cookie(base))  # another session has its own budget
    await other.open()
    assert texts(await other.say("hi")) == ["hello from the bot"]


@pytest.mark.parametrize("event,data,code", [
    ("user_uttered", {"message": 42}, "malformed"),
    ("user_uttered", "just a string", "malformed"),
    ("user_uttered", {"message": ["a", "list"]}, "malformed"),
    ("user_uttered", {"message": "x" * 1601}, "too_long"),
    ("something_else", {"message": "hi"}, "malformed"),
])
async def test_malformed_events_get_an_error_event_are_audited_and_the_connection_lives_on(
        chat, browsers, redis_sync, prefix, event, data, code):
    base, stub, cfg, app = chat
    browser = browsers(base, await chat_cookie(base))
    await browser.open()
    await browser.sio.emit(event, data)
    error = await asyncio.wait_for(browser.errors.get(), 10)
    assert error["error"] == code and error["message"]
    assert _audited(redis_sync, prefix, "web_chat_event_refused") == [code]
    assert stub.calls == [] and browser.replies.empty()
    assert texts(await browser.say("hi")) == ["hello from the bot"]
    blob = redis_dump(cfg.redis_prefix)
    assert b"x" * 100 not in blob


async def test_a_connection_sending_only_malformed_events_is_closed(chat, browsers):
    base, stub, cfg, app = chat
    browser = browsers(base, await chat_cookie(base))
    await browser.open()
    gone = asyncio.Event()
    browser.sio.on("disconnect", lambda *args: gone.set())
    for _ in range(MAX_REFUSALS):
        await browser.sio.emit("user_uttered", {"message": 1})
    await asyncio.wait_for(gone.wait(), 10)


async def test_the_widget_start_without_an_init_payload_is_ignored(chat, browsers, redis_sync, prefix):
    base, stub, cfg, app = chat
    browser = browsers(base, await chat_cookie(base))
    await browser.open()
    await browser.sio.emit("user_uttered", {"customData": {}, "session_id": "x"})  # what it sends then
    assert texts(await browser.say("hi")) == ["hello from the bot"]
    assert browser.errors.empty() and _audited(redis_sync, prefix, "web_chat_event_refused") == []


# -- what the office sends ------------------------------------------------------------------------
async def test_an_office_message_published_elsewhere_reaches_the_browser_live(chat, browsers, outbox):
    base, stub, cfg, app = chat
    cookie = await chat_cookie(base)
    browser, bystander = browsers(base, cookie), browsers(base, await chat_cookie(base))
    await browser.open()
    await bystander.open()
    conversation = _conversation(cfg, cookie)
    await outbox.send(conversation, [WebMessage("A nurse will call you at 3 pm.", (("OK", "ok"),))])
    assert await browser.next_replies() == [{"text": "A nurse will call you at 3 pm.", "quick_replies": [
        {"content_type": "text", "title": "OK", "payload": "ok"}]}]
    assert await outbox.pending(conversation) == []  # shown, so no longer kept
    # The bystander's own message comes after: one wrongly sent to it would have come first.
    await outbox.send(_conversation(cfg, bystander.cookie), [WebMessage("yours")])
    assert texts(await bystander.next_replies()) == ["yours"]


async def test_an_office_message_for_a_closed_chat_is_shown_when_it_comes_back_once(chat, browsers, outbox):
    base, stub, cfg, app = chat
    cookie = await chat_cookie(base)
    conversation = _conversation(cfg, cookie)
    await outbox.send(conversation, [WebMessage("first"), WebMessage("second")])
    browser = browsers(base, cookie)
    await browser.open()
    assert texts(await browser.next_replies(2)) == ["first", "second"]
    await browser.close()
    again = browsers(base, cookie)
    await again.open()
    assert texts(await again.say("hi")) == ["hello from the bot"]  # nothing shown twice
    blob = redis_dump(cfg.redis_prefix)
    assert b"first" not in blob and b"second" not in blob


async def test_kept_office_messages_are_sealed_bound_to_their_conversation(chat, outbox, redis_sync):
    base, stub, cfg, app = chat
    one, two = _conversation(cfg, cookie_value(keyring(cfg), new_session())), \
        _conversation(cfg, cookie_value(keyring(cfg), new_session()))
    await outbox.send(one, [WebMessage("Your results are ready to discuss.")])
    assert b"results" not in redis_dump(cfg.redis_prefix)
    [(entry, fields)] = redis_sync.xrange(outbox.key(one))
    redis_sync.xadd(outbox.key(two), fields)  # a sealed message moved to another conversation
    assert await outbox.pending(two) == []  # does not open there, and is dropped
    assert [m.text for _, m in await outbox.pending(one)] == ["Your results are ready to discuss."]
