"""The hand-off queue against the real Redis: one owner at a time, the sealed log and contact,
announcements without PHI; and the escalations that feed it (a verified patient asking about
test results)."""
from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import pytest
import redis

from actions.common import services
from actions.faq import ActionAnswerFaq
from bot.storage.audit import AuditLog
from bot.config import load_settings
from bot.storage.crypto import DecryptionError, conversation_id, keyring
from bot.records.handoff import HandoffQueue
from bot.records.identity import Session
from tests.conftest import TEST_REDIS_URL
from tests.test_actions import run_action, tracker_for

NUMBER = "+15550100131"  # synthetic


@pytest.fixture
async def queue(settings_env):
    client = redis.asyncio.Redis.from_url(TEST_REDIS_URL)
    yield HandoffQueue(client, keyring(load_settings()), settings_env["REDIS_PREFIX"])
    await client.close()


async def test_one_owner_at_a_time(queue):
    await queue.escalate("sms-a", "sms", "patient_request")
    assert await queue.is_active("sms-a") and not await queue.is_held("sms-a")
    results = await asyncio.gather(*(queue.claim("sms-a", f"staff:{n}") for n in range(8)))
    winners = [owner for ok, owner in results if ok]
    assert len(winners) == 1 and {owner for _, owner in results} == set(winners)
    assert await queue.claim("sms-a", winners[0]) == (True, winners[0])  # claiming again is a no-op
    assert (await queue.entry("sms-a"))["held_by"] == winners[0]
    await queue.hand_back("sms-a")
    assert not await queue.is_active("sms-a")
    assert await queue.claim("sms-a", "staff:late") == (False, None)
    assert await queue.entry("sms-a") is None  # a late claim does not recreate the entry


async def test_log_and_contact_are_sealed_to_their_keys(queue, settings_env):
    await queue.escalate("sms-b", "sms", "patient_request")
    await queue.post_to_inbox("sms-b", queue.keys.encrypt_text("patient words (synthetic)", queue.inbox_key("sms-b")))
    await queue.add_to_log("sms-b", "staff", "staff words (synthetic)", "staff:x")
    await queue.add_to_log("sms-b", "note", "note words (synthetic)", "staff:x")
    with pytest.raises(ValueError):
        await queue.add_to_log("sms-b", "gossip", "x", "staff:x")
    assert await queue.remember_contact("sms-b", NUMBER)
    assert not await queue.remember_contact("sms-b", "+15550100132")  # kept once
    assert not await queue.remember_contact("sms-unqueued", NUMBER)  # never creates an entry
    assert await queue.entry("sms-unqueued") is None
    assert await queue.contact("sms-b") == NUMBER
    log = await queue.log("sms-b")
    assert [(e["kind"], e["by"], e["text"]) for e in log] == [
        ("patient", "", "patient words (synthetic)"), ("staff", "staff:x", "staff words (synthetic)"),
        ("note", "staff:x", "note words (synthetic)")]
    assert [e["text"] for e in await queue.log("sms-b", after=log[0]["id"])] == ["staff words (synthetic)",
                                                                                "note words (synthetic)"]
    assert len(await queue.inbox("sms-b")) == 1  # the patient's messages only
    raw = redis.Redis.from_url(TEST_REDIS_URL)
    stored = b"".join(v for _, f in raw.xrange(queue.inbox_key("sms-b")) for v in f.values())
    stored += b"".join(raw.hgetall(f"{settings_env['REDIS_PREFIX']}handoff:sms-b").values())
    for needle in (b"synthetic", NUMBER.encode(), NUMBER[2:].encode()):
        assert needle not in stored
    token = raw.hget(f"{settings_env['REDIS_PREFIX']}handoff:sms-b", "contact").decode()
    with pytest.raises(DecryptionError):  # bound to its record: useless on another conversation
        queue.keys.decrypt_text(token, f"{settings_env['REDIS_PREFIX']}handoff:sms-c#contact")
    await queue.hand_back("sms-b")
    assert [e["text"] for e in await queue.log("sms-b")][0] == "patient words (synthetic)"  # kept for review


