"""The replies the gateway gives on its own, without the bot: Rasa unavailable or slow, an
attachment, an empty message, and the fallback that stands in for silence."""
from __future__ import annotations

import logging
from typing import List

from bot.core import replies
from bot.core.office import Office

logger = logging.getLogger(__name__)


def unavailable(office: Office) -> str:
    return ("Sorry, I can't answer right now. If this is an emergency, call 911. "
            f"Otherwise please call {office.name} at {office.phone}.")


def holding() -> str:
    return "Thanks, I'm looking into that. You'll get my answer in a moment."


def media(office: Office) -> str:
    return (f"Sorry, we can't accept photos or attachments by text. Please describe it in words, "
            f"or call us at {office.phone}.")


def empty() -> str:
    return "Your message came through empty. How can I help? You can ask about your appointment or our office."


def fallback(office: Office, conversation: str, reason: str) -> List[str]:
    """The bot's "say it another way" for a message that would otherwise get no answer: the
    patient cannot tell silence from a lost text, and the same message sent again is usually
    answered. Logged with the reason only, never the text."""
    logger.warning("no answer for conversation %s (%s): sending the fallback", conversation, reason)
    return [replies.rephrase(office)]
