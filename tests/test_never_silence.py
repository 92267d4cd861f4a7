"""Never silence: every patient message that is not opted out and not held by staff gets an
answer. When Rasa's answer leaves nothing to send (no messages, an error, every reply blocked
by the egress guard, an empty answer after the holding message), the gateway sends the bot's
fallback and logs why, without the message text.

The gateway runs in-process against the real Redis with a stand-in Rasa (tests/gateway_helpers),
and late answers go to the SMS provider stand-in (devtools/), as in test_sms_outbound.py. The
deliberate silences and the safety check are tested in test_safety_gate.py and
test_safety_layers.py (an escalated conversation, an opted-out number, danger words).
"""
from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp import web

from bot.core import replies
from bot.storage.crypto import conversation_id, keyring
from tests.gateway_helpers import (SENDER, StubRasa, authorize_phi_by_text, gateway_with_provider, messages, post,
                                   sms)
from channels.gateway.app_keys import PIPELINE
from bot.conversation import own_replies

# What the patient writes, with a marker the tests look for in every log line (never found).
MARKER = "zebra-kite"
PATIENT_TEXT = f"is the blue garage open on sundays ({MARKER}, synthetic)"


class GatedRasa(StubRasa):
    """The stand-in Rasa, whose webhook can be held until the test lets it answer: the holding
    deadline passes first by construction, not by timing."""

    def __init__(self, secret: str) -> None:
        super().__init__(secret)
        self.called = asyncio.Event()  # the gateway's request has arrived
        self.may_answer = asyncio.Event()
        self.may_answer.set()  # answer at once unless a test holds it

    def app(self) -> web.Application:
        app = super().app()

        @web.middleware
        async def gate(request: web.Request, handler):
            if request.path.endswith("/webhook"):
                self.called.set()
                await self.may_answer.wait()
            return await handler(request)

        app.middlewares.append(gate)
        return app


@pytest.fixture
async def stack(settings_env, aiohttp_server, aiohttp_client, monkeypatch):
    """(client, gated stand-in Rasa, SMS provider stand-in, settings, app)."""
    stub = GatedRasa(settings_env["RASA_GATEWAY_SECRET"])
    client, provider, cfg, app = await gateway_with_provider(stub, settings_env, aiohttp_server, aiohttp_client,
                                                             monkeypatch)
    return client, stub, provider, cfg, app


def _fallback(app) -> str:
    return replies.rephrase(app[PIPELINE].services.office)


def _conversation(cfg) -> str:
    return conversation_id(keyring(cfg), "sms", SENDER)


def _assert_logged_without_text(caplog, cfg, reason: str) -> None:
    """The fallback was logged with the conversation's pseudonym and ``reason``; no log line of
    the whole exchange carries what the patient wrote (or the number)."""
    [line] = [r.getMessage() for r in caplog.records if "sending the fallback" in r.getMessage()]
    assert _conversation(cfg) in line and f"({reason})" in line
    for record in caplog.records:
        logged = record.getMessage()
        assert MARKER not in logged and "5550100121" not in logged, logged


@pytest.mark.parametrize("stub_replies", [
    [],  # an empty prediction: what Rasa answers when a custom action failed
    [{"text": "", "phi_class": "public"}, {"phi_class": "public"}],  # replies without text
], ids=["no_messages", "no_text"])
async def test_rasa_answering_200_with_nothing_gets_the_fallback(stack, caplog, stub_replies):
    """An action server error is swallowed by Rasa (it logs it, drops the action's events and
    predicts action_listen): the connector then answers 200 with no messages."""
    client, stub, provider, cfg, app = stack
    stub.replies = stub_replies
    with caplog.at_level(logging.INFO):
        resp = await post(client, cfg, sms(PATIENT_TEXT))
    assert resp.status == 200 and messages(await resp.text()) == [_fallback(app)]
    assert len(stub.calls) == 1
    _assert_logged_without_text(caplog, cfg, "empty_answer")


@pytest.mark.parametrize("status", [500, 503])
async def test_rasa_answering_with_an_error_gets_an_answer(stack, caplog, status):
    """The connector answers 500 when processing raised (not an action error: Rasa swallows
    those, see above), 503 on a degraded Rasa: the patient gets the gateway's own "can't
    answer right now" (911 and the office's number), which fits better than "say it another
    way" when the bot cannot answer at all."""
    client, stub, provider, cfg, app = stack
    stub.status = status
    with caplog.at_level(logging.INFO):
        resp = await post(client, cfg, sms(PATIENT_TEXT))
    assert resp.status == 200 and messages(await resp.text()) == [own_replies.unavailable(app[PIPELINE].services.office)]
    assert all(MARKER not in r.getMessage() for r in caplog.records)


async def test_every_reply_blocked_by_the_egress_guard_gets_the_fallback(stack, caplog):
    client, stub, provider, cfg, app = stack
    await authorize_phi_by_text(cfg)  # else the blocked PHI is replaced by a secure link (test_phi_by_text.py)
    stub.replies = [{"text": "synthetic visit reason", "phi_class": "phi"},  # unverified: blocked
                    {"text": "unclassified", "phi_class": "weird"}]  # unknown class: blocked
    with caplog.at_level(logging.INFO):
        resp = await post(client, cfg, sms(PATIENT_TEXT))
    assert messages(await resp.text()) == [_fallback(app)]
    _assert_logged_without_text(caplog, cfg, "all_blocked")
    assert all("visit reason" not in r.getMessage() for r in caplog.records)


