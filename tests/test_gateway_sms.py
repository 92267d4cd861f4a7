"""The gateway's SMS path with a stand-in Rasa (an aiohttp server that records calls) and the
real Redis: signature first, idempotency, normalisation, TwiML, egress guard, Rasa failures."""
from __future__ import annotations

import pytest

from bot.config import load_settings
from channels.app import create_app
from tests.gateway_helpers import messages, post, sign, sms


async def test_signed_message_reaches_rasa_under_a_pseudonym_and_gets_twiml(gateway):
    client, stub, cfg = gateway
    resp = await post(client, cfg, sms("hi"))
    assert resp.status == 200 and resp.content_type == "application/xml"
    assert messages(await resp.text()) == ["hello from the bot"]
    [call] = stub.calls
    assert call["text"] == "hi" and call["channel"] == "sms"
    assert call["sender"].startswith("sms-") and "5550100121" not in call["sender"]


@pytest.mark.parametrize("signature", ["", "AAAA", "0/KCTR6DLpKmkAf8muzZqo1nDgQ="])
async def test_missing_or_wrong_signature_is_refused_and_nothing_processed(gateway, redis_sync, prefix, signature):
    client, stub, cfg = gateway
    resp = await post(client, cfg, sms("hi"), signature=signature)
    assert resp.status == 403
    assert stub.calls == []
    assert list(redis_sync.scan_iter(match=f"{prefix}*")) == []  # nothing stored


async def test_signature_over_the_host_header_url_is_refused(gateway):
    client, stub, cfg = gateway
    params = sms("hi")
    forged = sign(cfg, params, url="http://attacker.example/sms/inbound")
    resp = await post(client, cfg, params, signature=forged, headers={"Host": "attacker.example"})
    assert resp.status == 403 and stub.calls == []


async def test_tampered_body_is_refused(gateway):
    client, stub, cfg = gateway
    params = sms("hi")
    signature = sign(cfg, params)
    params["Body"] = "something else"
    assert (await post(client, cfg, params, signature=signature)).status == 403
    assert stub.calls == []


async def test_retried_webhook_gets_the_same_reply_and_one_side_effect(gateway):
    client, stub, cfg = gateway
    first = await post(client, cfg, sms("hi", sid="SM" + "a" * 32))
    stub.replies = [{"text": "a different answer", "phi_class": "public"}]
    second = await post(client, cfg, sms("hi", sid="SM" + "a" * 32))
    assert messages(await first.text()) == messages(await second.text()) == ["hello from the bot"]
    assert len(stub.calls) == 1


async def test_unparseable_sender_gets_400(gateway):
    client, stub, cfg = gateway
    resp = await post(client, cfg, sms("hi", sender="not-a-number"))
    assert resp.status == 400 and stub.calls == []


async def test_phi_reply_to_unverified_conversation_is_blocked(gateway):
    client, stub, cfg = gateway
    stub.replies = [{"text": "public part", "phi_class": "public"},
                    {"text": "your visit reason is X", "phi_class": "phi"},
                    {"text": "unclassified", "phi_class": "weird"}]
    resp = await post(client, cfg, sms("tell me"))
    assert messages(await resp.text()) == ["public part"]


async def test_reply_bodies_are_xml_escaped(gateway):
    client, stub, cfg = gateway
    stub.replies = [{"text": "a < b & c > d </Message><Message>x", "phi_class": "public"}]
    resp = await post(client, cfg, sms("hi"))
    assert messages(await resp.text()) == ["a < b & c > d </Message><Message>x"]


@pytest.mark.parametrize("status", [500, 503])
async def test_rasa_failure_gives_a_holding_reply_not_a_traceback(gateway, status):
    client, stub, cfg = gateway
    stub.status = status
    resp = await post(client, cfg, sms("hi"))
    assert resp.status == 200
    [text] = messages(await resp.text())
    assert "911" in text and "call" in text.lower()


async def test_rasa_unreachable_gives_a_holding_reply(settings_env, aiohttp_client, monkeypatch):
    monkeypatch.setenv("RASA_PORT", "1")  # nothing listens there
    cfg = load_settings()
    client = await aiohttp_client(create_app(cfg))
    resp = await post(client, cfg, sms("hi"))
    assert resp.status == 200 and "911" in messages(await resp.text())[0]


@pytest.mark.parametrize("body", ["", "   ", "\x00\x07\x1b"])
async def test_empty_or_control_only_body_is_answered_without_rasa(gateway, body):
    client, stub, cfg = gateway
    resp = await post(client, cfg, sms(body))
    assert resp.status == 200 and "empty" in messages(await resp.text())[0]
    assert stub.calls == []


async def test_control_characters_are_stripped_before_rasa(gateway):
    client, stub, cfg = gateway
    await post(client, cfg, sms("hel\x00lo\u200b there"))
    assert stub.calls[0]["text"] == "hello there"


async def test_healthz_reports_each_component(gateway):
    client, stub, cfg = gateway
    resp = await client.get("/healthz")
    body = await resp.json()
    assert resp.status == 200 and body["redis"] and body["rasa"] and body["actions"]
