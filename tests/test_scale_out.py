"""Scale-out: two gateways, two Rasa servers and two action servers sharing one Redis, started
as ``make up SCALE=2`` starts them (bot/ops/stack.py), with many synthetic conversations texting
through signed webhooks, each message to the other gateway than the one before.

What must hold across instances: no message lost or answered twice, each conversation's
messages handled in the order sent, and one at a time even when they arrive at both gateways at
once (Rasa's lock store is shared in Redis, with atomic ticket changes: bot/storage/lock_store.py), consent and
identity verification are one state, and a provider retry of the same MessageSid at both
gateways has one side effect.

Every answer here is deterministic (FAQ answers from office.yml, consent keywords, the
verified demo patient's visit), so an answer is either exactly right or a failure.
"""
from __future__ import annotations

import asyncio
import json
import random
import secrets
import time
import urllib.request
from collections import Counter
from typing import Dict, Iterator, List, Optional, Tuple

import aiohttp
import pytest
import redis

from bot.storage.audit import AuditLog
from bot.ops.chat import parse_twiml
from bot.storage.crypto import conversation_id, keyring
from bot.core.office import load_office
from bot.ops.stack import Stack
from tests.conftest import TEST_REDIS_URL
from tests.stack_helpers import DEMO_NUMBER, grant_phi_by_text, signed_sms, text, whole_stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Questions the trained model answers with an office.yml FAQ answer, and that intent.
FAQ: List[Tuple[str, str]] = [
    ("what are your hours", "ask_hours"),
    ("when are you open", "ask_hours"),
    ("where are you located", "ask_location"),
    ("where do I park", "ask_parking"),
    ("what insurance do you accept", "ask_insurance"),
    ("how do i pay my bill", "ask_billing"),
    ("can i get a refill", "ask_refill"),
    ("how do i log into the patient portal", "ask_portal"),
]
CONVERSATIONS, TURNS = 36, 6  # texting one after another, as people do: 216 messages
BURSTS, BURST_SIZE = 12, 4  # every message of a conversation at once: 48 messages


def synthetic_number(n: int) -> str:
    return f"+1555010{n:04d}"  # 555-010-01xx: reserved for fiction


@pytest.fixture(scope="module")
def scaled(trained_model, tmp_path_factory) -> Iterator[Stack]:
    # Every answer on the webhook itself (no holding message, no late answer by the provider
    # API), so each message has exactly one place its answer can be; late answers are tested
    # in tests/test_sms_outbound.py.
    with whole_stack(tmp_path_factory.mktemp("run"), scale=2, timeout=420,
                     SMS_HOLDING_AFTER_SECONDS="60", RASA_REPLY_TIMEOUT="60") as s:
        yield s


@pytest.fixture(scope="module")
def office(scaled):
    return load_office(scaled.cfg.office_config)


# -- helpers --------------------------------------------------------------------------------
async def post(session: aiohttp.ClientSession, stack: Stack, instance: int, sender: str, body: str,
               message_sid: Optional[str] = None) -> List[str]:
    data, headers = signed_sms(stack.cfg, sender, body, message_sid)
    async with session.post(f"{stack.gateway_url(instance)}/sms/inbound", data=data, headers=headers) as resp:
        assert resp.status == 200, (instance, resp.status)
        return parse_twiml(await resp.text())


def session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120))


def conv_id(stack: Stack, number: str) -> str:
    return conversation_id(keyring(stack.cfg), "sms", number)


def tracker_events(stack: Stack, number: str) -> List[Dict]:
    key = f"{stack.cfg.redis_prefix}tracker:{conv_id(stack, number)}"
    sealed = redis.Redis.from_url(TEST_REDIS_URL).get(key)
    assert sealed is not None, "no tracker"
    return json.loads(keyring(stack.cfg).decrypt_text(sealed, key))["events"]


def turns(stack: Stack, number: str) -> List[Tuple[str, List[str]]]:
    """The conversation as its (encrypted) Rasa tracker holds it: each user text with the bot's answers."""
    out: List[Tuple[str, List[str]]] = []
    for event in tracker_events(stack, number):
        if event["event"] == "user":
            out.append((event["text"], []))
        elif event["event"] == "bot":
            assert out, "a bot answer before any user message"
            out[-1][1].append(event["text"])
    return out


def handled_one_at_a_time(stack: Stack, number: str) -> bool:
    """True if the tracker's events are in time order: its turns were handled one after the
    other. Rasa merges trackers on save, so two turns handled side by side lose no event,
    but show as a later turn's events timed before an earlier turn's end."""
    times = [event["timestamp"] for event in tracker_events(stack, number)]
    return times == sorted(times)


def messages_received(stack: Stack) -> Counter:
    """How many "message_received" audit events each conversation has: one per message processed."""
    async def read():
        client = redis.asyncio.Redis.from_url(TEST_REDIS_URL)
        try:
            return await AuditLog(client, keyring(stack.cfg), stack.cfg.redis_prefix).events()
        finally:
            await client.close()

    return Counter(e.subject for e in asyncio.run(read()) if e.action == "message_received")


def sent_by_api(stack: Stack) -> List[Dict]:
    with urllib.request.urlopen(f"{stack.cfg.sms_api_base}/_standin/messages", timeout=10) as resp:
        return json.loads(resp.read())["messages"]


# -- tests ----------------------------------------------------------------------------------
def test_every_instance_is_up_with_its_own_ports(scaled):
    assert scaled.processes == ["actions", "rasa", "gateway", "actions-2", "rasa-2", "gateway-2", "sms-standin"]
    assert all(scaled.running(name) for name in scaled.processes)
    one, two = scaled.instances
    assert len({one.gateway_port, one.rasa_port, one.action_port, two.gateway_port, two.rasa_port,
                two.action_port}) == 6
    assert scaled.healthz(1) == 200 and scaled.healthz(2) == 200
    assert scaled.child_env(2)["RASA_PORT"] == str(two.rasa_port)  # gateway 2 talks to Rasa 2
    assert scaled.child_env(2)["ACTION_PORT"] == str(two.action_port)  # Rasa 2 to action server 2 (endpoints.yml)


