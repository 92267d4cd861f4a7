"""Office FAQ answers, read from office.yml by the intent that asked.

A verified patient asking about test results also goes to the staff queue: the bot never
discusses results by text, a staff member follows up (issue: hand-off to staff).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.common import channel_of, say, services
from bot.core import replies


class ActionAnswerFaq(Action):
    def name(self) -> Text:
        return "action_answer_faq"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[Dict]:
        office = services().office
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        answer = office.faq_answer(intent) if intent else None
        if answer is None:
            # An FAQ intent the office has not configured: point to the phone, never guess.
            answer = f"I don't have that information by text. Please call {office.name} at {office.phone}."
        say(dispatcher, answer)
        if intent == "ask_test_results":
            await self._escalate_if_verified(dispatcher, tracker)
        return []

    @staticmethod
    async def _escalate_if_verified(dispatcher: CollectingDispatcher, tracker: Tracker) -> None:
        svc = services()
        channel = channel_of(tracker)
        if await svc.identity.session(tracker.sender_id, channel, touch=False) is None:
            return  # unverified: the portal answer only, nothing that says whether this is a patient
        await svc.handoff.escalate(tracker.sender_id, channel, "test_results")
        say(dispatcher, replies.escalation_notice(svc.office, datetime.now(timezone.utc)))
