"""Actions against the real Redis: trackers from small dict fixtures, assertions on what the
dispatcher says (text and PHI class) and on what changed in the appointment records."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Optional

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.appointments import (
    ActionAppointmentDetails, ActionAskCancelAppointment, ActionCancelAppointment,
    ActionConfirmAppointment, ActionRequestReschedule, ActionRunningLate,
)
from actions.common import services
from actions.fallback import ActionHandleFallback, consecutive_misses
from actions.faq import ActionAnswerFaq
from actions.handoff import ActionClinicalQuestion, ActionRequestHuman
from bot.storage.crypto import conversation_id, keyring
from bot.records.fhir import Appointment, ParsedBundle, Patient, Practitioner
from bot.core.office import load_office

PATIENT_NUMBER = "+15550100111"  # synthetic
UNKNOWN_NUMBER = "+15550100999"  # synthetic, no record
NO_APPT_NUMBER = "+15550100112"  # synthetic, a patient with nothing upcoming


def tracker_for(sender: str, intent: str = "greet", events: Optional[List[Dict[str, Any]]] = None) -> Tracker:
    return Tracker.from_dict({
        "sender_id": sender,
        "slots": {},
        "latest_message": {"text": "(synthetic)", "intent": {"name": intent, "confidence": 0.9}},
        "events": events or [],
        "paused": False,
        "followup_action": None,
        "active_loop": {},
        "latest_action_name": "action_listen",
    })


def sms_conversation(number: str) -> str:
    return conversation_id(keyring(), "sms", number)


@pytest.fixture
async def records(settings_env) -> Dict[str, Any]:
    """Synthetic patients: one with an upcoming appointment, one with only a past one."""
    soon = datetime.now(timezone.utc) + timedelta(days=2)
    bundle = ParsedBundle(
        patients={
            "p1": Patient("p1", "Testy", "Synthetic", datetime(1970, 1, 2).date(), [PATIENT_NUMBER]),
            "p2": Patient("p2", "Other", "Synthetic", datetime(1980, 3, 4).date(), [NO_APPT_NUMBER]),
        },
        practitioners={"d1": Practitioner("d1", "Dr. Test Doctor")},
        appointments={
            "a1": Appointment("a1", "booked", soon, soon + timedelta(minutes=30), "p1", "d1",
                              "Dermatology consult", "Mole check", None, "Bring your list"),
            "a2": Appointment("a2", "fulfilled", soon - timedelta(days=30), None, "p2", "d1"),
        },
    )
    await services().appointments.import_bundle(bundle, source="test")
    return {"start": soon}


async def run_action(action, tracker: Tracker) -> CollectingDispatcher:
    dispatcher = CollectingDispatcher()
    events = await action.run(dispatcher, tracker, {})
    assert isinstance(events, list)
    return dispatcher


def phi_class(message: Dict[str, Any]) -> str:
    return message["custom"]["phi_class"]


async def test_details_give_date_and_time_as_a_notice_and_nothing_more(records):
    office = services().office
    d = await run_action(ActionAppointmentDetails(), tracker_for(sms_conversation(PATIENT_NUMBER)))
    [msg] = d.messages
    assert phi_class(msg) == "notice"
    assert office.name in msg["text"] and office.phone in msg["text"]
    local = records["start"].astimezone(office.timezone)
    assert f"{local:%b} {local.day}" in msg["text"]
    for secret in ("Dermatology", "Mole", "Bring your list", "Testy", "Dr. Test"):
        assert secret not in msg["text"]  # reason, service, instructions, names are PHI


@pytest.mark.parametrize("action", [ActionAppointmentDetails(), ActionConfirmAppointment(),
                                    ActionAskCancelAppointment(), ActionCancelAppointment(),
                                    ActionRequestReschedule(), ActionRunningLate()])
async def test_unknown_number_and_patient_without_appointment_get_identical_replies(records, action):
    unknown = await run_action(action, tracker_for(sms_conversation(UNKNOWN_NUMBER)))
    no_appt = await run_action(action, tracker_for(sms_conversation(NO_APPT_NUMBER)))
    assert unknown.messages == no_appt.messages
    assert all(phi_class(m) == "public" for m in unknown.messages)
    assert "your appointment" not in unknown.messages[0]["text"].lower()


async def test_confirm_records_status_actor_and_time(records):
    conv = sms_conversation(PATIENT_NUMBER)
    d = await run_action(ActionConfirmAppointment(), tracker_for(conv))
    assert "confirmed" in d.messages[0]["text"]
    store = services().appointments
    appt = await store.get_appointment(store.appointment_ref("a1"))
    last = appt.data["history"][-1]
    assert appt.status == "booked" and last["action"] == "confirmed" and last["actor"] == "patient:sms"
    assert abs(datetime.fromisoformat(last["at"]) - datetime.now(timezone.utc)) < timedelta(minutes=1)


async def test_cancel_is_asked_first_then_done_and_recorded(records):
    conv = sms_conversation(PATIENT_NUMBER)
    store = services().appointments
    asked = await run_action(ActionAskCancelAppointment(), tracker_for(conv))
    assert "Reply Y" in asked.messages[0]["text"]
    assert (await store.get_appointment(store.appointment_ref("a1"))).status == "booked"  # asking changes nothing
    done = await run_action(ActionCancelAppointment(), tracker_for(conv))
    assert "cancelled" in done.messages[0]["text"]
    appt = await store.get_appointment(store.appointment_ref("a1"))
    assert appt.status == "cancelled" and appt.data["history"][-1]["actor"] == "patient:sms"
    # nothing upcoming any more: the neutral reply
    after = await run_action(ActionAppointmentDetails(), tracker_for(conv))
    assert phi_class(after.messages[0]) == "public"


async def test_reschedule_is_recorded_and_queued_for_staff(records):
    conv = sms_conversation(PATIENT_NUMBER)
    d = await run_action(ActionRequestReschedule(), tracker_for(conv))
    assert "scheduling team" in d.messages[0]["text"]
    store = services().appointments
    appt = await store.get_appointment(store.appointment_ref("a1"))
    assert appt.data["history"][-1]["action"] == "reschedule_requested" and appt.status == "booked"
    entry = await services().handoff.entry(conv)
    assert entry["reason"] == "reschedule" and entry["status"] == "waiting"


async def test_running_late_is_noted_on_the_appointment(records):
    conv = sms_conversation(PATIENT_NUMBER)
    await run_action(ActionRunningLate(), tracker_for(conv))
    store = services().appointments
    appt = await store.get_appointment(store.appointment_ref("a1"))
    assert appt.data["history"][-1]["action"] == "running_late"


@pytest.mark.parametrize("intent", ["ask_hours", "ask_location", "ask_parking", "ask_insurance", "ask_billing",
                                    "ask_refill", "ask_portal", "ask_flu_shot", "ask_test_results"])
async def test_faq_answers_come_from_office_config(settings_env, intent):
    d = await run_action(ActionAnswerFaq(), tracker_for("sms-x", intent))
    office = load_office(services().cfg.office_config)
    assert d.messages[0]["text"] == office.faq_answer(intent)
    assert phi_class(d.messages[0]) == "public"


async def test_unconfigured_faq_points_to_the_phone(settings_env):
    d = await run_action(ActionAnswerFaq(), tracker_for("sms-x", "ask_something_new"))
    assert services().office.phone in d.messages[0]["text"]


async def test_request_human_queues_and_says_what_happens_next(settings_env):
    conv = sms_conversation(PATIENT_NUMBER)
    d = await run_action(ActionRequestHuman(), tracker_for(conv, "request_human"))
    assert "staff" in d.messages[0]["text"]
    assert (await services().handoff.entry(conv))["reason"] == "patient_request"


async def test_a_medical_question_goes_to_the_clinical_team_without_advice(settings_env):
    conv = sms_conversation(PATIENT_NUMBER)
    d = await run_action(ActionClinicalQuestion(), tracker_for(conv, "ask_clinical_question"))
    [reply] = d.messages
    assert "can't give medical advice" in reply["text"] and "clinical team" in reply["text"] and "911" in reply["text"]
    assert phi_class(reply) == "public"
    entry = await services().handoff.entry(conv)
    assert entry["reason"] == "clinical_question" and entry["status"] == "waiting"
    from bot.storage.audit import AuditLog

    [event] = [e for e in await AuditLog(services().handoff.redis, services().keys, services().cfg.redis_prefix).events()
               if e.action == "escalated"]
    assert (event.subject, event.outcome, event.details) == (conv, "queued", {"reason": "clinical_question",
                                                                              "priority": "normal"})


def _user(intent: str) -> Dict[str, Any]:
    return {"event": "user", "text": "(synthetic)", "parse_data": {"intent": {"name": intent}}}


def test_consecutive_misses_counts_only_the_latest_run():
    events = [_user("nlu_fallback"), _user("greet"), {"event": "bot", "text": "hi"},
              _user("nlu_fallback"), {"event": "action", "name": "action_handle_fallback"}, _user("nlu_fallback")]
    assert consecutive_misses(tracker_for("sms-x", events=events)) == 2
    assert consecutive_misses(tracker_for("sms-x", events=events[:2])) == 0


async def test_fallback_rephrases_once_then_escalates(settings_env):
    conv = sms_conversation(PATIENT_NUMBER)
    first = await run_action(ActionHandleFallback(), tracker_for(conv, "nlu_fallback", [_user("nlu_fallback")]))
    assert "say it another way" in first.messages[0]["text"]
    assert await services().handoff.entry(conv) is None
    second = await run_action(ActionHandleFallback(),
                              tracker_for(conv, "nlu_fallback", [_user("nlu_fallback"), _user("nlu_fallback")]))
    assert "staff" in second.messages[0]["text"]
    assert (await services().handoff.entry(conv))["reason"] == "repeated_misunderstanding"


# -- PHI only after verification ----------------------------------------------------------------

async def test_specifics_ask_for_the_dob_until_verified_then_speak_as_phi(records):
    """By SMS to a number with PHI by text authorized (without it: tests/test_phi_by_text.py)."""
    from actions.appointments import ActionAppointmentSpecifics
    from bot.records.identity import pending_verification

    svc = services()
    conv = sms_conversation(PATIENT_NUMBER)
    await svc.consent.grant_scope(phone_index_of(PATIENT_NUMBER), "phi_by_text", "signed_form", "(synthetic) on file")
    d = await run_action(ActionAppointmentSpecifics(), tracker_for(conv, "ask_appointment_specifics"))
    [ask] = d.messages
    assert "date of birth" in ask["text"] and phi_class(ask) == "public"
    assert "Dermatology" not in ask["text"] and "Mole" not in ask["text"]
    assert await pending_verification(svc.identity, conv) == "ask_appointment_specifics"
    candidates = await svc.appointments.birth_dates_at(phone_index_of(PATIENT_NUMBER))
    assert (await svc.identity.check_dob(conv, "sms", datetime(1970, 1, 2).date(), candidates)).verified
    d = await run_action(ActionAppointmentSpecifics(), tracker_for(conv, "ask_appointment_specifics"))
    [answer] = d.messages
    assert phi_class(answer) == "phi"
    assert "Dermatology consult" in answer["text"] and "Dr. Test Doctor" in answer["text"]
    assert "Bring your list" in answer["text"]


async def test_questions_about_someone_else_get_the_neutral_reply(records):
    from actions.appointments import ActionAppointmentSpecifics

    texts = []
    for number in (PATIENT_NUMBER, UNKNOWN_NUMBER):
        tracker = tracker_for(sms_conversation(number), "ask_appointment_details")
        tracker.latest_message["text"] = "what time is my mom's appointment"
        for action in (ActionAppointmentDetails(), ActionAppointmentSpecifics()):
            [msg] = (await run_action(action, tracker)).messages
            texts.append(msg["text"])
    assert len(set(texts)) == 1 and "only discuss appointments with the patient" in texts[0]


def phone_index_of(number: str) -> str:
    from bot.storage.crypto import phone_index

    return phone_index(keyring(), number)
