"""Outbound SMS against the provider stand-in (devtools/): the REST shape, retries only where a
retry can help, signed delivery callbacks, the holding message when Rasa is slow, and the
outbound gate (consent, PHI, quiet hours)."""
from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
import redis

from bot.storage.audit import AuditLog
from bot.config import load_settings
from bot.records.consent import ConsentRegistry
from bot.storage.crypto import keyring, conversation_id, phone_index
from bot.records.outbound import OutboundGate, in_quiet_hours
from bot.core.phone import local_timezone
from channels.gateway.app import create_app
from bot.records.outbound import SendFailed
from tests.gateway_helpers import SENDER, StubRasa, gateway_with_provider, messages, post, sms
from channels.gateway.app_keys import PIPELINE, SMS_SENDER

FAST = (0.01, 0.01, 0.01)


@pytest.fixture
async def stack(settings_env, aiohttp_server, aiohttp_client, monkeypatch):
    """(client, stub Rasa, provider stand-in, settings, app): a gateway whose PUBLIC_BASE_URL is
    where it really listens, so the stand-in's signed status callbacks reach it."""
    stub = StubRasa(settings_env["RASA_GATEWAY_SECRET"])
    client, provider, cfg, app = await gateway_with_provider(stub, settings_env, aiohttp_server, aiohttp_client,
                                                             monkeypatch, SMS_HOLDING_AFTER_SECONDS="0.3")
    app[SMS_SENDER].backoff = FAST
    return client, stub, provider, cfg, app


async def _events(cfg):
    """The audit events after the gateway's start-up (which records its configuration)."""
    rc = redis.asyncio.Redis.from_url(cfg.redis_url)
    try:
        return [e for e in await AuditLog(rc, keyring(cfg), cfg.redis_prefix).events()
                if e.action != "configuration_recorded"]
    finally:
        await rc.close()


async def test_send_uses_the_rest_shape_and_records_the_signed_delivery_callback(stack):
    client, stub, provider, cfg, app = stack
    sender = app[SMS_SENDER]
    sent = await sender.send(SENDER, "Your reminder (synthetic)", "sms-test-conv")
    assert sent.attempts == 1 and sent.status == "queued"
    [msg] = provider.sent
    assert (msg["To"], msg["From"], msg["Body"]) == (SENDER, cfg.sms_from_number, "Your reminder (synthetic)")
    assert msg["StatusCallback"] == cfg.public_base_url + "/sms/status"
    await provider.settle()
    assert provider.callbacks == [204]
    record = await sender.status_of(sent.sid)
    assert record["status"] == "delivered" and [h["status"] for h in record["history"]] == ["queued", "delivered"]
    assert [(e.action, e.outcome) for e in await _events(cfg)] == [("sms_sent", "queued"), ("sms_status", "delivered")]


@pytest.mark.parametrize("failures,drops,attempts", [([500, 503], 0, 3), ([], 2, 3), ([502], 1, 3)])
async def test_5xx_and_network_errors_are_retried(stack, failures, drops, attempts):
    client, stub, provider, cfg, app = stack
    provider.fail_statuses, provider.drop = list(failures), drops
    sent = await app[SMS_SENDER].send(SENDER, "hello (synthetic)", "sms-test-conv")
    assert sent.attempts == attempts and len(provider.sent) == 1


async def test_4xx_is_not_retried(stack):
    client, stub, provider, cfg, app = stack
    provider.fail_statuses = [400, 500]
    with pytest.raises(SendFailed) as failure:
        await app[SMS_SENDER].send(SENDER, "hello (synthetic)", "sms-test-conv")
    assert not failure.value.retryable and provider.requests == 1 and provider.fail_statuses == [500]


async def test_gives_up_after_the_last_retry_and_audits(stack):
    client, stub, provider, cfg, app = stack
    provider.fail_statuses = [500] * 10
    with pytest.raises(SendFailed) as failure:
        await app[SMS_SENDER].send(SENDER, "hello (synthetic)", "sms-test-conv")
    assert failure.value.retryable and provider.requests == 1 + len(FAST)
    assert ("sms_send_failed", "gave_up") in [(e.action, e.outcome) for e in await _events(cfg)]


async def test_status_callback_must_be_signed_and_valid(stack):
    client, stub, provider, cfg, app = stack
    params = {"MessageSid": "SM" + "0" * 32, "MessageStatus": "delivered"}
    assert (await client.post("/sms/status", data=params, headers={"X-Twilio-Signature": "x"})).status == 403
    from tests.gateway_helpers import sign

    bad = {**params, "MessageStatus": "exploded"}
    resp = await client.post("/sms/status", data=bad,
                             headers={"X-Twilio-Signature": sign(cfg, bad, url=cfg.public_base_url + "/sms/status")})
    assert resp.status == 400
    assert ("webhook_refused", "bad_signature") in [(e.action, e.outcome) for e in await _events(cfg)]


async def test_slow_rasa_gets_a_holding_message_then_the_answer_by_api(stack):
    client, stub, provider, cfg, app = stack
    stub.delay = 1.0
    started = time.monotonic()
    resp = await post(client, cfg, sms("when do you open", "SM" + "1" * 32))
    took = time.monotonic() - started
    [holding] = messages(await resp.text())
    assert "in a moment" in holding and took < stub.delay  # did not wait for Rasa
    await app[PIPELINE].drain()
    assert [(m["To"], m["Body"]) for m in provider.sent] == [(SENDER, "hello from the bot")]
    # A retry of the same webhook replays the holding message; nothing is sent twice.
    again = await post(client, cfg, sms("when do you open", "SM" + "1" * 32))
    assert messages(await again.text()) == [holding] and len(provider.sent) == 1


