"""Hand-off to staff: on the patient's request, and for medical questions the bot must not answer."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from bot import replies
from actions.common import channel_of, say, services


class ActionRequestHuman(Action):
    def name(self) -> Text:
        return "action_request_human"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[Dict]:
        svc = services()
        await svc.handoff.escalate(tracker.sender_id, channel_of(tracker), "patient_request")
        say(dispatcher, replies.escalation_notice(svc.office, datetime.now(timezone.utc)))
        return []


class ActionClinicalQuestion(Action):
    """A medical question goes to the clinical team; the bot gives no advice, ever."""

    def name(self) -> Text:
        return "action_clinical_question"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[Dict]:
        svc = services()
        await svc.handoff.escalate(tracker.sender_id, channel_of(tracker), "clinical_question")
        say(dispatcher, replies.clinical_question(svc.office, datetime.now(timezone.utc)))
        return []
