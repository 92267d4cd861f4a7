"""Appointment actions: details, specifics, confirm, cancel (asked, then done), keep,
reschedule, running late. The shared look-up and "no appointment" answer are in actions.base."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Text, Union

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.base import ANSWERED, Answered, AppointmentAction
from actions.common import channel_of, say, services
from actions.secure_link import offer_secure_link
from bot.core import phi, replies
from bot.records.appointments import StoredAppointment
from bot.services import Services


class ActionAppointmentDetails(AppointmentAction):
    screens_someone_else = True
    verify_intent = "ask_appointment_details"

    def name(self) -> Text:
        return "action_appointment_details"

    async def act(self, svc: Services, dispatcher: CollectingDispatcher, tracker: Tracker, appt: StoredAppointment) -> None:
        say(dispatcher, replies.appointment_notice(appt.start, svc.office), phi.NOTICE)


class ActionAppointmentSpecifics(AppointmentAction):
    """What the visit is for, with whom, what to bring: PHI, so only to a verified patient.

    Unverified, the action asks for the date of birth and remembers the question; the gateway
    checks the answer (it never reaches the bot) and then asks this action again. By SMS, only
    to a number whose patient authorized PHI by text: any other gets a secure link instead.
    """

    screens_someone_else = True
    verify_intent = "ask_appointment_specifics"

    def name(self) -> Text:
        return "action_appointment_specifics"

    async def find(self, svc: Services, dispatcher: CollectingDispatcher,
                   tracker: Tracker) -> Union[StoredAppointment, Answered, None]:
        """The verified patient's next appointment; unverified, the question for the date of birth."""
        if channel_of(tracker) == "web":
            return await self.find_on_web(svc, dispatcher, tracker)
        if await offer_secure_link(svc, dispatcher, tracker, self.verify_intent):
            return ANSWERED  # SMS without phi_by_text: the link, no date-of-birth question
        return await self.find_verified(svc, dispatcher, tracker, channel_of(tracker), self.verify_intent)

    async def act(self, svc: Services, dispatcher: CollectingDispatcher, tracker: Tracker, appt: StoredAppointment) -> None:
        d = appt.data
        say(dispatcher, replies.appointment_specifics(appt.start, svc.office, d.get("service_type") or "",
                                                      d.get("practitioner_name") or "", d.get("instructions") or ""),
            phi.PHI)


class ActionConfirmAppointment(AppointmentAction):
    verify_intent = "confirm_appointment"

    def name(self) -> Text:
        return "action_confirm_appointment"

    async def act(self, svc: Services, dispatcher: CollectingDispatcher, tracker: Tracker, appt: StoredAppointment) -> None:
        appt = await svc.appointments.confirm(appt, self.actor(tracker))
        say(dispatcher, replies.confirmed(appt.start, svc.office), phi.NOTICE)


class ActionAskCancelAppointment(AppointmentAction):
    """Cancelling cannot be undone by text, so the bot asks once before it cancels."""

    verify_intent = "cancel_appointment"

    def name(self) -> Text:
        return "action_ask_cancel_appointment"

    async def act(self, svc: Services, dispatcher: CollectingDispatcher, tracker: Tracker, appt: StoredAppointment) -> None:
        say(dispatcher, replies.ask_cancel(appt.start, svc.office), phi.NOTICE)


class ActionCancelAppointment(AppointmentAction):
    verify_intent = "cancel_appointment"  # asked again once verified: a cancel needs a yes seen

    def name(self) -> Text:
        return "action_cancel_appointment"

    async def act(self, svc: Services, dispatcher: CollectingDispatcher, tracker: Tracker, appt: StoredAppointment) -> None:
        appt = await svc.appointments.cancel(appt, self.actor(tracker))
        say(dispatcher, replies.cancelled(appt.start, svc.office), phi.NOTICE)


class ActionKeepAppointment(Action):
    """The answer to "no, keep it" after the cancel question: nothing to look up or change."""

    def name(self) -> Text:
        return "action_keep_appointment"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[Dict]:
        say(dispatcher, replies.kept(services().office))
        return []


class ActionRequestReschedule(AppointmentAction):
    """Records the request on the appointment and queues it for the scheduling staff."""

    verify_intent = "reschedule_appointment"

    def name(self) -> Text:
        return "action_request_reschedule"

    async def act(self, svc: Services, dispatcher: CollectingDispatcher, tracker: Tracker, appt: StoredAppointment) -> None:
        await svc.appointments.request_reschedule(appt, self.actor(tracker))
        await svc.handoff.escalate(tracker.sender_id, channel_of(tracker), "reschedule")
        say(dispatcher, replies.reschedule_requested(svc.office))


class ActionRunningLate(AppointmentAction):
    # Same words whether or not a record exists: the reply reveals nothing about the sender.
    needs_appointment = False
    verify_intent = "running_late"

    def name(self) -> Text:
        return "action_running_late"

    async def act(self, svc: Services, dispatcher: CollectingDispatcher, tracker: Tracker,
                  appt: Optional[StoredAppointment]) -> None:
        if appt is not None:
            await svc.appointments.note_running_late(appt, self.actor(tracker))
        say(dispatcher, replies.running_late(svc.office))
