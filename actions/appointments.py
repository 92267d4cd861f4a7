"""Appointment actions: details, confirm, cancel (asked, then done), reschedule, running late."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from bot.core import phi, replies
from bot.records.appointments import StoredAppointment
from bot.records.identity import request_verification
from actions.common import channel_of, say, sender_phone_index, services

ACTOR_PATIENT = "patient"  # changes made by the patient themselves, over their own channel


async def _next_appointment(tracker: Tracker) -> Optional[StoredAppointment]:
    phone_idx = sender_phone_index(tracker)
    if phone_idx is None:
        return None
    return await services().appointments.next_appointment(phone_idx)


def _actor(tracker: Tracker) -> str:
    return f"{ACTOR_PATIENT}:{channel_of(tracker)}"


class ActionAppointmentDetails(Action):
    def name(self) -> Text:
        return "action_appointment_details"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[Dict]:
        office = services().office
        if phi.mentions_someone_else(tracker.latest_message.get("text") or ""):
            say(dispatcher, replies.someone_else(office))
            return []
        appt = await _next_appointment(tracker)
        if appt is None:
            say(dispatcher, replies.no_appointment(office))
        else:
            say(dispatcher, replies.appointment_notice(appt.start, office), phi.NOTICE)
        return []


class ActionAppointmentSpecifics(Action):
    """What the visit is for, with whom, what to bring: PHI, so only to a verified patient.

    Unverified, the action asks for the date of birth and remembers the question; the gateway
    checks the answer (it never reaches the bot) and then asks this action again.
    """

    def name(self) -> Text:
        return "action_appointment_specifics"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[Dict]:
        svc = services()
        if phi.mentions_someone_else(tracker.latest_message.get("text") or ""):
            say(dispatcher, replies.someone_else(svc.office))
            return []
        session = await svc.identity.session(tracker.sender_id, channel_of(tracker))
        if session is None:
            await request_verification(svc.identity, tracker.sender_id, "ask_appointment_specifics")
            say(dispatcher, replies.ask_dob(svc.office))
            return []
        appt = await svc.appointments.next_for_patient(session.patient_ref)
        if appt is None:
            say(dispatcher, replies.no_appointment(svc.office))
            return []
        d = appt.data
        say(dispatcher, replies.appointment_specifics(appt.start, svc.office, d.get("service_type") or "",
                                                      d.get("practitioner_name") or "", d.get("instructions") or ""),
            phi.PHI)
        return []


class ActionConfirmAppointment(Action):
    def name(self) -> Text:
        return "action_confirm_appointment"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[Dict]:
        svc = services()
        appt = await _next_appointment(tracker)
        if appt is None:
            say(dispatcher, replies.no_appointment(svc.office))
            return []
        appt = await svc.appointments.confirm(appt, _actor(tracker))
        say(dispatcher, replies.confirmed(appt.start, svc.office), phi.NOTICE)
        return []


class ActionAskCancelAppointment(Action):
    """Cancelling cannot be undone by text, so the bot asks once before it cancels."""

    def name(self) -> Text:
        return "action_ask_cancel_appointment"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[Dict]:
        office = services().office
        appt = await _next_appointment(tracker)
        if appt is None:
            say(dispatcher, replies.no_appointment(office))
        else:
            say(dispatcher, replies.ask_cancel(appt.start, office), phi.NOTICE)
        return []


class ActionCancelAppointment(Action):
    def name(self) -> Text:
        return "action_cancel_appointment"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[Dict]:
        svc = services()
        appt = await _next_appointment(tracker)
        if appt is None:
            say(dispatcher, replies.no_appointment(svc.office))
            return []
        appt = await svc.appointments.cancel(appt, _actor(tracker))
        say(dispatcher, replies.cancelled(appt.start, svc.office), phi.NOTICE)
        return []


class ActionKeepAppointment(Action):
    def name(self) -> Text:
        return "action_keep_appointment"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[Dict]:
        say(dispatcher, replies.kept(services().office))
        return []


class ActionRequestReschedule(Action):
    """Records the request on the appointment and queues it for the scheduling staff."""

    def name(self) -> Text:
        return "action_request_reschedule"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[Dict]:
        svc = services()
        appt = await _next_appointment(tracker)
        if appt is None:
            say(dispatcher, replies.no_appointment(svc.office))
            return []
        await svc.appointments.request_reschedule(appt, _actor(tracker))
        await svc.handoff.escalate(tracker.sender_id, channel_of(tracker), "reschedule")
        say(dispatcher, replies.reschedule_requested(svc.office))
        return []


class ActionRunningLate(Action):
    def name(self) -> Text:
        return "action_running_late"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[Dict]:
        svc = services()
        appt = await _next_appointment(tracker)
        if appt is not None:
            await svc.appointments.note_running_late(appt, _actor(tracker))
        # Same words whether or not a record exists: the reply reveals nothing about the sender.
        say(dispatcher, replies.running_late(svc.office))
        return []
