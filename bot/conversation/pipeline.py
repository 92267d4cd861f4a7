"""The order of checks every inbound patient message goes through, whatever its channel.

The channel (SMS, web chat) has already authenticated the request and normalised the sender
into an :class:`~bot.conversation.inbound.Inbound`. Then, in this order:

2. idempotency: a message id seen before returns the first reply, with no second side effect
   (bot/conversation/idempotency.py);
3. the channel's rate limit per sender, counted in the same round trip;
4. audit "received";
5. safety layers, before everything else that follows (bot/safety/screen.py): the rules and the
   risk classifier redirect at once; a message with danger words they let pass goes on to the
   NLU, whose emergency intent redirects, and otherwise gets the safety check, never an
   ordinary answer (also when Rasa is down or slow, the number has opted out, or staff hold
   the conversation) (bot/conversation/safety_answers.py);
6. opt-out / opt-in / HELP keywords (bot/conversation/keyword_gate.py); in web chat, which
   changes no SMS consent, its own answers to them and "sign out" (web_commands.py);
7. hand-off: an escalated conversation (waiting for staff or held) goes to the staff inbox
   and the bot is silent; then, deterministically and before the NLU: the answer to a pending
   verification question (number on file in web chat, date of birth, code) and a date of
   birth that switches a shared phone's session (bot/conversation/verification.py, never
   passed to the bot),
   questions about another person (one neutral reply), replies to a pending appointment
   reminder (bot/records/reminders.py);
8. Rasa, then the PHI egress guard on each reply (bot/conversation/bot_answer.py); never
   silence: when that leaves nothing to send, the bot's fallback is sent instead. Only the
   deliberate silences stay silent: an opted-out number, a conversation staff hold, and a
   message with danger words, whose empty answer from Rasa means "give the safety check".

This module only orders the steps; each lives in its own module. Message text is never
logged; conversations are referred to by their pseudonym.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, List, Optional, Tuple

from redis.exceptions import RedisError

from bot.conversation import own_replies
from bot.conversation.bot_answer import BotAnswers, LateDelivery
from bot.conversation.idempotency import Idempotency
from bot.conversation.inbound import Admit, Inbound, Pending, RateLimited, RetryLater, clean_text, for_rasa
from bot.conversation.keyword_gate import KeywordGate
from bot.conversation.rasa_client import RasaClient
from bot.conversation.safety_answers import SafetyAnswers, Writes
from bot.conversation.verification import SendCode, Verification
from bot.conversation.web_commands import WebCommands
from bot.core import phi, replies
from bot.core.keywords import classify_keyword
from bot.records.consent import ConsentState
from bot.records.identity import pending_verification_on
from bot.records.secure_links import redact
from bot.safety.model import RiskClassifier
from bot.safety.screen import Screening, screen
from bot.services import Services
from bot.storage.audit import SYSTEM
from bot.storage.crypto import conversation_id, phone_index

logger = logging.getLogger(__name__)


class InboundPipeline:
    # Set by the app when an outbound sender exists: late answers go out by the outbound API.
    late_delivery: Optional[LateDelivery] = None
    holding_after: float = 1.0  # seconds: past this the webhook answers with a holding message
    # Seconds a duplicate delivery waits for the first one's stored answer: the first answers
    # within the holding deadline (or Rasa's timeout where no holding message applies).
    duplicate_wait: float = 6.0
    # Set by the app: how one-time codes are texted to a number on file (web chat always
    # needs them; SMS with IDV_REQUIRE_CODE).
    send_code: Optional[SendCode] = None
    # The safety gate's second layer (bot.safety.model), set by the app; without it the rules
    # and the safety net still run.
    classifier: Optional[RiskClassifier] = None

    def __init__(self, services: Services, rasa: RasaClient) -> None:
        self.services = services
        self.rasa = rasa
        self.idempotency = Idempotency(services.redis, services.keys, services.cfg.redis_prefix)
        self.safety = SafetyAnswers(services)
        self.keywords = KeywordGate(services)
        self.bot = BotAnswers(services, rasa, self.safety, self.idempotency)
        self.verification = Verification(services, self.bot.ask)
        self.web_commands = WebCommands(services)

    def screen(self, text: str) -> Screening:
        """The in-process safety layers' verdict on ``text`` (rules, classifier, the net's trigger)."""
        return screen(text, self.classifier) if text else Screening(None, None, "en")

    async def drain(self, timeout: float = 15.0) -> None:
        """Wait for late deliveries and one-time codes in flight (shutdown, tests)."""
        await asyncio.gather(self.bot.drain(timeout), self.verification.drain(timeout))

    # -- the whole path ---------------------------------------------------------------------
    async def handle(self, msg: Inbound, admit: Optional[Admit] = None) -> List[str]:
        """Process one authenticated, normalised message; return the texts to send back.

        Raises :class:`RetryLater` when a consent change could not be recorded: the provider
        must retry rather than the patient be told an opt-out happened that did not.
        ``admit`` is the channel's rate limit (3.), counted in the same round trip as the
        claim (:data:`Admit`); :class:`RateLimited` is raised, with nothing processed, when it
        says no.
        """
        text = clean_text(msg.text)
        # Pure and in-process: known before any I/O, so it survives a Redis or Rasa outage.
        screening = self.screen(text)
        try:
            claimed, consent, phone_idx = await self._first_round_trip(msg, screening, admit)
            if not claimed:
                earlier = await self.idempotency.earlier_replies(msg, self.duplicate_wait)
                logger.info("duplicate delivery of a %s message; replaying the first answer", msg.channel)
                return earlier
            conversation = conversation_id(self.services.keys, msg.channel, msg.sender)
            # Writes that need not come before the answer is decided, only before it is given,
            # collected on the way and made side by side at the end: one round trip's wait.
            finishing: Writes = []
            out = await self._process(msg, text, screening, conversation, consent, phone_idx, finishing)
            await self._finish(msg, conversation, out, finishing)
            return out
        except RateLimited:
            raise
        except Exception as exc:
            await self.idempotency.release(msg)
            return self._despite(exc, text, screening)

    async def _first_round_trip(self, msg: Inbound, screening: Screening,
                                admit: Optional[Admit]) -> Tuple[bool, Optional[ConsentState], str]:
        """One round trip for what every message needs first: the claim of its id (2.), the
        rate limit's count (3.) and, for the keyword gate, the number's consent (6.). Returns
        (claimed, consent, phone index); raises :class:`RateLimited`."""
        gated = screening.emergency is None and msg.channel == "sms"
        phone_idx = phone_index(self.services.keys, msg.sender) if gated else ""
        async with self.services.redis.pipeline(transaction=True) as pipe:
            if msg.message_id:
                self.idempotency.claim_on(pipe, msg)
            admitted = admit(pipe) if admit is not None else None
            read_consent = self.services.consent.state_on(pipe, phone_idx) if gated else None
            results = await pipe.execute() if len(pipe) else []
        claimed = not msg.message_id or bool(results[0])
        if admitted is not None and not admitted(results):
            if msg.message_id and claimed:  # this delivery claimed the id: let the provider's retry in
                await self.idempotency.release(msg)
            raise RateLimited()
        return claimed, read_consent(results) if read_consent else None, phone_idx

    async def _finish(self, msg: Inbound, conversation: str, out: List[str], finishing: Writes) -> None:
        """The last writes, side by side: the "sent" event and the answer kept for replays.
        Every write settles before anything else happens (a failure releases the claim)."""
        audit = self.services.audit
        finishing.append(lambda: audit.record(SYSTEM, "message_sent", conversation, "ok",  # a link's token is not kept
                                              {"channel": msg.channel, "replies": [redact(r) for r in out]}))
        if msg.message_id:
            remembered = self.idempotency.to_remember(msg, out)
            finishing.append(lambda: self.idempotency.remember(msg, remembered))
        for result in await asyncio.gather(*(write() for write in finishing), return_exceptions=True):
            if isinstance(result, BaseException):
                raise result

    def _despite(self, exc: Exception, text: str, screening: Screening) -> List[str]:
        """The answer when processing failed: the redirect or the safety check whatever failed;
        on a Redis failure, fail closed (a consent change is retried by the provider)."""
        if screening.emergency:  # whatever failed, a person in danger still gets the redirect
            logger.error("%s after an emergency was detected; sending the redirect anyway", exc.__class__.__name__)
            return [self.safety.redirect(screening.emergency, screening.language)]
        if screening.concern:  # ... and a message with danger words the safety check
            logger.error("%s on a message with danger words; sending the safety check anyway",
                         exc.__class__.__name__)
            return [self.safety.check(screening.language)]
        if not isinstance(exc, RedisError):
            raise exc
        logger.error("Redis unavailable (%s): failing closed", exc.__class__.__name__)
        if classify_keyword(text) in ("opt_out", "opt_in"):
            raise RetryLater("consent change could not be recorded") from None
        return [own_replies.unavailable(self.services.office)]

    async def _process(self, msg: Inbound, text: str, screening: Screening, conversation: str,
                       consent: Optional[ConsentState], phone_idx: str, finishing: Writes) -> List[str]:
        # 4. Audit "received" (the body sealed in the event's details): the first event of the
        #    message in the audit trail. On the NLU path it is written before anything the
        #    message causes; the safety gate's answers are known at once, so there it is
        #    written beside the writes they cause, still chained first.
        def received() -> Awaitable:
            return self.services.audit.record(SYSTEM, "message_received", conversation, "ok",
                                              {"channel": msg.channel, "body": text})

        # 5. Emergencies first, whatever the consent or hand-off state; then
        # 6. opt-out / opt-in / HELP, deterministic, before the NLU (on SMS: ``consent`` was read
        #    for it). The keyword gate never escalates: its answers keep no number for staff.
        if screening.emergency is not None:
            finishing.insert(0, received)
            return self.safety.emergency(msg, screening.emergency, screening.language, conversation, finishing)
        if msg.channel == "web" and not screening.concern:
            chat = await self.web_commands.answer(text, conversation, finishing, received)
            if chat is not None:
                return chat
        if consent is not None:
            if screening.concern and consent.opted_out and classify_keyword(text) is None:
                # Like a redirect, the safety check is the one message an opted-out number gets.
                finishing.insert(0, received)
                return self.safety.checked(msg, screening, conversation, finishing)
            gate = await self.keywords.answer(msg, text, conversation, phone_idx, consent, finishing, received)
            if gate is not None:
                return gate
        # What the steps of 7. need to know, read in one round trip beside "received" (reads
        # cause nothing, so the event still comes before anything the message causes).
        _, pending = await asyncio.gather(received(), self._pending(conversation))
        out = await self._decide(msg, text, screening, conversation, pending, finishing, consent)
        logger.debug("conversation %s answered with %d message(s)", conversation, len(out))
        finishing.append(lambda: self.bot.remember_contact(msg, conversation))  # the bot may have escalated
        return out

    async def _pending(self, conversation: str) -> Pending:
        services = self.services
        async with services.redis.pipeline(transaction=False) as pipe:
            escalated = services.handoff.active_on(pipe, conversation)
            verification = pending_verification_on(services.identity, pipe, conversation)
            reminder = services.reminder_replies.pending_on(pipe, conversation)
            results = await pipe.execute()
        return Pending(escalated(results), verification(results), reminder(results))

    async def _decide(self, msg: Inbound, text: str, screening: Screening, conversation: str, pending: Pending,
                      finishing: Writes, consent: Optional[ConsentState] = None) -> List[str]:
        # 7. An escalated conversation, waiting for staff or held by them: the message goes to
        #    the staff inbox and the bot is silent until staff hand it back; a message with
        #    danger words still gets the safety check (and raises the conversation to urgent).
        if pending.escalated:
            return await self._to_staff(msg, text, screening, conversation, finishing)

        # 7b. Verification (number on file, date of birth, code) asked for before PHI, and a
        #     shared phone's date of birth: checked here, never passed to the bot.
        verification = await self.verification.answer(msg, text, conversation, pending.verification,
                                                      self.send_code)
        if verification is not None:
            return verification

        office = self.services.office
        # 7c. Questions about another person get the neutral reply, whether or not they are a patient
        #     (a message with danger words goes on to the NLU's emergency intent and the safety net).
        if not screening.concern and phi.mentions_someone_else(text):
            return [replies.someone_else(office)]

        # 7d. An answer to a pending appointment reminder ("C", "R", "can't make it").
        if msg.channel == "sms" and text and pending.reminder and not screening.concern:
            answer = await self.services.reminder_replies.answer(conversation, msg.channel, text, pending.reminder)
            if answer is not None:
                return answer

        if msg.media:
            await self.services.audit.record(SYSTEM, "media_refused", conversation, "not_processed",
                                             {"count": msg.media})
            if not text:
                return [own_replies.media(office)]
            return [*(await self._ask_bot(msg, text, screening, conversation, finishing, consent)),
                    own_replies.media(office)]
        if not text:
            return [own_replies.empty()]
        return await self._ask_bot(msg, text, screening, conversation, finishing, consent)

    async def _to_staff(self, msg: Inbound, text: str, screening: Screening, conversation: str,
                        finishing: Writes) -> List[str]:
        """A message on an escalated conversation: to the staff inbox, the bot silent."""
        if screening.concern:
            return self.safety.checked(msg, screening, conversation, finishing)
        if text:
            handoff = self.services.handoff
            await handoff.post_to_inbox(conversation,
                                        self.services.keys.encrypt_text(text, handoff.inbox_key(conversation)))
        return []

    def _ask_bot(self, msg: Inbound, text: str, screening: Screening, conversation: str,
                 finishing: Writes, consent: Optional[ConsentState]) -> Awaitable[List[str]]:
        # ``consent`` (SMS): read in the first round trip; the egress guard reuses it.
        return self.bot.answer(msg, for_rasa(text), screening, conversation, finishing,
                               self.holding_after, self.late_delivery, consent)

