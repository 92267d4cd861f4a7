"""PHI in SMS bodies only with the number's written authorization (consent scope
``phi_by_text``); everyone else gets a one-time link to the secure web chat instead.

Against the real Redis: the consent scope itself (who may grant it, STOP removes it, START does
not bring it back); the appointment action (trackers from dicts, as in test_actions.py), which
offers the link instead of asking for a date of birth; and the gateway with a stand-in Rasa
(tests/gateway_helpers.py), whose egress guard blocks a PHI reply to a number without the
authorization even when the patient is verified, and sends the link instead, never silence."""
from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
import redis.asyncio as aioredis

from actions.appointments import ActionAppointmentSpecifics
from actions.common import services
from bot.records.consent import PHI_BY_TEXT, ConsentRegistry
from bot.records.identity import IdentityRegistry, Session, pending_verification
from bot.records.secure_links import LinkGrant
from bot.services import build_services
from bot.storage.crypto import conversation_id, keyring, phone_index
from tests.conftest import redis_dump
from tests.gateway_helpers import SENDER, authorize_phi_by_text, messages, post, sms
from tests.test_actions import (NO_APPT_NUMBER, PATIENT_NUMBER, UNKNOWN_NUMBER, phi_class, records,  # noqa: F401
                                run_action, sms_conversation, tracker_for)

LINK_RE = re.compile(r"^For your privacy, read this in our secure chat: (\S+)/chat/s/([A-Za-z0-9_-]{32})$")
AUTHORIZATION = "(synthetic) I authorize texts with my health information; I was told the risks."
PHI_WORDS = ("Dermatology", "Mole", "Bring your list", "Dr. Test", "Testy", "1970")


def _token(text: str, base_url: str) -> str:
    match = LINK_RE.match(text)
    assert match, text
    assert match.group(1) == base_url
    return match.group(2)


# -- the consent scope ------------------------------------------------------------------------

@pytest.fixture
async def consent(settings_env):
    svc = build_services()
    yield svc.consent
    await svc.close()


IDX = "c0" * 20  # a synthetic phone index


@pytest.mark.parametrize("source", ["keyword", "staff", "import"])
async def test_phi_by_text_needs_a_written_authorization(consent, source):
    with pytest.raises(ValueError, match="written authorization"):
        await consent.grant_scope(IDX, PHI_BY_TEXT, source, AUTHORIZATION)
    with pytest.raises(ValueError, match="written authorization"):
        await consent.record_opt_in(IDX, source, AUTHORIZATION, scopes=[PHI_BY_TEXT])
    assert not (await consent.state(IDX)).phi_by_text and await consent.history(IDX) == []


@pytest.mark.parametrize("source", ["signed_form", "web_form"])
async def test_granted_from_a_written_form_with_its_words_and_revoked_alone(consent, source):
    await consent.record_opt_in(IDX, "keyword", "START")
    state = await consent.grant_scope(IDX, PHI_BY_TEXT, source, AUTHORIZATION)
    assert state.phi_by_text and state.status == "opted_in"
    assert set(state.scopes) == {"appointment_reminders", "care_messages", PHI_BY_TEXT}
    last = (await consent.history(IDX))[-1]
    assert (last["source"], last["text"]) == (source, AUTHORIZATION)
    state = await consent.revoke_scope(IDX, PHI_BY_TEXT, "staff", "(synthetic) patient asked by phone")
    assert not state.phi_by_text and state.allows("appointment_reminders") and state.allows("care_messages")


async def test_stop_removes_phi_by_text_and_start_does_not_bring_it_back(consent):
    await consent.grant_scope(IDX, PHI_BY_TEXT, "signed_form", AUTHORIZATION)
    assert (await consent.state(IDX)).phi_by_text
    await consent.record_opt_out(IDX, "keyword", "STOP")
    assert not (await consent.state(IDX)).phi_by_text
    with pytest.raises(ValueError, match="opted out"):
        await consent.grant_scope(IDX, PHI_BY_TEXT, "signed_form", AUTHORIZATION)
    await consent.record_opt_in(IDX, "keyword", "START")
    assert not (await consent.state(IDX)).phi_by_text  # a new written authorization is needed


async def test_a_texted_stop_and_start_through_the_gateway_leave_no_phi_by_text(gateway):
    client, stub, cfg = gateway
    await authorize_phi_by_text(cfg)
    await post(client, cfg, sms("STOP", "SM" + "51" * 16))
    await post(client, cfg, sms("START", "SM" + "52" * 16))
    rc = aioredis.Redis.from_url(cfg.redis_url)
    try:
        state = await ConsentRegistry(rc, keyring(cfg), cfg.redis_prefix).state(phone_index(keyring(cfg), SENDER))
    finally:
        await rc.close()
    assert state.status == "opted_in" and not state.phi_by_text


# -- the action: the link instead of the date-of-birth question --------------------------------

async def _verify(svc, number: str) -> None:
    candidates = await svc.appointments.birth_dates_at(phone_index(keyring(), number))
    assert (await svc.identity.check_dob(sms_conversation(number), "sms", datetime(1970, 1, 2).date(),
                                         candidates)).verified


async def test_a_verified_sms_patient_without_phi_by_text_gets_the_link_and_no_phi(records):
    svc = services()
    conv = sms_conversation(PATIENT_NUMBER)
    await _verify(svc, PATIENT_NUMBER)
    d = await run_action(ActionAppointmentSpecifics(), tracker_for(conv, "ask_appointment_specifics"))
    [msg] = d.messages
    assert phi_class(msg) == "public" and not any(w in msg["text"] for w in PHI_WORDS)
    token = _token(msg["text"], svc.cfg.public_base_url)
    opened = await svc.secure_links.open(token)
    assert opened.status == "ok"
    assert opened.grant == LinkGrant(conv, phone_index(keyring(), PATIENT_NUMBER), "ask_appointment_specifics")