async def test_changes_are_announced_by_pseudonym_only(queue):
    pubsub = queue.redis.pubsub()
    await pubsub.subscribe(queue.events_channel)
    await pubsub.get_message(timeout=1)  # the subscribe confirmation
    await queue.escalate("sms-c", "sms", "patient_request")
    await queue.claim("sms-c", "staff:x")
    await queue.add_to_log("sms-c", "staff", "private words (synthetic)", "staff:x")
    await queue.hand_back("sms-c")
    seen = []
    for _ in range(20):
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
        if message:
            seen.append(json.loads(message["data"]))
        if len(seen) == 4:
            break
    await pubsub.reset()
    assert seen == [{"type": "queue", "conversation": "sms-c"}, {"type": "queue", "conversation": "sms-c"},
                    {"type": "message", "conversation": "sms-c"}, {"type": "queue", "conversation": "sms-c"}]


async def test_a_verified_patient_asking_about_test_results_is_escalated(settings_env):
    conv = conversation_id(keyring(), "sms", NUMBER)
    d = await run_action(ActionAnswerFaq(), tracker_for(conv, "ask_test_results"))
    assert len(d.messages) == 1 and await services().handoff.entry(conv) is None  # unverified: portal answer only
    now = datetime.now(timezone.utc)
    await services().identity._store_session(conv, Session("patient-ref", "sms", now - timedelta(minutes=1), now))  # noqa: SLF001
    d = await run_action(ActionAnswerFaq(), tracker_for(conv, "ask_test_results"))
    assert "portal" in d.messages[0]["text"] and "staff" in d.messages[1]["text"]
    assert (await services().handoff.entry(conv))["reason"] == "test_results"


async def test_escalation_queues_once_and_a_higher_priority_raises_it(queue, settings_env):
    prefix = settings_env["REDIS_PREFIX"]
    assert await queue.escalate("sms-p", "sms", "reschedule", "normal") is True
    assert await queue.escalate("sms-p", "sms", "patient_request", "normal") is False  # already waiting
    assert (await queue.entry("sms-p"))["reason"] == "reschedule"
    assert await queue.escalate("sms-p", "sms", "emergency_follow_up", "emergency") is False
    entry = await queue.entry("sms-p")
    assert (entry["priority"], entry["reason"], entry["status"]) == ("emergency", "emergency_follow_up", "waiting")
    assert await queue.escalate("sms-p", "sms", "patient_request", "urgent") is False  # never lowered
    assert (await queue.entry("sms-p"))["priority"] == "emergency"
    score = await queue.redis.zscore(f"{prefix}handoff:queue", "sms-p")
    assert score < 10**12  # sorts with the emergencies, ahead of every routine request
    events = [e for e in await AuditLog(queue.redis, queue.keys, prefix).events() if e.subject == "sms-p"]
    assert [(e.outcome, e.details["priority"]) for e in events] == [("queued", "normal"), ("raised", "emergency")]


async def test_a_patient_message_and_its_answer_are_logged_in_order(queue):
    await queue.escalate("sms-q", "sms", "emergency_follow_up", "emergency")
    sealed = queue.keys.encrypt_text("patient words (synthetic)", queue.inbox_key("sms-q"))
    await queue.post_exchange("sms-q", sealed, "call 911 (synthetic answer)", "system:gateway")
    assert [(e["kind"], e["text"]) for e in await queue.log("sms-q")] == [
        ("patient", "patient words (synthetic)"), ("bot", "call 911 (synthetic answer)")]


async def test_escalating_with_the_number_keeps_it_sealed_in_the_same_write(queue, settings_env):
    assert await queue.escalate("sms-k", "sms", "emergency_follow_up", "emergency", contact=NUMBER)
    assert await queue.contact("sms-k") == NUMBER
    # Kept once, as remember_contact keeps it; an escalation with nothing to change leaves it.
    assert not await queue.escalate("sms-k", "sms", "patient_request", contact="+15550100132")
    assert await queue.contact("sms-k") == NUMBER
    # A raise keeps a number the entry did not have yet.
    await queue.escalate("sms-l", "web", "patient_request")
    assert await queue.contact("sms-l") is None
    assert not await queue.escalate("sms-l", "sms", "emergency_follow_up", "emergency", contact=NUMBER)
    assert await queue.contact("sms-l") == NUMBER
    raw = redis.Redis.from_url(TEST_REDIS_URL)
    stored = b"".join(raw.hgetall(f"{settings_env['REDIS_PREFIX']}handoff:sms-k").values())
    assert NUMBER[2:].encode() not in stored
