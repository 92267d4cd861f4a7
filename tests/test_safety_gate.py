"""The safety gate in the gateway, against the real Redis with a stand-in Rasa: emergencies are
redirected first and without Rasa (or Redis), opt-out is honoured at once and for good, HELP
answers within 160 characters, and an acknowledged opt-out survives kill -9 of Redis."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import redis

from bot.config import load_settings
from bot.records.consent import OPTED_IN, OPTED_OUT, ConsentRegistry
from bot.storage.crypto import keyring, conversation_id, phone_index
from bot.records.handoff import HandoffQueue
from channels.gateway.app import create_app
from tests.gateway_helpers import SENDER, messages, post, sms
from channels.gateway.app_keys import PIPELINE

EMERGENCIES = [
    ("I have crushing chest pain and my left arm is numb", "911", None),
    ("i want to kill myself", "988", None),
    ("my toddler drank bleach", "1-800-222-1222", "911"),
    ("he's hitting me and says he will kill me", "911", None),
]


def sid(n: int) -> str:
    return f"SM{n:032d}"


async def consent_of(cfg, number: str = SENDER):
    client = redis.asyncio.Redis.from_url(cfg.redis_url)
    try:
        registry = ConsentRegistry(client, keyring(cfg), cfg.redis_prefix)
        idx = phone_index(registry.keys, number)
        return await registry.state(idx), await registry.history(idx)
    finally:
        await client.close()


@pytest.mark.parametrize("body,number,also", EMERGENCIES)
async def test_emergency_is_redirected_before_rasa_and_staff_alerted(gateway, body, number, also):
    client, stub, cfg = gateway
    [reply] = messages(await (await post(client, cfg, sms(body, sid(1)))).text())
    assert number in reply and len(reply) <= 320
    if also:
        assert also in reply
    assert stub.calls == []
    rc = redis.asyncio.Redis.from_url(cfg.redis_url)
    conv = conversation_id(keyring(cfg), "sms", SENDER)
    queue = HandoffQueue(rc, keyring(cfg), cfg.redis_prefix)
    entry = await queue.entry(conv)
    contact = await queue.contact(conv)
    await rc.close()
    assert entry["priority"] == "emergency" and entry["reason"] == "emergency_follow_up"
    assert contact == SENDER  # kept (sealed) with the queue entry, so staff can text back


async def test_emergency_is_redirected_when_alerting_staff_fails(gateway, monkeypatch):
    client, stub, cfg = gateway
    pipeline = client.server.app[PIPELINE]

    async def broken(*args, **kwargs):
        raise redis.exceptions.ConnectionError("synthetic failure")

    monkeypatch.setattr(pipeline.services.handoff, "escalate", broken)
    [reply] = messages(await (await post(client, cfg, sms("cant breathe", sid(6)))).text())
    assert "911" in reply
    # Every other write settled; the claim was released, so the provider's retry alerts staff.
    monkeypatch.undo()
    [again] = messages(await (await post(client, cfg, sms("cant breathe", sid(6)))).text())
    assert "911" in again
    rc = redis.asyncio.Redis.from_url(cfg.redis_url)
    entry = await HandoffQueue(rc, None, cfg.redis_prefix).entry(conversation_id(keyring(cfg), "sms", SENDER))
    await rc.close()
    assert entry["priority"] == "emergency"


@pytest.mark.parametrize("status", [500, 503])
async def test_emergency_redirect_does_not_need_rasa(gateway, status):
    client, stub, cfg = gateway
    stub.status = status
    [reply] = messages(await (await post(client, cfg, sms("cant breathe", sid(2)))).text())
    assert "911" in reply


async def test_redis_outage_fails_closed_but_still_redirects_emergencies(settings_env, aiohttp_client, monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    cfg = load_settings()
    client = await aiohttp_client(create_app(cfg))
    [emergency] = messages(await (await post(client, cfg, sms("I took a whole bottle of pills", sid(3)))).text())
    assert "1-800-222-1222" in emergency or "988" in emergency
    [other] = messages(await (await post(client, cfg, sms("when is my appointment", sid(4)))).text())
    assert "can't answer right now" in other
    # An opt-out that cannot be recorded is never acknowledged: the provider is told to retry.
    stop = await post(client, cfg, sms("STOP", sid(5)))
    assert stop.status == 503 and "unsubscribed" not in await stop.text()


@pytest.mark.parametrize("word", ["STOP", "stop", " Stop. ", "UNSUBSCRIBE", "cancel", "END", "quit", "opt out",
                                  "STOPALL", "revoke", "stop texting me"])
async def test_opt_out_confirms_once_then_silence(gateway, word):
    client, stub, cfg = gateway
    [confirmation] = messages(await (await post(client, cfg, sms(word, sid(10)))).text())
    assert "unsubscribed" in confirmation and "START" in confirmation
    state, history = await consent_of(cfg)
    assert state.status == OPTED_OUT and history[-1]["source"] == "keyword" and history[-1]["text"] == word.strip()
    assert messages(await (await post(client, cfg, sms("when is my appointment", sid(11)))).text()) == []
    assert messages(await (await post(client, cfg, sms("STOP", sid(12)))).text()) == []  # no second confirmation
    assert messages(await (await post(client, cfg, sms("HELP", sid(13)))).text()) == []
    assert stub.calls == []  # nothing reached the bot


async def test_emergency_after_opt_out_is_still_redirected(gateway):
    client, stub, cfg = gateway
    await post(client, cfg, sms("STOP", sid(20)))
    [reply] = messages(await (await post(client, cfg, sms("i dont want to be here anymore", sid(21)))).text())
    assert "988" in reply


@pytest.mark.parametrize("word", ["START", "unstop", "YES"])
async def test_opt_in_after_opt_out_restores_and_keeps_history(gateway, word):
    client, stub, cfg = gateway
    await post(client, cfg, sms("STOP", sid(30)))
    [reply] = messages(await (await post(client, cfg, sms(word, sid(31)))).text())
    assert "subscribed again" in reply
    state, history = await consent_of(cfg)
    assert state.status == OPTED_IN and [h["status"] for h in history] == [OPTED_OUT, OPTED_IN]
    await post(client, cfg, sms("hi", sid(32)))
    assert len(stub.calls) == 1  # the bot answers again


async def test_yes_without_an_opt_out_goes_to_the_bot(gateway):
    client, stub, cfg = gateway
    await post(client, cfg, sms("YES", sid(40)))
    assert [c["text"] for c in stub.calls] == ["YES"]
    state, _ = await consent_of(cfg)
    assert state.status == "unknown"


async def test_cancel_my_appointment_is_not_an_opt_out(gateway):
    client, stub, cfg = gateway
    await post(client, cfg, sms("cancel my appointment", sid(41)))
    assert [c["text"] for c in stub.calls] == ["cancel my appointment"]
    state, _ = await consent_of(cfg)
    assert state.status != OPTED_OUT


@pytest.mark.parametrize("word", ["HELP", "help", "Info"])
async def test_help_reply(gateway, word):
    client, stub, cfg = gateway
    [reply] = messages(await (await post(client, cfg, sms(word, sid(50)))).text())
    from bot.core.office import load_office

    office = load_office(cfg.office_config)
    assert len(reply) <= 160
    for part in (office.name, office.phone, "Msg&data rates may apply", "STOP"):
        assert part in reply
    assert stub.calls == []


# -- durability: an acknowledged opt-out survives kill -9 of Redis -----------------------------

PRODUCTION_REDIS_CONF = Path(__file__).resolve().parent.parent / "deploy" / "redis.conf"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_durable_redis(port: int, data_dir) -> subprocess.Popen:
    proc = subprocess.Popen(
        [shutil.which("redis-server"), str(PRODUCTION_REDIS_CONF), "--port", str(port), "--dir", str(data_dir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            return proc
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("private redis-server did not start")


async def test_acknowledged_opt_out_survives_kill_9(settings_env, aiohttp_server, aiohttp_client, monkeypatch, tmp_path):
    port = _free_port()
    proc = _start_durable_redis(port, tmp_path)
    try:
        monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{port}/0")
        from tests.gateway_helpers import make_gateway

        client, stub, cfg = await make_gateway(settings_env, aiohttp_server, aiohttp_client, monkeypatch)
        [ack] = messages(await (await post(client, cfg, sms("STOP", sid(60)))).text())
        assert "unsubscribed" in ack
        os.kill(proc.pid, signal.SIGKILL)  # the moment after the acknowledgement
        proc.wait()
        proc = _start_durable_redis(port, tmp_path)
        state, history = await consent_of(cfg)
        assert state.status == OPTED_OUT and len(history) == 1
    finally:
        proc.kill()
        proc.wait()


# -- every category, whatever the state; the hold; outbound consent; audit --------------------

def _one_per_category():
    from bot.nlu.safety_eval import DEFAULT_SETS, load

    seen = {}
    for ex in load(DEFAULT_SETS):
        if ex.label != "none" and ex.label not in seen:
            seen[ex.label] = ex.text
    return sorted(seen.items())


HELP_LINE = {"suicide": "988", "poisoning": "1-800-222-1222"}


async def _rc(cfg):
    return redis.asyncio.Redis.from_url(cfg.redis_url)


@pytest.mark.parametrize("state", ["opted_out", "held_by_staff"])
async def test_every_category_redirects_after_opt_out_and_mid_handoff(gateway, state):
    client, stub, cfg = gateway
    conv = conversation_id(keyring(cfg), "sms", SENDER)
    if state == "opted_out":
        await post(client, cfg, sms("STOP", sid(70)))
    else:
        rc = await _rc(cfg)
        await HandoffQueue(rc, None, cfg.redis_prefix).take(conv, "staff:demo")
        await rc.close()
    for n, (category, text) in enumerate(_one_per_category()):
        [reply] = messages(await (await post(client, cfg, sms(text, sid(100 + n)))).text())
        assert HELP_LINE.get(category, "911") in reply, (category, text)
    assert stub.calls == []


async def test_held_conversation_goes_to_the_staff_inbox_and_the_bot_is_silent(gateway):
    client, stub, cfg = gateway
    keys = keyring(cfg)
    conv = conversation_id(keys, "sms", SENDER)
    rc = await _rc(cfg)
    queue = HandoffQueue(rc, None, cfg.redis_prefix)
    await queue.take(conv, "staff:demo")
    assert messages(await (await post(client, cfg, sms("is the doctor running late?", sid(80)))).text()) == []
    assert stub.calls == []
    [sealed] = await queue.inbox(conv)
    assert "doctor" not in sealed and keys.decrypt_text(sealed, queue.inbox_key(conv)) == "is the doctor running late?"
    await queue.hand_back(conv)
    await post(client, cfg, sms("thanks", sid(81)))
    assert [c["text"] for c in stub.calls] == ["thanks"]  # the bot answers again
    await rc.close()


async def test_outbound_gate_refuses_and_audits_after_opt_out(gateway):
    from bot.storage.audit import AuditLog
    from bot.records.outbound import OutboundGate

    client, stub, cfg = gateway
    keys = keyring(cfg)
    conv, idx = conversation_id(keys, "sms", SENDER), phone_index(keys, SENDER)
    rc = await _rc(cfg)
    audit = AuditLog(rc, keys, cfg.redis_prefix)
    gate = OutboundGate(ConsentRegistry(rc, keys, cfg.redis_prefix), audit)
    daytime = {"now": datetime(2030, 1, 2, 15, 0, tzinfo=timezone.utc), "tz": "America/Chicago"}

    # Never asked: staff may answer the patient's conversation; reminders need consent first.
    assert (await gate.check(idx, conv, "staff", "staff:demo")).allowed
    assert (await gate.check(idx, conv, "reminder", "system:reminders", **daytime)).reason == "no_consent_for_scope"
    await post(client, cfg, sms("START", sid(90)))
    for initiator in ("reminder", "staff", "bot"):
        assert (await gate.check(idx, conv, initiator, "system:test", **daytime)).allowed
    await post(client, cfg, sms("stop texting me", sid(91)))
    for initiator in ("reminder", "staff", "bot"):
        decision = await gate.check(idx, conv, initiator, "system:test", **daytime)
        assert not decision.allowed and decision.reason == "opted_out"
    refused = [e for e in await audit.events() if e.action == "outbound_refused"]
    assert [(e.outcome, e.details["initiator"], e.subject) for e in refused[-3:]] == [
        ("opted_out", "reminder", conv), ("opted_out", "staff", conv), ("opted_out", "bot", conv)]
    await rc.close()


async def test_gate_events_are_audited_in_an_intact_chain_without_clear_text(gateway, redis_sync):
    from bot.storage.audit import AuditLog

    client, stub, cfg = gateway
    keys = keyring(cfg)
    conv = conversation_id(keys, "sms", SENDER)
    await post(client, cfg, sms("my husband collapsed and isnt breathing", sid(95)))
    await post(client, cfg, sms("STOP", sid(96)))
    rc = await _rc(cfg)
    audit = AuditLog(rc, keys, cfg.redis_prefix)
    events = [e for e in await audit.events() if e.action != "configuration_recorded"]  # start-up's
    actions = [e.action for e in events]
    # "received" first, then the redirect and its sending, all in one group of appends beside
    # the queue write; the escalation's event follows that write.
    assert actions[:4] == ["message_received", "emergency_redirect", "message_sent", "escalated"]
    # The STOP: "received" first, though it is written beside the consent change.
    assert actions[4:] == ["message_received", "consent_opt_out", "message_sent"]
    assert all(e.subject == conv and e.actor for e in events)
    assert events[3].details == {"reason": "emergency_follow_up", "priority": "emergency"}
    assert events[1].details["category"] in ("unconscious", "breathing")
    assert await audit.verify() is None
    raw = b"".join(v for _, f in redis_sync.xrange(f"{cfg.redis_prefix}audit") for v in f.values())
    assert b"collapsed" not in raw and b"husband" not in raw and SENDER[2:].encode() not in raw
    # Deleting an entry breaks the chain at the entry after it.
    entries = redis_sync.xrange(f"{cfg.redis_prefix}audit")
    redis_sync.xdel(f"{cfg.redis_prefix}audit", entries[1][0])
    assert await audit.verify() == entries[2][0].decode()
    with pytest.raises(ValueError, match="actor"):
        await audit.record("", "message_sent", conv)
    await rc.close()


async def test_keyword_gate_answers_with_rasa_down(settings_env, aiohttp_client, monkeypatch):
    monkeypatch.setenv("RASA_PORT", "1")  # nothing listens there: Rasa is down
    monkeypatch.setenv("ACTION_PORT", "1")
    cfg = load_settings()
    client = await aiohttp_client(create_app(cfg))
    [help_reply] = messages(await (await post(client, cfg, sms("HELP", sid(300)))).text())
    assert "Reply STOP" in help_reply
    [stopped] = messages(await (await post(client, cfg, sms("STOP", sid(301)))).text())
    assert "unsubscribed" in stopped
    [started] = messages(await (await post(client, cfg, sms("START", sid(302)))).text())
    assert "subscribed again" in started
    [redirect] = messages(await (await post(client, cfg, sms("someone overdosed", sid(303)))).text())
    assert "1-800-222-1222" in redirect
