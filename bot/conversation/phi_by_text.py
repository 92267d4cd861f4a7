"""PHI in an SMS body only with the number's written authorization (consent scope
``phi_by_text``); without it, a one-time link to the secure web chat, where the patient
verifies and reads the answer.

Both sides use this: the actions that answer with PHI offer the link instead of asking for a
date of birth (actions/secure_link.py), and the gateway's egress guard, should a PHI reply
reach an SMS to a number without the authorization anyway, blocks it and sends the link
(bot/conversation/bot_answer.py).
"""
from __future__ import annotations

from typing import Optional

from bot.core import replies
from bot.records.secure_links import link_url
from bot.services import Services
from bot.storage.crypto import phone_index_from_conversation


async def unauthorized_sms_number(services: Services, conversation: str) -> Optional[str]:
    """The phone index of an SMS conversation whose number has not authorized PHI by text
    (it gets a secure link instead of PHI); None for any other conversation."""
    phone_idx = phone_index_from_conversation(conversation)
    if phone_idx is None or (await services.consent.state(phone_idx)).phi_by_text:
        return None
    return phone_idx


async def secure_link_reply(services: Services, conversation: str, phone_idx: str, intent: Optional[str]) -> str:
    """Issue a one-time link for ``conversation`` (the number ``phone_idx``, the question
    ``intent``; None: no particular one) and return the reply that carries it."""
    token = await services.secure_links.issue(conversation, phone_idx, intent)
    return replies.secure_link(services.office, link_url(services.cfg.public_base_url, token))
