"""Fallback: ask which reading was meant, or to rephrase; after two misunderstood messages in a
row, escalate to staff."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from bot.config import NLU_THRESHOLDS_FILE
from bot.core import clarify, phi, replies
from actions.common import channel_of, say, services

FALLBACK_INTENT = "nlu_fallback"
MISSES_BEFORE_ESCALATION = 2


def consecutive_misses(tracker: Tracker) -> int:
    """How many of the latest user messages in a row the bot did not understand.

    Counted from the tracker's events rather than a slot, so nothing a message says can
    reset or forge the count.
    """
    misses = 0
    for event in reversed(tracker.events):
        if event.get("event") != "user":
            continue
        intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
        if intent != FALLBACK_INTENT:
            break
        misses += 1
    return misses


class ActionHandleFallback(Action):
    def name(self) -> Text:
        return "action_handle_fallback"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[Dict]:
        svc = services()
        if consecutive_misses(tracker) >= MISSES_BEFORE_ESCALATION:
            await svc.handoff.escalate(tracker.sender_id, channel_of(tracker), "repeated_misunderstanding")
            say(dispatcher, replies.escalation_notice(svc.office, datetime.now(timezone.utc)))
            return []
        ranking = clarify.readings(tracker.latest_message.get("intent_ranking") or [])
        offered = clarify.options(ranking, clarify.thresholds(NLU_THRESHOLDS_FILE))
        if not offered:
            say(dispatcher, replies.rephrase(svc.office))
            return []
        text, buttons = clarify.question(offered)
        # Not ``say``: the question carries buttons (web) and the offered readings beside its class.
        dispatcher.utter_message(text=text, buttons=buttons,
                                 json_message={"phi_class": phi.PUBLIC, clarify.CLARIFY_KEY: offered})
        return []
