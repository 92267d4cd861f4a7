"""What every action shares: the per-process services and a reply helper that classifies.

Actions stay thin: they decide nothing themselves, they ask ``bot/`` and speak the answer.
"""
from __future__ import annotations

import asyncio
from typing import Dict, Optional

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from bot.core import phi
from bot.services import Services, build_services
from bot.storage.crypto import phone_index_from_conversation

_by_loop: Dict[int, Services] = {}


def services() -> Services:
    """The action server's services (bot.services), one set per running event loop (an async
    Redis client belongs to one loop)."""
    loop_id = id(asyncio.get_running_loop())
    found = _by_loop.get(loop_id)
    if found is None:
        found = _by_loop[loop_id] = build_services()
    return found


def reset_services() -> None:
    """Forget cached services (tests that change settings call this)."""
    _by_loop.clear()


def say(dispatcher: CollectingDispatcher, text: str, phi_class: str = phi.PUBLIC, safety: str = "") -> None:
    """Send ``text`` with its PHI class attached, for the gateway's egress guard, and on a
    safety answer its kind (``redirect`` or ``check``), on which the gateway alerts staff."""
    if phi_class not in phi.CLASSES:
        raise ValueError(f"unknown PHI class {phi_class!r}")
    custom = {"phi_class": phi_class, **({"safety": safety} if safety else {})}
    dispatcher.utter_message(text=text, json_message=custom)


def sender_phone_index(tracker: Tracker) -> Optional[str]:
    """The blind index of the sender's number (SMS conversations only)."""
    return phone_index_from_conversation(tracker.sender_id)


def channel_of(tracker: Tracker) -> str:
    return tracker.sender_id.split("-", 1)[0] if "-" in tracker.sender_id else "unknown"
