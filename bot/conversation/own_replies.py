"""The replies the gateway gives on its own, without the bot: Rasa unavailable or slow, an
attachment, an empty message, the fallback that stands in for silence, and web chat's answers
to STOP, START, HELP and "sign out"."""
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


# -- web chat's own answers (bot/conversation/web_commands.py): no consent changes in a chat ---------
def web_stop(office: Office, texts_from: str, language: str = "en") -> str:
    """STOP typed in web chat: how to stop texts (from the phone) and how to leave the chat."""
    if language == "es":
        return (f"Este chat no cambia sus mensajes de texto. Para no recibir mas mensajes de {office.name}, "
                f"envie ALTO al {texts_from} desde su telefono. Para salir del chat, pulse Sign out o cierre "
                "la ventana.")
    return (f"This chat can't change your text messages. To stop texts from {office.name}, text STOP to "
            f"{texts_from} from your phone. To leave this chat, press Sign out or close the window.")


def web_start(office: Office, texts_from: str, language: str = "en") -> str:
    """START typed in web chat: texts are turned back on from the phone."""
    if language == "es":
        return (f"Para volver a recibir mensajes de {office.name}, envie INICIO al {texts_from} desde su "
                "telefono. Aqui puede seguir escribiendo.")
    return (f"To get texts from {office.name} again, text START to {texts_from} from your phone. "
            "You can keep chatting here.")


def web_help(office: Office, language: str = "en") -> str:
    """HELP typed in web chat: the office's contact details."""
    if language == "es":
        return (f"{office.name}: llame al {office.phone}. {office.address}. Horario: {office.hours_text()}. "
                f"En una emergencia llame al {office.emergency.emergency}.")
    return (f"{office.name}: call us at {office.phone}. {office.address}. Hours: {office.hours_text()}. "
            f"In an emergency call {office.emergency.emergency}.")


def signed_out() -> str:
    """After "sign out" in web chat (typed or the button)."""
    return ("You're signed out. To see your appointment details again you'll be asked to verify again. "
            "You can close this window.")
