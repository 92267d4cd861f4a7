"""Hand-off to staff: on the patient's request, and for medical questions the bot must not answer."""
from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime, timezone
from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from bot.core import replies
from bot.core.office import Office
from actions.common import channel_of, say, services


class _Escalation(Action, ABC):
    """Queue the conversation for staff with ``reason`` and tell the patient what happens next.

    Abstract, so the action server does not register it as an action of its own.
    """

    reason = ""

    @abstractmethod
    def name(self) -> Text: ...

    def reply(self, office: Office, now: datetime) -> str:
        return replies.escalation_notice(office, now)

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[Dict]:
        svc = services()
        await svc.handoff.escalate(tracker.sender_id, channel_of(tracker), self.reason)
        say(dispatcher, self.reply(svc.office, datetime.now(timezone.utc)))
        return []


class ActionRequestHuman(_Escalation):
    reason = "patient_request"

    def name(self) -> Text:
        return "action_request_human"


class ActionClinicalQuestion(_Escalation):
    """A medical question goes to the clinical team; the bot gives no advice, ever."""

    reason = "clinical_question"

    def name(self) -> Text:
        return "action_clinical_question"

    def reply(self, office: Office, now: datetime) -> str:
        return replies.clinical_question(office, now)
