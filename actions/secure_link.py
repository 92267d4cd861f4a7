"""The secure link instead of PHI by SMS: what an action that answers with PHI does first on an
SMS conversation whose number has not authorized PHI by text (bot/conversation/phi_by_text.py)."""
from __future__ import annotations

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.common import say
from bot.conversation.phi_by_text import secure_link_reply, unauthorized_sms_number
from bot.services import Services


async def offer_secure_link(svc: Services, dispatcher: CollectingDispatcher, tracker: Tracker, intent: str) -> bool:
    """On an SMS conversation without the number's ``phi_by_text``: issue a one-time link for
    ``intent`` and say it (no date-of-birth question: the patient verifies in the secure chat).
    True when it did; False on any other conversation, which the action answers as usual."""
    phone_idx = await unauthorized_sms_number(svc, tracker.sender_id)
    if phone_idx is None:
        return False
    say(dispatcher, await secure_link_reply(svc, tracker.sender_id, phone_idx, intent))
    return True
