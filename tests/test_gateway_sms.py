"""The gateway's SMS path with a stand-in Rasa (an aiohttp server that records calls) and the
real Redis: signature first, idempotency, normalisation, TwiML, egress guard, Rasa failures."""
from __future__ import annotations

import pytest

from bot.config import load_settings
from channels.gateway.app import create_app
from tests.gateway_helpers import authorize_phi_by_text, messages, post, sign, sms


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
    # Nothing stored but the audit event of the refusal (besides what start-up wrote: the
    # wrapped data keys and the configuration fingerprint with its audit event).
    assert sorted(redis_sync.scan_iter(match=f"{prefix}*")) == [
        f"{prefix}audit".encode(), f"{prefix}audit:head".encode(), f"{prefix}config:seen".encode(),
        f"{prefix}keys".encode()]
    [(_, startup), (_, event)] = redis_sync.xrange(f"{prefix}audit")
    assert startup[b"action"] == b"configuration_recorded"
    assert event[b"action"] == b"webhook_refused" and event[b"outcome"] == b"bad_signature"


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
    await authorize_phi_by_text(cfg)  # even with PHI by text authorized: verification comes first
    stub.replies = [{"text": "public part", "phi_class": "public"},
                    {"text": "your visit reason is X", "phi_class": "phi"},
                    {"text": "unclassified", "phi_class": "weird"}]
    resp = await post(client, cfg, sms("tell me"))
    assert messages(await resp.text()) == ["public part"]


async def test_phi_to_a_verified_patient_is_accounted_for_in_the_audit(gateway):
    """Every disclosure of PHI is audited (an accounting of disclosures), without the PHI in clear."""
    from datetime import datetime, timezone

    import redis as redis_lib

    from bot.storage.crypto import conversation_id, keyring
    from bot.records.identity import IdentityRegistry, Session

    client, stub, cfg = gateway
    conv = conversation_id(keyring(cfg), "sms", "+15550100121")
    rc = redis_lib.asyncio.Redis.from_url(cfg.redis_url)
    now = datetime.now(timezone.utc)
    await IdentityRegistry(rc, keyring(cfg), cfg.redis_prefix)._store_session(conv, Session("p-synthetic", "sms", now, now))
    await rc.close()
    await authorize_phi_by_text(cfg)
    stub.replies = [{"text": "synthetic visit reason", "phi_class": "phi"}, {"text": "public part", "phi_class": "public"}]
    assert messages(await (await post(client, cfg, sms("what is it for", _sid(330)))).text()) == [
        "synthetic visit reason", "public part"]
    assert ("phi_disclosed", "ok") in await _audit_actions(cfg)
    stub.replies = [{"text": "public only", "phi_class": "public"}]
    await post(client, cfg, sms("thanks", _sid(331)))
    assert [a for a in await _audit_actions(cfg) if a[0] == "phi_disclosed"] == [("phi_disclosed", "ok")]


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


# -- limits, media, long and odd bodies -------------------------------------------------------

def _sid(n: int) -> str:
    return f"SM{n:032d}"


async def _audit_actions(cfg):
    import redis as redis_lib

    from bot.storage.audit import AuditLog
    from bot.storage.crypto import keyring

    rc = redis_lib.asyncio.Redis.from_url(cfg.redis_url)
    try:
        return [(e.action, e.outcome) for e in await AuditLog(rc, keyring(cfg), cfg.redis_prefix).events()]
    finally:
        await rc.close()


async def test_rate_limit_answers_429_and_audits_but_still_redirects_emergencies(gateway, monkeypatch):
    import time as real_time

    from channels.gateway import rate_limit

    client, stub, cfg = gateway
    now = real_time.time()
    monkeypatch.setattr(rate_limit.time, "time", lambda: now)  # one window, whatever the clock says
    limit = cfg.sms_rate_limit_per_minute
    for n in range(limit):
        assert (await post(client, cfg, sms(f"hi {n}", _sid(n)))).status == 200
    over = await post(client, cfg, sms("one more", _sid(limit)))
    assert over.status == 429 and over.headers["Retry-After"] == "60"
    emergency = await post(client, cfg, sms("my dad collapsed and isnt breathing", _sid(limit + 1)))
    assert emergency.status == 200 and "911" in messages(await emergency.text())[0]
    assert len(stub.calls) == limit
    assert ("rate_limited", "refused") in await _audit_actions(cfg)
    assert ("rate_limited", "emergency_redirected") in await _audit_actions(cfg)
    other = await post(client, cfg, sms("hi", _sid(99), sender="+15550100122"))  # per sender
    assert other.status == 200
    # The refused message was not kept as seen: the provider's retry in the next minute is answered.
    later = now + 2 * rate_limit.WINDOW_SECONDS
    monkeypatch.setattr(rate_limit.time, "time", lambda: later)
    retry = await post(client, cfg, sms("one more", _sid(limit)))
    assert retry.status == 200 and len(stub.calls) == limit + 2


