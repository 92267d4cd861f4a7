"""The shape every appointment action shares, written once.

An appointment action finds the appointment it is about (by default the next one booked for
the sender's number; for a verified patient, theirs), says "no appointment" when there is
none, and otherwise does the one thing that makes it that action
(:meth:`AppointmentAction.act`). Subclasses give only their name and what differs.

A web chat is about no number by itself: there every appointment answer, the notices too,
needs a verified session, and the action asks for verification first (:meth:`find_on_web`).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Dict, List, Optional, Text, Union

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.common import channel_of, say, sender_phone_index, services
from bot.conversation.verification import ask_to_verify
from bot.core import phi, replies
from bot.records.appointments import StoredAppointment
from bot.services import Services

ACTOR_PATIENT = "patient"  # changes made by the patient themselves, over their own channel
# Intents that only answer the bot's question: never replayed on their own after verification.
ANSWERS_TO_A_QUESTION = frozenset({"affirm", "deny", "nlu_fallback", "provide_dob"})


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
    # The intent that leads here, which the gateway replays once a web chat is verified, when
    # the message was only "yes" or "no" to a question: a replayed "yes" could otherwise be
    # taken for the answer to another question (a cancel is asked again, never done unseen).
    verify_intent = "ask_appointment_details"

    @abstractmethod
    def name(self) -> Text: ...

    @abstractmethod
    async def act(self, svc: Services, dispatcher: CollectingDispatcher, tracker: Tracker,
                  appt: Optional[StoredAppointment]) -> None:
        """Do what the action is for with ``appt`` (None only where ``needs_appointment`` is False)."""

    async def find(self, svc: Services, dispatcher: CollectingDispatcher,
                   tracker: Tracker) -> Union[StoredAppointment, Answered, None]:
        """The appointment the action is about: on SMS the verified patient's next one, else
        the next one for the sender's number (a shared phone's soonest); in web chat,
        :meth:`find_on_web`."""
        if channel_of(tracker) == "web":
            return await self.find_on_web(svc, dispatcher, tracker)
        phone_idx = sender_phone_index(tracker)
        if phone_idx is None:
            return None
        # After a switch on a shared phone the reply said whose details follow: keep to it.
        session = await svc.identity.session(tracker.sender_id, channel_of(tracker))
        if session is not None:
            return await svc.appointments.next_for_patient(session.patient_ref)
        return await svc.appointments.next_appointment(phone_idx)

    async def find_on_web(self, svc: Services, dispatcher: CollectingDispatcher,
                          tracker: Tracker) -> Union[StoredAppointment, Answered]:
        """Web chat: the verified patient's next appointment; unverified, the first question of
        verification (the number on file, or the date of birth), remembered for the intent
        that led here."""
        return await self.find_verified(svc, dispatcher, tracker, "web", self.intent_to_verify(tracker))

    @staticmethod
    async def find_verified(svc: Services, dispatcher: CollectingDispatcher, tracker: Tracker, channel: str,
                            intent: str) -> Union[StoredAppointment, Answered, None]:
        """The verified patient's next appointment; unverified, the first question of
        verification on ``channel``, remembered for ``intent`` (replayed once verified)."""
        session = await svc.identity.session(tracker.sender_id, channel)
        if session is None:
            say(dispatcher, await ask_to_verify(svc, tracker.sender_id, channel, intent))
            return ANSWERED
        return await svc.appointments.next_for_patient(session.patient_ref)

    def intent_to_verify(self, tracker: Tracker) -> str:
        """The intent the gateway replays once verified: the message's, or :attr:`verify_intent`
        when it only answered a question (or had none)."""
        latest = ((tracker.latest_message or {}).get("intent") or {}).get("name") or ""
        if latest in ANSWERS_TO_A_QUESTION or not latest.replace("_", "").isalpha():
            return self.verify_intent
        return latest

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
