"""Identity verification in the conversation (step 7b): the answers to a pending verification
question, checked here and never passed to the bot, and a date of birth typed on a shared phone.

SMS: the date of birth, checked against the patients at the sender's number, then (with
IDV_REQUIRE_CODE) a one-time code texted to that number.

Web chat: a browser is about no number until it learns one, from a secure link opened from an
SMS (bot/records/web_binding.py) or, as the first question, the mobile number on file. Then the
date of birth, checked against the patients at that number, then a one-time code texted to the
number on file (WEBCHAT_REQUIRE_CODE, on by default), never to a number someone typed. The
replies to the number and to the date are the same whether or not they matched, and the code is
sent in the background, so neither the words nor the time of a reply tell whether a number or a
date is on file; a code typed after a date that did not match fails as a wrong code does. Every
failure counts towards the lock-outs (bot/records/identity.py); one reached at the date is told,
like any failure, only when a code is tried.

Shared phones, both channels: in a verified conversation, a date of birth given on its own that
matches another patient at the number switches the session to them (through the code step where
the channel has one); the date of the patient already verified only confirms. No one is named.
"""
from __future__ import annotations

import asyncio
import hmac
import logging
import re
from datetime import date
from typing import Awaitable, Callable, List, Optional, Sequence, Set, Tuple

from bot.conversation import own_replies
from bot.conversation.inbound import Inbound
from bot.core import replies
from bot.core.dates import InvalidDate, parse_dob, standalone_dob
from bot.core.phone import find_number, looks_like_a_number
from bot.records.identity import Attempt, clear_pending, request_verification
from bot.records.web_binding import VIA_LINK, VIA_NUMBER, Binding
from bot.services import Services
from bot.storage.audit import SYSTEM
from bot.storage.crypto import phone_index

logger = logging.getLogger(__name__)

# Sends a one-time code: (E.164 number on file, conversation, text) -> sent.
SendCode = Callable[[str, str, str], Awaitable[bool]]
# Asks the bot: (message, text for Rasa, conversation) -> the replies to send.
AskBot = Callable[[Inbound, str, str], Awaitable[List[str]]]

# What a switch between patients on a shared phone leaves pending: answered with the switch's
# own reply once verified, never sent to the bot as an intent.
SWITCH = "switch_patient"
# Verify, then ask what they need: a secure link sent when no particular question was waiting.
JUST_VERIFY = "just_verify"
CODE = re.compile(r"\s*\d{6}\s*")


async def ask_to_verify(services: Services, conversation: str, channel: str, intent: str) -> str:
    """Remember that ``conversation`` is to be verified to answer ``intent`` (an intent name, no
    PHI), and return the first question: in a web chat not yet bound to a number on file, that
    number; otherwise the date of birth."""
    await request_verification(services.identity, conversation, intent)
    if channel == "web" and await services.web_bindings.bound(conversation) is None:
        return replies.ask_number(services.office)
    return replies.ask_dob(services.office)


def _outcome(attempt: Attempt) -> str:
    return "verified" if attempt.verified else f"locked_{attempt.locked}" if attempt.locked else "failed"


def _holds_a_date(text: str) -> bool:
    try:
        return parse_dob(text) is not None
    except InvalidDate:
        return True