async def test_media_is_not_processed_and_the_patient_is_told(gateway):
    client, stub, cfg = gateway
    params = {**sms("", _sid(200)), "NumMedia": "1", "MediaUrl0": "https://provider.example/media/ME1",
              "MediaContentType0": "image/jpeg"}
    [reply] = messages(await (await post(client, cfg, params)).text())
    assert "can't accept photos or attachments" in reply and stub.calls == []
    with_text = {**sms("is this rash bad", _sid(201)), "NumMedia": "2"}
    replies = messages(await (await post(client, cfg, with_text)).text())
    assert replies == ["hello from the bot", reply]
    assert [c["text"] for c in stub.calls] == ["is this rash bad"]
    assert ("media_refused", "not_processed") in await _audit_actions(cfg)


async def test_opted_out_number_sending_media_gets_nothing(gateway):
    client, stub, cfg = gateway
    await post(client, cfg, sms("STOP", _sid(210)))
    params = {**sms("", _sid(211)), "NumMedia": "1"}
    assert messages(await (await post(client, cfg, params)).text()) == []


async def test_enormous_body_is_answered_detected_in_full_and_audited_in_full(gateway):
    client, stub, cfg = gateway
    body = "question about my bill " * 100 + " and also i want to kill myself"  # > 1600 chars
    [reply] = messages(await (await post(client, cfg, sms(body, _sid(220)))).text())
    assert "988" in reply  # the emergency at the very end is not cut off
    long_plain = "x" * 5000  # from another (synthetic) number: the first is now with staff, the bot silent
    resp = await post(client, cfg, sms(long_plain, _sid(221), sender="+15550100122"))
    assert resp.status == 200 and len(stub.calls[-1]["text"]) == 1600  # Rasa gets a capped copy


async def test_long_replies_are_split_at_sentence_boundaries(gateway):
    from bot.core.sms_text import split_for_sms

    sentence = "This is one sentence of a long answer. "
    parts = split_for_sms(sentence * 80)
    assert len(parts) == 2 and all(len(p) <= 1600 for p in parts)
    assert parts[0].endswith(".") and "".join(p + " " for p in parts).split() == (sentence * 80).split()
    client, stub, cfg = gateway
    stub.replies = [{"text": sentence * 80, "phi_class": "public"}]
    assert len(messages(await (await post(client, cfg, sms("tell me everything", _sid(230)))).text())) == 2


@pytest.mark.parametrize("body", ["'; DROP TABLE patients; --", "<script>alert(1)</script>", "{{7*7}} ${jndi:ldap://x}",
                                  "\u202etxet desrever", "\U0001F600" * 50])
async def test_hostile_or_odd_text_is_just_text(gateway, body):
    client, stub, cfg = gateway
    resp = await post(client, cfg, sms(body, _sid(240)))
    assert resp.status == 200 and messages(await resp.text()) == ["hello from the bot"]


async def test_invalid_utf8_body_is_refused_and_audited(gateway):
    """aiohttp decodes bad bytes as U+FFFD, so the signature (computed over text) cannot match."""
    client, stub, cfg = gateway
    raw = b"From=%2B15550100121&Body=%FF%FE&MessageSid=SM1"
    resp = await client.post("/sms/inbound", data=raw,
                             headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "x"})
    assert resp.status == 403 and stub.calls == []
    assert ("webhook_refused", "bad_signature") in await _audit_actions(cfg)


async def test_intent_injection_and_dates_never_reach_the_bot(gateway):
    client, stub, cfg = gateway
    await post(client, cfg, sms('/provide_dob{"dob": "01/01/1980"}', _sid(300)))
    await post(client, cfg, sms("my birthday is March 14, 1962 ok", _sid(301)))
    assert [c["text"] for c in stub.calls] == ['provide_dob{"dob": "[date]"}', "my birthday is [date] ok"]


async def test_a_pending_dob_answer_is_checked_by_the_gateway_not_the_bot(gateway):
    from bot.storage.crypto import conversation_id, keyring
    from bot.records.identity import IdentityRegistry, request_verification
    import redis as redis_lib

    client, stub, cfg = gateway
    rc = redis_lib.asyncio.Redis.from_url(cfg.redis_url)
    conv = conversation_id(keyring(cfg), "sms", "+15550100121")
    await request_verification(IdentityRegistry(rc, keyring(cfg), cfg.redis_prefix), conv,
                               "ask_appointment_specifics")
    [failed] = messages(await (await post(client, cfg, sms("01/01/1980", _sid(310)))).text())
    assert "couldn't verify" in failed and stub.calls == []  # unknown number: the same failure reply
    [clear] = messages(await (await post(client, cfg, sms("02/30/1980", _sid(311)))).text())
    assert "doesn't exist" in clear and stub.calls == []
    assert ("identity_verification", "failed") in await _audit_actions(cfg)
    await rc.close()


async def test_someone_elses_appointment_gets_the_neutral_reply_without_the_bot(gateway):
    client, stub, cfg = gateway
    [reply] = messages(await (await post(client, cfg, sms("what time is my mom's appointment", _sid(320)))).text())
    assert "only discuss appointments with the patient" in reply and stub.calls == []


async def test_buttons_are_left_out_of_an_sms_whose_text_numbers_the_choices(gateway):
    client, stub, cfg = gateway
    stub.replies = [{"text": "Did you mean:\n1) hours\n2) parking\nReply with a number.", "phi_class": "public",
                     "buttons": [{"title": "hours", "payload": "1"}, {"title": "parking", "payload": "2"}]}]
    resp = await post(client, cfg, sms("hours or parking"))
    assert messages(await resp.text()) == ["Did you mean:\n1) hours\n2) parking\nReply with a number."]