async def test_late_answer_is_not_sent_after_an_opt_out(stack):
    client, stub, provider, cfg, app = stack
    stub.delay = 1.0
    await post(client, cfg, sms("when do you open", "SM" + "2" * 32))
    await post(client, cfg, sms("STOP", "SM" + "3" * 32))
    await app[PIPELINE].drain()
    assert provider.sent == []
    assert ("outbound_refused", "opted_out") in [(e.action, e.outcome) for e in await _events(cfg)]


# -- the gate's other rules --------------------------------------------------------------------

async def test_gate_quiet_hours_and_phi(settings_env):
    cfg = load_settings()
    rc = redis.asyncio.Redis.from_url(cfg.redis_url)
    keys = keyring(cfg)
    consent = ConsentRegistry(rc, keys, cfg.redis_prefix)
    gate = OutboundGate(consent, AuditLog(rc, keys, cfg.redis_prefix))
    idx, conv = phone_index(keys, SENDER), conversation_id(keys, "sms", SENDER)
    await consent.record_opt_in(idx, "web_form", "yes to texts (synthetic)")
    chicago = "America/Chicago"
    late = datetime(2030, 1, 2, 4, 30, tzinfo=timezone.utc)  # 22:30 in Chicago
    noon = datetime(2030, 1, 2, 18, 0, tzinfo=timezone.utc)
    assert (await gate.check(idx, conv, "reminder", "system:reminders", tz=chicago, now=late)).reason == "quiet_hours"
    assert (await gate.check(idx, conv, "staff", "staff:demo", tz=chicago, now=late)).allowed
    assert (await gate.check(idx, conv, "reminder", "system:reminders", tz=chicago, now=noon)).allowed
    assert (await gate.check(idx, conv, "staff", "staff:demo", phi_class="phi", verified=False)).reason == "phi_unverified"
    # PHI in an SMS body also needs the patient's written authorization (phi_by_text).
    assert (await gate.check(idx, conv, "staff", "staff:demo", phi_class="phi", verified=True)).reason == \
        "phi_not_authorized"
    await consent.grant_scope(idx, "phi_by_text", "signed_form", "(synthetic) authorization on file")
    assert (await gate.check(idx, conv, "staff", "staff:demo", phi_class="phi", verified=True)).allowed
    assert (await gate.check(idx, conv, "staff", "staff:demo", phi_class="phi", verified=False)).reason == "phi_unverified"
    await rc.close()


def test_quiet_hours_boundaries_and_recipient_time_zone():
    tz = "America/New_York"
    assert in_quiet_hours(datetime(2030, 1, 2, 12, 59, tzinfo=timezone.utc), tz)  # 07:59
    assert not in_quiet_hours(datetime(2030, 1, 2, 13, 0, tzinfo=timezone.utc), tz)  # 08:00
    assert not in_quiet_hours(datetime(2030, 1, 3, 1, 59, tzinfo=timezone.utc), tz)  # 20:59
    assert in_quiet_hours(datetime(2030, 1, 3, 2, 0, tzinfo=timezone.utc), tz)  # 21:00
    assert local_timezone("+12125550100", "America/Chicago") == "America/New_York"
    assert local_timezone("+13105550100", "America/Chicago") == "America/Los_Angeles"


async def test_one_time_code_step_when_configured(stack, aiohttp_client):
    """IDV_REQUIRE_CODE: after a matching date of birth, a 6-digit code goes out by API to the
    number on file; only that code, once, starts the verified session."""
    import dataclasses
    import re as re_

    from bot.records.appointments import AppointmentStore
    from bot.records.fhir import load_bundle_file
    from bot.records.identity import IdentityRegistry, request_verification
    from tests.test_reminders import BUNDLE

    _, stub, provider, cfg, _app = stack
    cfg = dataclasses.replace(cfg, idv_require_code=True)
    app = create_app(cfg)
    client = await aiohttp_client(app)
    app[SMS_SENDER].backoff = FAST
    rc = redis.asyncio.Redis.from_url(cfg.redis_url)
    keys = keyring(cfg)
    await AppointmentStore(rc, keys, cfg.redis_prefix).import_bundle(load_bundle_file(BUNDLE), "test")
    number = "+15550100102"  # demo patient 3, born 1975-11-30 (synthetic)
    conv = conversation_id(keys, "sms", number)
    registry = IdentityRegistry(rc, keys, cfg.redis_prefix)
    await request_verification(registry, conv, "ask_appointment_specifics")

    [sent_note] = messages(await (await post(client, cfg, sms("11/30/1975", "SM" + "a1" * 16, sender=number))).text())
    assert "6-digit code" in sent_note and await registry.session(conv, "sms") is None
    [texted] = provider.sent
    code = re_.search(r"\b(\d{6})\b", texted["Body"]).group(1)
    assert texted["To"] == number
    [wrong] = messages(await (await post(client, cfg, sms("000000" if code != "000000" else "111111",
                                                          "SM" + "b2" * 16, sender=number))).text())
    assert "couldn't verify" in wrong and stub.calls == []
    await post(client, cfg, sms(code, "SM" + "c3" * 16, sender=number))
    assert [c["text"] for c in stub.calls] == ["/ask_appointment_specifics"]  # the gateway's own command
    assert (await registry.session(conv, "sms")).patient_ref == AppointmentStore(rc, keys, cfg.redis_prefix).patient_ref("demo-patient-3")
    raw = b""
    for key in await rc.keys(f"{cfg.redis_prefix}idv:*"):
        raw += await rc.dump(key) or b""
    assert code.encode() not in raw and b"1975" not in raw
    await rc.close()


def test_code_step_setting():
    from tests.conftest import make_test_env

    assert load_settings(make_test_env("x:", IDV_REQUIRE_CODE="true")).idv_require_code
    assert not load_settings(make_test_env("x:")).idv_require_code
