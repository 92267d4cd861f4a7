"""Appointment actions in web chat, against the real Redis: a browser is about no number, so
every appointment answer (the notices too) waits for a verified session and asks for
verification first; verified, the answer is that patient's. On SMS, a verified patient on a
shared phone gets their own appointment, as the switch's reply promises.

Synthetic demo bundle: demo-patient-1 (next: Jan 15 2030) and demo-patient-2 (Jan 22 2030)
share +15550100101.
"""
from __future__ import annotations

import secrets
from datetime import date

import pytest
import yaml
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.appointments import (
    ActionAppointmentDetails, ActionAppointmentSpecifics, ActionAskCancelAppointment, ActionCancelAppointment,
    ActionConfirmAppointment, ActionRequestReschedule, ActionRunningLate,
)
from actions.base import AppointmentAction
from actions.common import services
from bot.config import ROOT
from bot.core import replies
from bot.records.fhir import load_bundle_file
from bot.records.identity import pending_verification
from bot.storage.crypto import conversation_id, keyring, phone_index
from tests.stack_helpers import BUNDLE

SHARED = "+15550100101"  # synthetic
APPOINTMENT_ACTIONS = [ActionAppointmentDetails, ActionAppointmentSpecifics, ActionConfirmAppointment,
                       ActionAskCancelAppointment, ActionCancelAppointment, ActionRequestReschedule,
                       ActionRunningLate]


def tracker_for(sender: str, intent: str) -> Tracker:
    return Tracker.from_dict({
        "sender_id": sender, "slots": {}, "events": [], "paused": False, "followup_action": None,
        "active_loop": {}, "latest_action_name": "action_listen",
        "latest_message": {"text": "(synthetic)", "intent": {"name": intent, "confidence": 0.9}},
    })


async def run(action, tracker: Tracker):
    dispatcher = CollectingDispatcher()
    assert await action.run(dispatcher, tracker, {}) == []
    return [(m["text"], m["custom"]["phi_class"]) for m in dispatcher.messages]


@pytest.fixture
async def demo(settings_env):
    svc = services()
    await svc.appointments.import_bundle(load_bundle_file(BUNDLE), "test")
    return svc


def web_conversation() -> str:
    return conversation_id(keyring(), "web", secrets.token_urlsafe(24))


async def histories(svc):
    out = {}
    for fhir_id in ("demo-appt-1", "demo-appt-2"):
        appt = await svc.appointments.get_appointment(svc.appointments.appointment_ref(fhir_id))
        out[fhir_id] = (appt.status, len(appt.data["history"]))
    return out


@pytest.mark.parametrize("action_class", APPOINTMENT_ACTIONS, ids=lambda c: c.__name__)
async def test_unverified_web_chat_is_asked_to_verify_and_told_nothing(demo, action_class):
    svc = demo
    before = await histories(svc)
    conv = web_conversation()
    action = action_class()
    said = await run(action, tracker_for(conv, action.verify_intent))
    assert said == [(replies.ask_number(svc.office), "public")]  # not bound: the number on file first
    assert await pending_verification(svc.identity, conv) == action.verify_intent
    await svc.web_bindings.bind(conv, phone_index(keyring(), SHARED), "link")
    assert await run(action, tracker_for(conv, action.verify_intent)) == [(replies.ask_dob(svc.office), "public")]
    assert await histories(svc) == before  # nothing confirmed, cancelled or noted
    assert await svc.handoff.entry(conv) is None  # no reschedule queued


async def test_a_yes_is_replayed_as_the_question_it_answered(demo):
    conv = web_conversation()
    await run(ActionCancelAppointment(), tracker_for(conv, "affirm"))
    assert await pending_verification(demo.identity, conv) == "cancel_appointment"  # asked again, not done
    await run(ActionConfirmAppointment(), tracker_for(conv, "affirm"))
    assert await pending_verification(demo.identity, conv) == "confirm_appointment"


async def test_verified_web_chat_gets_that_patients_appointment(demo):
    svc = demo
    conv = web_conversation()
    sam = svc.appointments.patient_ref("demo-patient-2")
    assert (await svc.identity.check_dob(conv, "web", date(2012, 6, 15), [(sam, date(2012, 6, 15))])).verified
    [(notice, phi_class)] = await run(ActionAppointmentDetails(), tracker_for(conv, "ask_appointment_details"))
    assert "Jan 22" in notice and phi_class == "notice"
    [(specifics, phi_class)] = await run(ActionAppointmentSpecifics(), tracker_for(conv, "ask_appointment_specifics"))
    assert "Vaccination" in specifics and phi_class == "phi"
    await run(ActionConfirmAppointment(), tracker_for(conv, "confirm_appointment"))
    appt = await svc.appointments.get_appointment(svc.appointments.appointment_ref("demo-appt-2"))
    assert appt.data["history"][-1]["actor"] == "patient:web" and appt.status == "booked"


async def test_sms_notices_follow_the_verified_patient_on_a_shared_phone(demo):
    svc = demo
    conv = conversation_id(keyring(), "sms", SHARED)
    [(soonest, _)] = await run(ActionAppointmentDetails(), tracker_for(conv, "ask_appointment_details"))
    assert "Jan 15" in soonest  # unverified: the number's soonest, as before
    candidates = await svc.appointments.birth_dates_at(phone_index(keyring(), SHARED))
    assert (await svc.identity.check_dob(conv, "sms", date(2012, 6, 15), candidates)).verified
    [(own, _)] = await run(ActionAppointmentDetails(), tracker_for(conv, "ask_appointment_details"))
    assert "Jan 22" in own


def test_every_appointment_action_replays_an_intent_of_the_domain():
    domain = yaml.safe_load((ROOT / "domain.yml").read_text())
    assert {cls.__name__ for cls in AppointmentAction.__subclasses__()} == {c.__name__ for c in APPOINTMENT_ACTIONS}
    for cls in APPOINTMENT_ACTIONS:
        assert cls.verify_intent in domain["intents"], cls.__name__
