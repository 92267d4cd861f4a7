"""Office FAQ answers, read from office.yml by the intent that asked."""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.common import say, services


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
        return []