@pytest.mark.parametrize("number", [PATIENT_NUMBER, NO_APPT_NUMBER, UNKNOWN_NUMBER])
async def test_unverified_without_phi_by_text_the_link_and_no_date_of_birth_question(records, number):
    """The same answer whether or not the number is a patient's: a link, never the DOB question."""
    svc = services()
    conv = sms_conversation(number)
    [msg] = (await run_action(ActionAppointmentSpecifics(), tracker_for(conv, "ask_appointment_specifics"))).messages
    assert "date of birth" not in msg["text"]
    _token(msg["text"], svc.cfg.public_base_url)
    assert await pending_verification(svc.identity, conv) is None


async def test_after_stop_and_start_the_patient_gets_the_link_again(records):
    svc = services()
    idx = phone_index(keyring(), PATIENT_NUMBER)
    conv = sms_conversation(PATIENT_NUMBER)
    await svc.consent.grant_scope(idx, PHI_BY_TEXT, "signed_form", AUTHORIZATION)
    [ask] = (await run_action(ActionAppointmentSpecifics(), tracker_for(conv, "ask_appointment_specifics"))).messages
    assert "date of birth" in ask["text"]  # authorized: today's verification by text
    await svc.consent.record_opt_out(idx, "keyword", "STOP")
    await svc.consent.record_opt_in(idx, "keyword", "START")
    await _verify(svc, PATIENT_NUMBER)
    [msg] = (await run_action(ActionAppointmentSpecifics(), tracker_for(conv, "ask_appointment_specifics"))).messages
    _token(msg["text"], svc.cfg.public_base_url)
    assert not any(w in msg["text"] for w in PHI_WORDS)


# -- the gateway's egress guard: defence in depth ------------------------------------------------

async def _verified_session(cfg, number: str = SENDER) -> str:
    conv = conversation_id(keyring(cfg), "sms", number)
    rc = aioredis.Redis.from_url(cfg.redis_url)
    now = datetime.now(timezone.utc)
    await IdentityRegistry(rc, keyring(cfg), cfg.redis_prefix)._store_session(conv, Session("p-synthetic", "sms", now, now))
    await rc.close()
    return conv


async def _audit(cfg):
    svc = build_services(cfg)
    try:
        return await svc.audit.events()
    finally:
        await svc.close()


async def test_the_guard_blocks_phi_to_a_verified_number_without_phi_by_text_and_sends_the_link(gateway):
    """Rasa (a stand-in here) answers with PHI as if the action had not checked: the guard
    blocks it, audits an incident, and the patient gets the link instead of silence."""
    client, stub, cfg = gateway
    conv = await _verified_session(cfg)
    stub.replies = [{"text": "synthetic visit reason", "phi_class": "phi"}]
    out = messages(await (await post(client, cfg, sms("what is it for", "SM" + "61" * 16))).text())
    assert len(out) == 1 and "visit reason" not in out[0]
    token = _token(out[0], cfg.public_base_url)
    events = await _audit(cfg)
    blocked = [e for e in events if e.action == "phi_reply_blocked"]
    assert [(e.subject, e.outcome, e.details) for e in blocked] == [
        (conv, "incident", {"blocked": 1, "phi_by_text": False})]
    assert not [e for e in events if e.action == "phi_disclosed"]
    svc = build_services(cfg)
    try:
        opened = await svc.secure_links.open(token)
    finally:
        await svc.close()
    assert opened.grant == LinkGrant(conv, phone_index(keyring(cfg), SENDER), None)  # no particular question


async def test_with_phi_by_text_the_verified_patient_gets_the_phi_as_today(gateway):
    client, stub, cfg = gateway
    await _verified_session(cfg)
    await authorize_phi_by_text(cfg)
    stub.replies = [{"text": "synthetic visit reason", "phi_class": "phi"}]
    assert messages(await (await post(client, cfg, sms("what is it for", "SM" + "62" * 16))).text()) == [
        "synthetic visit reason"]


async def test_the_guard_reuses_the_consent_read_in_the_first_round_trip(gateway, monkeypatch):
    client, stub, cfg = gateway
    await _verified_session(cfg)
    reads = []
    real_state = ConsentRegistry.state

    async def counted(self, phone_idx):
        reads.append(phone_idx)
        return await real_state(self, phone_idx)

    monkeypatch.setattr(ConsentRegistry, "state", counted)
    stub.replies = [{"text": "synthetic visit reason", "phi_class": "phi"}]
    [out] = messages(await (await post(client, cfg, sms("what is it for", "SM" + "63" * 16))).text())
    assert "secure chat" in out and reads == []


async def test_a_link_is_never_replayed_nor_kept_in_the_audit(gateway, prefix):
    """A provider's retry (or a replayed capture) of the message gets no link, and neither the
    stored answer nor the "sent" audit event holds the token."""
    client, stub, cfg = gateway
    stub.replies = [{"text": "synthetic visit reason", "phi_class": "phi"}]
    params = sms("what is it for", "SM" + "64" * 16)
    [first] = messages(await (await post(client, cfg, params)).text())
    token = _token(first, cfg.public_base_url)
    [again] = messages(await (await post(client, cfg, params)).text())
    assert "already answered" in again and token not in again
    sent = [e for e in await _audit(cfg) if e.action == "message_sent"]
    assert sent and all(token not in str(e.details) for e in sent)
    assert any("/chat/s/[link]" in str(e.details) for e in sent)
    assert token.encode() not in redis_dump(prefix)