def test_consent_is_one_state_across_gateways(scaled, office):
    number = synthetic_number(180)
    hours = office.faq_answer("ask_hours")
    [stopped] = text(scaled, "STOP", number, instance=1)
    assert "unsubscribed" in stopped
    assert text(scaled, "what are your hours", number, instance=2) == []  # silenced at the other gateway too
    [started] = text(scaled, "START", number, instance=2)
    assert "subscribed" in started and "unsubscribed" not in started
    assert text(scaled, "what are your hours", number, instance=1) == [hours]


def test_verification_is_one_state_across_gateways(scaled):
    grant_phi_by_text(scaled, DEMO_NUMBER)  # PHI by text authorized (else a secure link: test_phi_by_text_e2e.py)
    [ask] = text(scaled, "who am i seeing", DEMO_NUMBER, instance=2)
    assert "date of birth" in ask and "Jordan" not in ask
    [details] = text(scaled, "01/01/1980", DEMO_NUMBER, instance=1)  # answers gateway 2's question
    assert "Annual physical" in details and "Dr. Jordan Example" in details
    [again] = text(scaled, "what should I bring", DEMO_NUMBER, instance=2)  # verified here as well
    assert "Annual physical" in again and "insurance card" in again


def test_the_same_message_at_both_gateways_at_once_has_one_side_effect(scaled, office):
    deliveries = [(synthetic_number(181 + i), "SM" + secrets.token_hex(16), body, intent)
                  for i, (body, intent) in enumerate(FAQ[:6])]

    async def deliver_twice():
        async with session() as s:
            out = []
            for number, sid, body, _ in deliveries:  # the provider's retry racing its first try
                out.append(await asyncio.gather(post(s, scaled, 1, number, body, sid),
                                                post(s, scaled, 2, number, body, sid)))
            return out

    answers = asyncio.run(deliver_twice())
    received = messages_received(scaled)
    for (number, _, body, intent), (first, second) in zip(deliveries, answers):
        assert first == second == [office.faq_answer(intent)]
        assert received[conv_id(scaled, number)] == 1  # audited once: processed once
        assert turns(scaled, number) == [(body, [office.faq_answer(intent)])]  # one Rasa turn


def test_many_conversations_alternating_gateways(scaled, office):
    """Each conversation texts its next question once it has the answer to the last, to the
    other gateway each time; all conversations at once."""
    plans = {synthetic_number(120 + c): random.Random(c).sample(FAQ, TURNS) for c in range(CONVERSATIONS)}

    async def converse(s, c: int, number: str, plan):
        return [await post(s, scaled, 1 + (c + k) % 2, number, body) for k, (body, _) in enumerate(plan)]

    async def everyone():
        async with session() as s:
            return await asyncio.gather(*(converse(s, c, n, p) for c, (n, p) in enumerate(plans.items())))

    started = time.monotonic()
    answers = asyncio.run(everyone())
    took = time.monotonic() - started
    print(f"\n{CONVERSATIONS * TURNS} messages in {CONVERSATIONS} conversations over 2 gateways: {took:.1f} s")
    received = messages_received(scaled)
    for (number, plan), got in zip(plans.items(), answers):
        expected = [[office.faq_answer(intent)] for _, intent in plan]
        assert got == expected  # each message answered once, rightly
        # The tracker holds exactly these texts, in the order sent, each with its one answer.
        assert turns(scaled, number) == [(body, answer) for (body, _), answer in zip(plan, expected)]
        assert handled_one_at_a_time(scaled, number)
        assert received[conv_id(scaled, number)] == TURNS
    assert sent_by_api(scaled) == []  # no answer went another way (late, or twice)


@pytest.fixture(scope="module")
def bursts(scaled):
    """Every message of a conversation sent at once, spread over both gateways, so both Rasa
    servers get the same conversation at the same time; 12 conversations at once."""
    plans = {synthetic_number(160 + c): random.Random(100 + c).sample(FAQ, BURST_SIZE) for c in range(BURSTS)}

    async def burst():
        async with session() as s:
            return await asyncio.gather(*(
                asyncio.gather(*(post(s, scaled, 1 + k % 2, number, body) for k, (body, _) in enumerate(plan)))
                for number, plan in plans.items()))

    return plans, asyncio.run(burst())


def test_one_conversation_at_both_gateways_at_once_loses_nothing(scaled, office, bursts):
    plans, answers = bursts
    received = messages_received(scaled)
    for (number, plan), got in zip(plans.items(), answers):
        answer_to = {body: office.faq_answer(intent) for body, intent in plan}
        assert got == [[answer_to[body]] for body, _ in plan]  # each answered once, rightly
        held = turns(scaled, number)
        assert sorted(body for body, _ in held) == sorted(answer_to)  # each in the tracker once
        assert held == [(body, [answer_to[body]]) for body, _ in held]  # each with its own answer
        assert received[conv_id(scaled, number)] == BURST_SIZE
    assert sent_by_api(scaled) == []


def test_one_conversation_at_both_gateways_at_once_is_handled_one_message_at_a_time(scaled, bursts):
    """With the lock store shared in Redis, Rasa servers take turns on a conversation. (With
    Rasa's default per-process lock store instead, it failed here, as it should.)"""
    plans, _ = bursts
    overlapping = [number for number in plans if not handled_one_at_a_time(scaled, number)]
    assert overlapping == []
