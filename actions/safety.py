"""The NLU's safety answer: the redirect (its emergency intent) or the safety check (danger
words no layer classified). Decided in bot.safety.screen; the gateway alerts staff on the mark
each reply carries."""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.common import say, services
from bot.core.language import detect_language
from bot.safety.detect import Emergency
from bot.safety.redirects import redirect_reply, safety_check_reply
from bot.safety.screen import CHECK, REDIRECT, nlu_verdict, risk_from


class ActionSafetyAnswer(Action):
    def name(self) -> Text:
        return "action_safety_answer"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[Dict]:
        office = services().office
        message = tracker.latest_message or {}
        text = message.get("text") or ""
        language = detect_language(text)
        verdict = nlu_verdict(text, message.get("intent_ranking") or [], risk=risk_from(message.get("metadata"))) or CHECK
        if verdict == REDIRECT:
            answer = redirect_reply(Emergency("crisis", "nlu emergency intent", "nlu"), office.phone,
                                    office.emergency, language)
        else:
            answer = safety_check_reply(office.phone, office.emergency, language)
        say(dispatcher, answer, safety=verdict)
        return []
