"""Rasa side: put what the NLU did not understand well into the review inbox (bot.nlu.inbox).

Called by the connector after a message was handled: it reads the conversation's latest user
turn (the text the gateway passed on, dates already masked) and its parse, and keeps it sealed
when the NLU fell back or was unsure. A failure here never affects the patient's reply; it is
logged by exception class only, never with the text.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Optional

from rasa.shared.core.events import UserUttered

from bot.config import settings
from bot.storage.crypto import keyring
from bot.nlu.inbox import ReviewInbox, review_reason
from bot.storage.redis_client import async_redis
from bot.storage.tracker_store import underlying_store

if TYPE_CHECKING:
    from channels.rasa_bridge.clarify_choice import Choice

logger = logging.getLogger(__name__)

_inbox: Optional[ReviewInbox] = None


def _review_inbox() -> ReviewInbox:
    global _inbox
    if _inbox is None:
        cfg = settings()
        _inbox = ReviewInbox(async_redis(cfg), keyring(cfg), cfg.redis_prefix, cfg.nlu_inbox_days)
    return _inbox


def reset() -> None:
    """Forget the inbox client (tests switch settings)."""
    global _inbox
    _inbox = None


async def _latest_user_turn(agent: Any, sender: str) -> Optional[dict]:
    """The latest user event as a dict: cheaply from our store's JSON, else from the tracker."""
    store = underlying_store(agent.tracker_store)
    if hasattr(store, "latest_user_event"):
        return store.latest_user_event(sender)
    tracker = await agent.tracker_store.retrieve(sender)
    latest = next((e for e in reversed(tracker.events) if isinstance(e, UserUttered)), None) if tracker else None
    return None if latest is None else {"text": latest.text, "parse_data": latest.parse_data}


async def capture_latest_turn(agent: Any, sender: str) -> Optional[str]:
    """Inbox the latest user message of ``sender`` if it needs review; returns the item id."""
    try:
        latest = await _latest_user_turn(agent, sender)
        if latest is None or not latest.get("text"):
            return None
        intent = (latest.get("parse_data") or {}).get("intent") or {}
        name, confidence = intent.get("name"), intent.get("confidence")
        reason = review_reason(name, confidence, settings().nlu_review_threshold)
        if reason is None:
            return None
        if name == "nlu_fallback":
            # Show the admin the model's best real guess rather than "fallback".
            ranking = [r for r in (latest.get("parse_data") or {}).get("intent_ranking", [])
                       if r.get("name") != "nlu_fallback"]
            if ranking:
                name, confidence = ranking[0].get("name"), ranking[0].get("confidence")
        return await _review_inbox().capture(latest["text"], name or "nlu_fallback", float(confidence or 0.0), reason)
    except Exception as exc:  # noqa: BLE001 - the reply has been produced; never fail it for this
        logger.error("review inbox capture failed for conversation %s: %s", sender, exc.__class__.__name__)
        return None


async def capture_clarified(choice: "Choice") -> Optional[str]:
    """Inbox the message a clarifying question was about, labelled with the reading the patient
    picked (bot.core.clarify): an example for an admin to accept. Never fails the reply."""
    try:
        return await _review_inbox().capture(choice.asked_about, choice.intent, choice.confidence, "clarified")
    except Exception as exc:  # noqa: BLE001 - the reply has been produced; never fail it for this
        logger.error("review inbox capture of a clarified message failed: %s", exc.__class__.__name__)
        return None
