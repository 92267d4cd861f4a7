"""Shared phones on SMS, through the signed webhook against the real Redis and a stand-in Rasa:
once one patient at a number is verified, another patient's date of birth switches the session
to them (counted like any verification attempt, with the same lock-outs, through the code step
with IDV_REQUIRE_CODE); the verified patient's own date only confirms. Before this, the date
went to the bot masked and got "Sorry, I didn't understand that".

Synthetic demo bundle: demo-patient-1 (1980-01-01) and demo-patient-2 (2012-06-15) share
+15550100101. Web chat's switch is in tests/test_web_identity.py.
"""
from __future__ import annotations

import re
import secrets

import pytest

from bot.core import replies
from bot.records.fhir import load_bundle_file
from bot.records.identity import request_verification
from bot.storage.crypto import conversation_id
from channels.gateway.app_keys import PIPELINE
from tests.gateway_helpers import StubRasa, gateway_with_provider, messages, post, sms
from tests.stack_helpers import BUNDLE

SHARED = "+15550100101"  # synthetic
ALEX_DOB, SAM_DOB = "01/01/1980", "06/15/2012"


async def _gateway(settings_env, aiohttp_server, aiohttp_client, monkeypatch, **env):
    stub = StubRasa(settings_env["RASA_GATEWAY_SECRET"])
    client, provider, cfg, app = await gateway_with_provider(stub, settings_env, aiohttp_server, aiohttp_client,
                                                             monkeypatch, **env)
    services = app[PIPELINE].services
    await services.appointments.import_bundle(load_bundle_file(BUNDLE), "test")
    conv = conversation_id(services.keys, "sms", SHARED)

    async def text(body: str):
        resp = await post(client, cfg, sms(body, "SM" + secrets.token_hex(16), sender=SHARED))
        assert resp.status == 200
        return messages(await resp.text())

    return text, stub, provider, services, conv


@pytest.fixture
async def shared(settings_env, aiohttp_server, aiohttp_client, monkeypatch):
    return await _gateway(settings_env, aiohttp_server, aiohttp_client, monkeypatch)


async def _outcomes(services):
    return [e.outcome for e in await services.audit.events() if e.action == "identity_verification"]


async def test_another_patients_date_switches_the_session_and_says_so_without_names(shared):
    text, stub, _, services, conv = shared
    office, ref = services.office, services.appointments.patient_ref
    await request_verification(services.identity, conv, "ask_appointment_specifics")
    assert await text(ALEX_DOB) == ["hello from the bot"]  # verified: the question asked again
    assert (await services.identity.session(conv, "sms")).patient_ref == ref("demo-patient-1")
    calls = len(stub.calls)

    assert await text(SAM_DOB) == [replies.switched(office)]
    assert (await services.identity.session(conv, "sms")).patient_ref == ref("demo-patient-2")
    assert await text("my dob is " + SAM_DOB) == [replies.same_patient(office)]
    assert await text(ALEX_DOB) == [replies.switched(office)]  # and back
    assert (await services.identity.session(conv, "sms")).patient_ref == ref("demo-patient-1")
    assert len(stub.calls) == calls  # no date reached the bot, not even masked
    assert (await _outcomes(services))[-3:] == ["switched", "confirmed", "switched"]
    for event in await services.audit.events():
        if event.action == "identity_verification":
            assert event.details == {}  # no PHI in the audit of a switch


async def test_a_date_matching_no_one_at_the_number_is_a_failure_and_locks_out(shared):
    text, stub, _, services, conv = shared
    office, ref = services.office, services.appointments.patient_ref
    await request_verification(services.identity, conv, "ask_appointment_specifics")
    await text(ALEX_DOB)
    assert await text("02/02/2002") == [replies.switch_failed(office)]
    assert (await services.identity.session(conv, "sms")).patient_ref == ref("demo-patient-1")  # still theirs
    assert await text("03/03/2003") == [replies.switch_failed(office)]
    assert await text("04/04/2004") == [replies.verification_failed(office)]  # the third: locked out
    assert await services.identity.lock_state(conv) == "short"
    assert await services.identity.session(conv, "sms") is None  # a lock-out ends the session
    assert (await services.handoff.entry(conv))["reason"] == "verification_lockout"
    assert (await _outcomes(services))[-3:] == ["failed", "failed", "locked_short"]


async def test_a_date_inside_a_sentence_still_goes_to_the_bot(shared):
    text, stub, _, services, conv = shared
    await request_verification(services.identity, conv, "ask_appointment_specifics")
    await text(ALEX_DOB)
    await text("I was seen on 01/05/2024 for my knee")
    assert stub.calls[-1]["text"] == "I was seen on [date] for my knee"
    assert await services.identity.lock_state(conv) is None


async def test_an_unverified_shared_phone_is_not_switched(shared):
    text, stub, _, services, conv = shared
    await text(SAM_DOB)
    assert stub.calls[-1]["text"] == "[date]"  # as before: the bot's answer to a stray date
    assert await services.identity.session(conv, "sms") is None


async def test_with_the_code_step_the_switch_waits_for_the_code(settings_env, aiohttp_server, aiohttp_client,
                                                                monkeypatch):
    text, stub, provider, services, conv = await _gateway(settings_env, aiohttp_server, aiohttp_client,
                                                          monkeypatch, IDV_REQUIRE_CODE="true")
    office, ref = services.office, services.appointments.patient_ref
    await request_verification(services.identity, conv, "ask_appointment_specifics")
    assert await text(ALEX_DOB) == [replies.code_sent(office)]
    assert await text(re.search(r"\b(\d{6})\b", provider.sent[-1]["Body"]).group(1)) == ["hello from the bot"]

    assert await text(SAM_DOB) == [replies.code_sent(office)]
    assert provider.sent[-1]["To"] == SHARED
    assert (await services.identity.session(conv, "sms")).patient_ref == ref("demo-patient-1")  # until the code
    assert await text(re.search(r"\b(\d{6})\b", provider.sent[-1]["Body"]).group(1)) == [replies.switched(office)]
    assert (await services.identity.session(conv, "sms")).patient_ref == ref("demo-patient-2")
    assert (await _outcomes(services))[-2:] == ["dob_matched", "switched"]