class Verification:
    def __init__(self, services: Services, ask_bot: AskBot) -> None:
        self.services = services
        self.ask_bot = ask_bot
        self._sending: Set[asyncio.Future] = set()  # codes on their way (web chat)

    def needs_code(self, channel: str) -> bool:
        """Whether verification on ``channel`` ends with a one-time code (settings)."""
        cfg = self.services.cfg
        return cfg.webchat_require_code if channel == "web" else cfg.idv_require_code

    async def drain(self, timeout: float = 15.0) -> None:
        """Wait for codes still being sent (shutdown, tests)."""
        if self._sending:
            await asyncio.wait(list(self._sending), timeout=timeout)

    async def answer(self, msg: Inbound, text: str, conversation: str, intent: Optional[str],
                     send_code: Optional[SendCode]) -> Optional[List[str]]:
        """The answer to ``text`` if verification takes it, else None (the bot's turn).
        ``intent``: what a pending verification question was asked for, if one is pending;
        ``send_code``: how to text a one-time code to a number on file."""
        if not text:
            return None
        if intent is None:
            return await self._shared_phone(msg, text, conversation, send_code)
        binding: Optional[Binding] = None
        if msg.channel == "web":
            binding = await self.services.web_bindings.bound(conversation)
            asked = await self._number(conversation, text, binding)
            if asked is not None or binding is None:
                return asked
        identity = self.services.identity
        if CODE.fullmatch(text) and ((msg.channel == "web" and self.needs_code("web"))
                                     or await identity.awaiting_code(conversation)):
            attempt = await identity.complete_with_code(conversation, msg.channel, text.strip())
            return await self.verified_or_not(msg, conversation, intent, attempt)
        try:
            given = parse_dob(text)
        except InvalidDate as exc:
            return [replies.invalid_date(str(exc))]
        if given is None:
            return None  # not an answer: the bot takes the message, the question stays pending
        phone_idx = binding.phone_idx if binding is not None else phone_index(self.services.keys, msg.sender)
        return await self._date_of_birth(msg, conversation, intent, given, phone_idx, send_code)

    async def _number(self, conversation: str, text: str, binding: Optional[Binding]) -> Optional[List[str]]:
        """Web chat: the number on file. Bound whether or not anyone is on file at it, with the
        same reply either way; typed again, it replaces the one typed before (a typo), never
        one a secure link bound. None: not a number (a date of birth once bound: the next step)."""
        office = self.services.office
        if _holds_a_date(text):  # a date is the next step's answer, never a number
            return [replies.number_unreadable(office)] if binding is None else None
        number = find_number(text, self.services.cfg.default_region)
        if number is None:
            return [replies.number_unreadable(office)] if binding is None and looks_like_a_number(text) else None
        if binding is not None and binding.via == VIA_LINK:
            return [replies.ask_dob(office)]
        if binding is not None:  # a code on its way to the number typed before is void
            await self.services.identity.cancel_code_step(conversation)
        await self.services.web_bindings.bind(conversation, phone_index(self.services.keys, number), VIA_NUMBER)
        return [replies.ask_dob_after_number(office)]

    async def _date_of_birth(self, msg: Inbound, conversation: str, intent: str, given: date, phone_idx: str,
                             send_code: Optional[SendCode],
                             candidates: Optional[Sequence[Tuple[str, date]]] = None) -> List[str]:
        """Check ``given`` against the patients at ``phone_idx``; then the code, or the answer."""
        identity, office, audit = self.services.identity, self.services.office, self.services.audit
        if candidates is None:
            candidates = await self.services.appointments.birth_dates_at(phone_idx)
        if not self.needs_code(msg.channel):
            attempt = await identity.check_dob(conversation, msg.channel, given, candidates)
            return await self.verified_or_not(msg, conversation, intent, attempt)
        attempt = await identity.check_dob(conversation, msg.channel, given, candidates, then_code=True)
        if msg.channel == "web":  # the same reply, at once, whatever happened
            await audit.record(SYSTEM, "identity_verification", conversation,
                               "dob_matched" if attempt.verified else _outcome(attempt), {})
            if attempt.verified:
                self._in_background(self._send_code(msg, conversation, phone_idx, send_code), conversation)
            return [replies.code_sent_if_matched(office)]
        if not attempt.verified:
            return await self.verified_or_not(msg, conversation, intent, attempt)
        await audit.record(SYSTEM, "identity_verification", conversation, "dob_matched", {})
        if not await self._send_code(msg, conversation, phone_idx, send_code):
            return [replies.verification_failed(office)]
        return [replies.code_sent(office)]

    async def _send_code(self, msg: Inbound, conversation: str, phone_idx: str,
                         send_code: Optional[SendCode]) -> bool:
        """Text a fresh code to the number on file at ``phone_idx`` (on SMS, the sender's)."""
        if send_code is None:
            logger.error("no way to send a one-time code for conversation %s", conversation)
            return False
        to = msg.sender if msg.channel == "sms" else await self.services.appointments.number_on_file(phone_idx)
        if to is None:
            return False
        code = await self.services.identity.issue_code(conversation, recipient_idx=phone_idx)
        if code is None:  # past the hourly limits
            return False
        return await send_code(to, conversation, replies.one_time_code(self.services.office, code, msg.channel))

    def _in_background(self, sending: Awaitable[bool], conversation: str) -> None:
        task = asyncio.ensure_future(sending)
        self._sending.add(task)

        def done(finished: "asyncio.Future[bool]") -> None:
            self._sending.discard(finished)
            if finished.cancelled():
                return
            if finished.exception() is not None:
                logger.error("one-time code for conversation %s failed: %s", conversation,
                             finished.exception().__class__.__name__)
            elif not finished.result():
                logger.info("one-time code for conversation %s not sent", conversation)

        task.add_done_callback(done)

    async def _shared_phone(self, msg: Inbound, text: str, conversation: str,
                            send_code: Optional[SendCode]) -> Optional[List[str]]:
        """A date of birth given on its own in a verified conversation: the same patient's
        confirms, another patient's at the number switches to them (a verification attempt
        like any other). None for anything else: the bot's turn, the date masked, as before."""
        given = standalone_dob(text)
        if given is None:
            return None
        identity = self.services.identity
        session = await identity.session(conversation, msg.channel)
        if session is None:
            return None
        if msg.channel == "sms":
            phone_idx: Optional[str] = phone_index(self.services.keys, msg.sender)
        else:
            binding = await self.services.web_bindings.bound(conversation)
            phone_idx = binding.phone_idx if binding is not None else None
        if phone_idx is None:
            return None
        candidates = await self.services.appointments.birth_dates_at(phone_idx)
        if any(ref == session.patient_ref and hmac.compare_digest(born.isoformat(), given.isoformat())
               for ref, born in candidates):
            await self.services.audit.record(SYSTEM, "identity_verification", conversation, "confirmed", {})
            return [replies.same_patient(self.services.office)]
        await request_verification(identity, conversation, SWITCH)
        return await self._date_of_birth(msg, conversation, SWITCH, given, phone_idx, send_code, candidates)

    async def verified_or_not(self, msg: Inbound, conversation: str, intent: str, attempt: Attempt) -> List[str]:
        """Audit the attempt; on success, answer what the question was asked for."""
        services, office = self.services, self.services.office
        outcome = "switched" if attempt.verified and intent == SWITCH else _outcome(attempt)
        await services.audit.record(SYSTEM, "identity_verification", conversation, outcome, {})
        if not attempt.verified:
            if attempt.locked:  # someone is trying dates or codes here: a session there was ends too
                await asyncio.gather(services.identity.end(conversation),
                                     services.handoff.escalate(conversation, msg.channel, "verification_lockout",
                                                               "urgent"))
            elif intent == SWITCH:
                return [replies.switch_failed(office)]
            return [replies.verification_failed(office, msg.channel)]
        await clear_pending(services.identity, conversation)
        if intent == SWITCH:
            return [replies.switched(office)]
        if intent == JUST_VERIFY:
            return [replies.verified_ask_what(office)]
        if not intent.replace("_", "").isalpha():
            # Never passed to Rasa as a command; the patient is verified and asked what they need.
            return own_replies.fallback(office, conversation, "unknown_pending_intent")
        return await self.ask_bot(msg, "/" + intent, conversation)  # the gateway's own command, not patient text
