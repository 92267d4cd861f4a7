"""Rasa side: a reply to the bot's clarifying question ("1", "the second one") becomes the
reading it picks, and the message that needed the question becomes a labelled example.

The question (actions/fallback.py) travels in the tracker with the readings it offered; a
reply that picks one of them, sent as the very next message, is handed to Rasa as that intent
(``/ask_hours``), exactly as if the NLU had understood it. The gateway strips a leading "/"
from patients' texts, so only this mapping can produce such a command, and only with an
intent the bot itself offered. Nothing here logs message text.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Optional

from rasa.shared.core.events import BotUttered, UserUttered

from bot.core import clarify
from bot.core.clarify import CLARIFY_KEY


@dataclass(frozen=True)
class Choice:
    intent: str
    asked_about: str  # the message the question was about (dates already masked)
    confidence: float  # what the NLU gave the chosen reading then


def pending_question(events: Iterable[Any]) -> Optional[tuple]:
    """(offered intents, the user event the question was about) when the latest bot turn is a
    clarifying question not yet answered; else None."""
    question = None
    for event in reversed(list(events)):
        if isinstance(event, UserUttered):
            if question is None:
                return None  # the patient has already written since the question
            return question, event
        if isinstance(event, BotUttered) and question is None:
            offered = ((event.data or {}).get("custom") or {}).get(CLARIFY_KEY)
            if not offered:
                return None  # the latest thing the bot said was not a question
            question = [str(intent) for intent in offered]
    return None


async def resolve(agent: Any, sender: str, text: str) -> Optional[Choice]:
    """The reading ``text`` picks, if it answers a pending question of this conversation."""
    if clarify.choice_number(text) is None:
        return None  # the common case costs no tracker read
    tracker = await agent.tracker_store.retrieve(sender)
    pending = pending_question(tracker.events) if tracker is not None else None
    if pending is None:
        return None
    offered, asked = pending
    intent = clarify.chosen_intent(text, offered)
    if intent is None:
        return None
    ranking = dict(clarify.readings((asked.parse_data or {}).get("intent_ranking") or []))
    return Choice(intent, asked.text or "", ranking.get(intent, 0.0))
