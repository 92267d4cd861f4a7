"""The answer to a pending date-of-birth question (and its one-time code), checked here and
never passed to the bot: a date of birth never reaches the tracker."""
from __future__ import annotations

import re
from typing import Awaitable, Callable, List, Optional

from bot.conversation import own_replies
from bot.conversation.inbound import Inbound
from bot.core import replies
from bot.core.dates import InvalidDate, parse_dob
from bot.records.identity import clear_pending
from bot.services import Services
from bot.storage.audit import SYSTEM
from bot.storage.crypto import phone_index

# Sends a one-time code: (message, conversation, text) -> sent.
SendCode = Callable[[Inbound, str, str], Awaitable[bool]]
# Asks the bot: (message, text for Rasa, conversation) -> the replies to send.
AskBot = Callable[[Inbound, str, str], Awaitable[List[str]]]


class Verification:
    def __init__(self, services: Services, ask_bot: AskBot) -> None:
        self.services = services
        self.ask_bot = ask_bot

    async def answer(self, msg: Inbound, text: str, conversation: str, intent: Optional[str],
                     send_code: Optional[SendCode]) -> Optional[List[str]]:
        """The answer to ``text`` if it answers the pending question, else None. ``intent``:
        what a pending date-of-birth question was asked for, if one is pending; ``send_code``:
        how to send a one-time code, where verification needs one."""
        if intent is None or not text:
            return None
        identity, office = self.services.identity, self.services.office
        if await identity.awaiting_code(conversation) and re.fullmatch(r"\s*\d{6}\s*", text):
            attempt = await identity.complete_with_code(conversation, msg.channel, text.strip())
            return await self.verified_or_not(msg, conversation, intent, attempt)
        try:
            given = parse_dob(text)
        except InvalidDate as exc:
            return [replies.invalid_date(str(exc))]
        if given is None:
            return None  # not an answer: the bot takes the message, the question stays pending
        candidates = (await self.services.appointments.birth_dates_at(phone_index(self.services.keys, msg.sender))
                      if msg.channel == "sms" else [])
        with_code = send_code is not None
        attempt = await identity.check_dob(conversation, msg.channel, given, candidates, then_code=with_code)
        if attempt.verified and with_code:
            code = await identity.issue_code(conversation)
            await self.services.audit.record(SYSTEM, "identity_verification", conversation, "dob_matched", {})
            if code is None or not await send_code(msg, conversation, replies.one_time_code(office, code)):
                return [replies.verification_failed(office)]
            return [replies.code_sent(office)]
        return await self.verified_or_not(msg, conversation, intent, attempt)

    async def verified_or_not(self, msg: Inbound, conversation: str, intent: str, attempt) -> List[str]:
        """Audit the attempt; on success, answer what the question was asked for."""
        outcome = "verified" if attempt.verified else f"locked_{attempt.locked}" if attempt.locked else "failed"
        await self.services.audit.record(SYSTEM, "identity_verification", conversation, outcome, {})
        if not attempt.verified:
            if attempt.locked:
                await self.services.handoff.escalate(conversation, msg.channel, "verification_lockout", "urgent")
            return [replies.verification_failed(self.services.office)]
        await clear_pending(self.services.identity, conversation)
        if not intent.replace("_", "").isalpha():
            # Never passed to Rasa as a command; the patient is verified and asked what they need.
            return own_replies.fallback(self.services.office, conversation, "unknown_pending_intent")
        return await self.ask_bot(msg, "/" + intent, conversation)  # the gateway's own command, not patient text
