"""The shape every appointment action shares, written once.

An appointment action finds the appointment it is about (by default the next one booked for
the sender's number), says "no appointment" when there is none, and otherwise does the one
thing that makes it that action (:meth:`AppointmentAction.act`). Subclasses give only their
name and what differs.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Dict, List, Optional, Text, Union

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.common import channel_of, say, sender_phone_index, services
from bot.core import phi, replies
from bot.records.appointments import StoredAppointment
from bot.services import Services

ACTOR_PATIENT = "patient"  # changes made by the patient themselves, over their own channel


class Answered:
    """What :meth:`AppointmentAction.find` returns when it has already answered the patient
    (it asked for something first): the action stops there."""


ANSWERED = Answered()


class AppointmentAction(Action, ABC):
    """Find the appointment, or say there is none; then :meth:`act` on it.

    Abstract, so the action server does not register it as an action of its own. ``svc`` in
    the hooks is what ``actions.common.services()`` returns (bot.services).
    """

    # A message about another person gets the neutral reply before any look-up (the actions
    # that speak about the appointment itself).
    screens_someone_else = False
    # False where the reply must not depend on whether a record exists: act() then gets None.
    needs_appointment = True

    @abstractmethod
    def name(self) -> Text: ...

    @abstractmethod
    async def act(self, svc: Services, dispatcher: CollectingDispatcher, tracker: Tracker,
                  appt: Optional[StoredAppointment]) -> None:
        """Do what the action is for with ``appt`` (None only where ``needs_appointment`` is False)."""

    async def find(self, svc: Services, dispatcher: CollectingDispatcher,
                   tracker: Tracker) -> Union[StoredAppointment, Answered, None]:
        """The appointment the action is about: the next one for the sender's number (SMS only)."""
        phone_idx = sender_phone_index(tracker)
        if phone_idx is None:
            return None
        return await svc.appointments.next_appointment(phone_idx)

    @staticmethod
    def actor(tracker: Tracker) -> str:
        """Who makes the change, for the appointment's history: the patient, on their channel."""
        return f"{ACTOR_PATIENT}:{channel_of(tracker)}"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[Dict]:
        svc = services()
        if self.screens_someone_else and phi.mentions_someone_else(tracker.latest_message.get("text") or ""):
            say(dispatcher, replies.someone_else(svc.office))
            return []
        appt = await self.find(svc, dispatcher, tracker)
        if appt is ANSWERED:
            return []
        if appt is None and self.needs_appointment:
            say(dispatcher, replies.no_appointment(svc.office))
            return []
        await self.act(svc, dispatcher, tracker, appt)
        return []