async def test_an_empty_late_answer_after_the_holding_message_sends_the_fallback(stack, caplog):
    client, stub, provider, cfg, app = stack
    pipeline = app[PIPELINE]
    pipeline.holding_after = 0.01  # the deadline passes while Rasa is held below
    stub.replies = []
    stub.may_answer.clear()
    with caplog.at_level(logging.INFO):
        resp = await post(client, cfg, sms(PATIENT_TEXT))
        [holding] = messages(await resp.text())
        assert holding == own_replies.holding()
        assert stub.called.is_set() and provider.sent == []  # Rasa has the message, nothing sent yet
        stub.may_answer.set()  # now Rasa answers: 200, no messages
        await pipeline.drain()
    assert [(m["To"], m["Body"]) for m in provider.sent] == [(SENDER, _fallback(app))]
    _assert_logged_without_text(caplog, cfg, "empty_answer")


async def test_a_failed_late_answer_still_tells_the_patient(stack, monkeypatch):
    """The holding message promised an answer: if working it out fails, the patient is told."""
    client, stub, provider, cfg, app = stack
    pipeline = app[PIPELINE]
    pipeline.holding_after = 0.01
    stub.may_answer.clear()
    resp = await post(client, cfg, sms(PATIENT_TEXT))
    assert messages(await resp.text()) == [own_replies.holding()]

    async def broken(*args, **kwargs):  # fails after Rasa has answered, before the egress guard
        raise RuntimeError("synthetic failure")

    monkeypatch.setattr(pipeline.services.identity, "session", broken)
    stub.may_answer.set()
    await pipeline.drain()
    assert [m["Body"] for m in provider.sent] == [own_replies.unavailable(pipeline.services.office)]


async def test_an_unusable_pending_intent_after_verification_gets_the_fallback(stack, caplog):
    """A verified date of birth for a pending intent that is not a plain name: never sent to
    Rasa as a command, and the patient, now verified, is not left without an answer."""
    from bot.records.identity import Attempt
    from bot.conversation.inbound import Inbound

    client, stub, provider, cfg, app = stack
    msg = Inbound("sms", SENDER, "[date]", "SM" + "7" * 32)
    with caplog.at_level(logging.INFO):
        out = await app[PIPELINE].verification.verified_or_not(msg, _conversation(cfg), 'ask_hours{"x": 1}',
                                                     Attempt(verified=True, patient_ref="p-synthetic"))
    assert out == [_fallback(app)] and stub.calls == []
    _assert_logged_without_text(caplog, cfg, "unknown_pending_intent")


# -- the deliberate silences and the safety check are unchanged --------------------------------
# An escalated conversation stays silent without asking Rasa (test_safety_gate.py:
# test_held_conversation_goes_to_the_staff_inbox_and_the_bot_is_silent), an opted-out number
# too (test_opt_out_confirms_once_then_silence). What the fallback must never replace:

async def test_danger_words_with_an_empty_answer_from_rasa_still_get_the_safety_check(stack):
    from bot.safety.redirects import safety_check_reply
    from tests.test_safety_layers import ONLY_THE_NET

    client, stub, provider, cfg, app = stack
    stub.replies = []
    [reply] = messages(await (await post(client, cfg, sms(ONLY_THE_NET[0]))).text())
    office = app[PIPELINE].services.office
    assert reply == safety_check_reply(office.phone, office.emergency, "en") != _fallback(app)
    assert len(stub.calls) == 1  # the NLU had its chance first


async def test_a_duplicate_delivery_while_the_first_is_still_answered_gets_the_holding_reply(stack):
    """A provider's retry of a message still being answered (its first delivery held at the
    stand-in Rasa by a barrier) gets the holding message, never an empty answer; the first
    delivery then gets the bot's answer."""
    client, stub, provider, cfg, app = stack
    pipeline = app[PIPELINE]
    pipeline.holding_after = 60.0  # the first delivery waits for Rasa: only the barrier releases it
    pipeline.duplicate_wait = 0.2
    stub.may_answer.clear()
    params = sms(PATIENT_TEXT, "SM000000000000000000000000000000d1")
    first = asyncio.ensure_future(post(client, cfg, params))
    await stub.called.wait()
    retry = await post(client, cfg, params)
    assert retry.status == 200 and messages(await retry.text()) == [own_replies.holding()]
    stub.may_answer.set()
    assert messages(await (await first).text()) == ["hello from the bot"]
    assert len(stub.calls) == 1  # the retry was not processed again


async def test_the_same_message_id_from_two_numbers_is_two_messages(stack):
    """A message id is unique per sender only as far as the gateway can know: the same id from
    another number is never taken for a duplicate (nor answered with the first one's reply)."""
    client, stub, provider, cfg, app = stack
    sid = "SM000000000000000000000000000000d2"
    first = await post(client, cfg, sms("first synthetic message", sid))
    stub.replies = [{"text": "an answer for the second number", "phi_class": "public"}]
    second = await post(client, cfg, sms("second synthetic message", sid, "+15550100122"))
    assert messages(await first.text()) == ["hello from the bot"]
    assert messages(await second.text()) == ["an answer for the second number"]
    assert [c["text"] for c in stub.calls] == ["first synthetic message", "second synthetic message"]
