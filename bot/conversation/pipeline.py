"""The order of checks every inbound patient message goes through, whatever its channel.

The channel (SMS, web chat) has already authenticated the request and normalised the sender.
Then, in this order (see DESIGN.md):

2. idempotency: a message id seen before returns the first reply, with no second side effect;
3. rate limit per sender (SMS channel issue);
4. audit "received";
5. safety layers, before everything else that follows (bot.safety.screen): the rules and the
   risk classifier redirect at once; a message with danger words they let pass goes on to the
   NLU, whose emergency intent redirects, and otherwise gets the safety check, never an
   ordinary answer (also when Rasa is down or slow, the number has opted out, or staff hold
   the conversation);
6. opt-out / opt-in / HELP keywords;
7. hand-off: an escalated conversation (waiting for staff or held) goes to the staff inbox
   and the bot is silent; then, deterministically and
   before the NLU: the answer to a pending date-of-birth question (checked here, never passed
   to the bot), questions about another person (one neutral reply), replies to a pending
   appointment reminder (bot/records/reminders.py);
8. Rasa, then the PHI egress guard on each reply (PHI only with a live verified session);
   never silence: when that leaves nothing to send (Rasa answered nothing, every reply was
   blocked, a late answer came back empty), the bot's fallback is sent instead. Only the
   deliberate silences stay silent: an opted-out number, a conversation staff hold, and a
   message with danger words, whose empty answer from Rasa means "give the safety check".

Message text is never logged; conversations are referred to by their pseudonym.
"""
from __future__ import annotations

import asyncio
import json
import re
import logging
import unicodedata
from dataclasses import dataclass
from typing import Awaitable, Callable, List, Optional, Set

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from bot.core import phi, replies
from bot.storage.audit import SYSTEM, AuditLog
from bot.records.consent import ConsentRegistry, ConsentState
from bot.storage.crypto import KeyRing, conversation_id, phone_index
from bot.records.handoff import HandoffQueue
from bot.core.keywords import classify_keyword, is_opt_in_word, keyword_language
from bot.core.office import Office
from bot.records.outbound import OutboundGate
from bot.records.appointments import AppointmentStore
from bot.records.identity import (IdentityRegistry, InvalidDate, clear_pending, mask_dates, parse_dob,
                          pending_verification_on)
from bot.records.reminders import ReminderReplies
from bot.safety.detect import Emergency
from bot.safety.redirects import redirect_reply, safety_check_reply
from bot.safety.model import RiskClassifier
from bot.safety.screen import CHECK, REDIRECT, Screening, screen
from bot.conversation.rasa_client import BotReply, RasaClient, RasaUnavailable

logger = logging.getLogger(__name__)

IDEMPOTENCY_TTL_SECONDS = 48 * 3600  # providers retry for up to a day; keep twice that
PENDING = "pending"
MAX_TEXT_CHARS = 1600  # longest SMS concatenation carriers deliver


# A channel's rate limit: queues its count on the pipeline that makes a message's first
# round trip, and returns the reader of its verdict (True: admitted) from the results.
Admit = Callable[[Pipeline], Callable[[list], bool]]


class RateLimited(Exception):
    """The sender is over its rate limit; nothing was processed (the channel answers 429)."""


class RetryLater(Exception):
    """Nothing was processed and the sender should retry (the channel answers 503)."""


@dataclass(frozen=True)
class Pending:
    """A conversation's state the deterministic steps before the NLU (7.) need."""
    escalated: bool  # waiting for staff or held by them
    verification: Optional[str]  # the intent a pending date-of-birth question was asked for
    reminder: Optional[str]  # the appointment a pending reminder awaits an answer about


@dataclass(frozen=True)
class Inbound:
    channel: str  # "sms" | "web"
    sender: str  # E.164 number for SMS, session id for web chat
    text: str
    message_id: str
    media: int = 0  # attachments (MMS): never processed, the patient is told so


def for_rasa(text: str) -> str:
    """What the bot may see of a patient's text: no leading "/" (Rasa would read "/intent{...}"
    as a command, so a patient could inject intents and slots), full dates masked (a date of
    birth never reaches the tracker), and at most one concatenated SMS long."""
    return mask_dates(text.lstrip("/ \t"))[:MAX_TEXT_CHARS]


def clean_text(text: str) -> str:
    """Drop control and format characters (keep newlines) and trim. The whole text is kept:
    the detector reads all of it and the audit stores all of it; only Rasa gets a capped copy."""
    kept = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C")
    return kept.strip()


def _log_failure(done: "asyncio.Future", conversation: str) -> None:
    """A background answer's failure, logged (never the text) instead of lost."""
    if not done.cancelled() and done.exception() is not None:
        logger.error("late Rasa answer failed for conversation %s: %s", conversation,
                     done.exception().__class__.__name__)


class InboundPipeline:
    # Set by the app when an outbound sender exists: (message, conversation, texts) -> delivered later.
    late_delivery: Optional[Callable[[Inbound, str, List[str]], Awaitable[None]]] = None
    holding_after: float = 1.0  # seconds: past this the webhook answers with a holding message
    # Seconds a duplicate delivery waits for the first one's stored answer: the first answers
    # within the holding deadline (or Rasa's timeout where no holding message applies).
    duplicate_wait: float = 6.0
    # Set by the app when verification needs a one-time code: (message, conversation, text) -> sent.
    send_code: Optional[Callable[[Inbound, str, str], Awaitable[bool]]] = None
    # The safety gate's second layer (bot.safety.model), set by the app; without it the rules
    # and the safety net still run.
    classifier: Optional[RiskClassifier] = None

    def __init__(self, redis: aioredis.Redis, keys: KeyRing, rasa: RasaClient, office: Office, prefix: str) -> None:
        self.redis = redis
        self.keys = keys
        self.rasa = rasa
        self.office = office
        self.prefix = prefix
        self.consent = ConsentRegistry(redis, keys, prefix)
        self.audit = AuditLog(redis, keys, prefix)
        self.handoff = HandoffQueue(redis, prefix, keys, self.audit)
        self.outbound = OutboundGate(self.consent, self.audit)  # for what the gateway sends by API
        self._late: Set[asyncio.Future] = set()
        self._answered_with_phi: Set[str] = set()  # message ids whose answer carried PHI
        self.reminder_replies = ReminderReplies(redis, keys, prefix, office, self.audit)
        self.identity = IdentityRegistry(redis, keys, prefix)
        self.appointments = AppointmentStore(redis, keys, prefix)

    # -- replies the gateway gives on its own -----------------------------------------------
    def unavailable_reply(self) -> str:
        return (
            "Sorry, I can't answer right now. If this is an emergency, call 911. "
            f"Otherwise please call {self.office.name} at {self.office.phone}."
        )

    def holding_reply(self) -> str:
        return "Thanks, I'm looking into that. You'll get my answer in a moment."

    def media_reply(self) -> str:
        return (f"Sorry, we can't accept photos or attachments by text. Please describe it in words, "
                f"or call us at {self.office.phone}.")

    def empty_reply(self) -> str:
        return "Your message came through empty. How can I help? You can ask about your appointment or our office."

    def _fallback(self, conversation: str, reason: str) -> List[str]:
        """The bot's "say it another way" for a message that would otherwise get no answer:
        the patient cannot tell silence from a lost text, and the same message sent again is
        usually answered. Logged with the reason only, never the text."""
        logger.warning("no answer for conversation %s (%s): sending the fallback", conversation, reason)
        return [replies.rephrase(self.office)]

    # -- step 2: idempotency ----------------------------------------------------------------
    def _idem_key(self, msg: Inbound) -> str:
        # The sender is part of it: an id another sender also used (a web client chooses its own)
        # is another message, never a duplicate answered with someone else's reply.
        blind = self.keys.blind_index(f"{msg.sender}\x00{msg.message_id}", "message-id")[:40]
        return f"{self.prefix}idem:{msg.channel}:{blind}"

    async def _earlier_replies(self, msg: Inbound) -> List[str]:
        """The replies a message id already claimed got (its claim failed: a duplicate). If the
        first delivery is still being answered after ``duplicate_wait``, the holding message:
        a provider's retry never gets an empty answer, and the first delivery still answers."""
        key = self._idem_key(msg)
        deadline = asyncio.get_running_loop().time() + self.duplicate_wait
        while True:
            stored = await self.redis.get(key)
            stored = stored.decode() if isinstance(stored, bytes) else stored
            if stored and stored != PENDING:
                return json.loads(self.keys.decrypt_text(stored, key))
            if asyncio.get_running_loop().time() >= deadline:
                logger.info("duplicate %s delivery while the first is still being answered: holding message",
                            msg.channel)
                return [self.holding_reply()]
            await asyncio.sleep(0.05)

    async def _remember(self, msg: Inbound, texts: List[str]) -> None:
        key = self._idem_key(msg)
        sealed = self.keys.encrypt_text(json.dumps(texts), key)
        await self.redis.set(key, sealed, ex=IDEMPOTENCY_TTL_SECONDS)

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
        emergency = screening.emergency
        try:
            # One round trip for what every message needs first: the claim of its id (2.), the
            # rate limit's count (3.) and, for the keyword gate, the number's consent (6.).
            gated = emergency is None and msg.channel == "sms"
            phone_idx = phone_index(self.keys, msg.sender) if gated else ""
            async with self.redis.pipeline(transaction=True) as pipe:
                if msg.message_id:
                    pipe.set(self._idem_key(msg), PENDING, nx=True, ex=IDEMPOTENCY_TTL_SECONDS)
                admitted = admit(pipe) if admit is not None else None
                read_consent = self.consent.state_on(pipe, phone_idx) if gated else None
                results = await pipe.execute() if len(pipe) else []
            claimed = not msg.message_id or bool(results[0])
            consent = read_consent(results) if read_consent else None
            if admitted is not None and not admitted(results):
                if msg.message_id and claimed:  # this delivery claimed the id: let the provider's retry in
                    await self._release(msg)
                raise RateLimited()
            if not claimed:
                earlier = await self._earlier_replies(msg)
                logger.info("duplicate delivery of a %s message; replaying the first answer", msg.channel)
                return earlier
            conversation = conversation_id(self.keys, msg.channel, msg.sender)
            # Writes that need not come before the answer is decided, only before it is given,
            # collected on the way and made side by side at the end: one round trip's wait.
            finishing: List[Callable[[], Awaitable]] = []
            out = await self._process(msg, text, screening, conversation, consent, phone_idx, finishing)
            finishing.append(lambda: self.audit.record(SYSTEM, "message_sent", conversation, "ok",
                                                       {"channel": msg.channel, "replies": out}))
            if msg.message_id:
                # A replayed request must never fetch PHI again: whoever replays a captured,
                # signed webhook gets the answer on their HTTP connection, not on the phone.
                phi_sent = msg.message_id in self._answered_with_phi
                self._answered_with_phi.discard(msg.message_id)
                remembered = [replies.replayed_phi()] if phi_sent else out
                finishing.append(lambda: self._remember(msg, remembered))
            # Every write settles before anything else happens (a failure releases the claim).
            for result in await asyncio.gather(*(write() for write in finishing), return_exceptions=True):
                if isinstance(result, BaseException):
                    raise result
            return out
        except RateLimited:
            raise
        except Exception as exc:
            await self._release(msg)
            if emergency:  # whatever failed, a person in danger still gets the redirect
                logger.error("%s after an emergency was detected; sending the redirect anyway", exc.__class__.__name__)
                return [self._redirect(emergency, screening.language)]
            if screening.concern:  # ... and a message with danger words the safety check
                logger.error("%s on a message with danger words; sending the safety check anyway",
                             exc.__class__.__name__)
                return [self._safety_check(screening.language)]
            if not isinstance(exc, RedisError):
                raise
            logger.error("Redis unavailable (%s): failing closed", exc.__class__.__name__)
            if classify_keyword(text) in ("opt_out", "opt_in"):
                raise RetryLater("consent change could not be recorded") from None
            return [self.unavailable_reply()]

    async def _release(self, msg: Inbound) -> None:
        """Forget a claimed message id so the provider's retry is processed afresh."""
        if not msg.message_id:
            return
        try:
            await self.redis.delete(self._idem_key(msg))
        except RedisError:
            pass

    def screen(self, text: str) -> Screening:
        """The in-process safety layers' verdict on ``text`` (rules, classifier, the net's trigger)."""
        return screen(text, self.classifier) if text else Screening(None, None, "en")

    def _redirect(self, emergency: Emergency, language: str) -> str:
        return redirect_reply(emergency, self.office.phone, self.office.emergency, language)

    def _safety_check(self, language: str) -> str:
        return safety_check_reply(self.office.phone, self.office.emergency, language)

    async def _process(self, msg: Inbound, text: str, screening: Screening, conversation: str,
                       consent: Optional[ConsentState], phone_idx: str,
                       finishing: List[Callable[[], Awaitable]]) -> List[str]:
        # 4. Audit "received" (the body sealed in the event's details): the first event of the
        #    message in the audit trail. On the NLU path it is written before anything the
        #    message causes; the safety gate's answers are known at once, so there it is
        #    written beside the writes they cause, still chained first.
        def received() -> Awaitable:
            return self.audit.record(SYSTEM, "message_received", conversation, "ok",
                                     {"channel": msg.channel, "body": text})

        # 5. Emergencies first, whatever the consent or hand-off state; then
        # 6. opt-out / opt-in / HELP, deterministic, before the NLU (on SMS: ``consent`` was read
        #    for it). The keyword gate never escalates: its answers keep no number for staff.
        if screening.emergency is not None:
            finishing.insert(0, received)
            return self._emergency(msg, screening.emergency, screening.language, conversation, finishing)
        if consent is not None:
            if screening.concern and consent.opted_out and classify_keyword(text) is None:
                # Like a redirect, the safety check is the one message an opted-out number gets.
                finishing.insert(0, received)
                return self._checked(msg, screening, conversation, finishing)
            gate = await self._keywords(msg, text, conversation, phone_idx, consent, finishing, received)
            if gate is not None:
                return gate
        # What the steps of 7. need to know, read in one round trip beside "received" (reads
        # cause nothing, so the event still comes before anything the message causes).
        _, pending = await asyncio.gather(received(), self._pending(conversation))
        out = await self._decide(msg, text, screening, conversation, pending, finishing)
        logger.debug("conversation %s answered with %d message(s)", conversation, len(out))
        finishing.append(lambda: self._remember_contact(msg, conversation))  # the bot may have escalated
        return out

    async def _pending(self, conversation: str) -> Pending:
        async with self.redis.pipeline(transaction=False) as pipe:
            escalated = self.handoff.active_on(pipe, conversation)
            verification = pending_verification_on(self.identity, pipe, conversation)
            reminder = self.reminder_replies.pending_on(pipe, conversation)
            results = await pipe.execute()
        return Pending(escalated(results), verification(results), reminder(results))

    async def _decide(self, msg: Inbound, text: str, screening: Screening, conversation: str, pending: Pending,
                      finishing: List[Callable[[], Awaitable]]) -> List[str]:
        # 7. An escalated conversation, waiting for staff or held by them: the message goes to
        #    the staff inbox and the bot is silent until staff hand it back; a message with
        #    danger words still gets the safety check (and raises the conversation to urgent).
        if pending.escalated:
            if screening.concern:
                return self._checked(msg, screening, conversation, finishing)
            if text:
                await self.handoff.post_to_inbox(conversation, self.keys.encrypt_text(text, self.handoff.inbox_key(conversation)))
            return []

        # 7b. The date of birth asked for before PHI: checked here, never passed to the bot.
        verification = await self._verification(msg, text, conversation, pending.verification)
        if verification is not None:
            return verification

        # 7c. Questions about another person get the neutral reply, whether or not they are a patient
        #     (a message with danger words goes on to the NLU's emergency intent and the safety net).
        if not screening.concern and phi.mentions_someone_else(text):
            return [replies.someone_else(self.office)]

        # 7d. An answer to a pending appointment reminder ("C", "R", "can't make it").
        if msg.channel == "sms" and text and pending.reminder and not screening.concern:
            answer = await self.reminder_replies.answer(conversation, msg.channel, text, pending.reminder)
            if answer is not None:
                return answer

        if msg.media:
            await self.audit.record(SYSTEM, "media_refused", conversation, "not_processed", {"count": msg.media})
            if not text:
                return [self.media_reply()]
            return [*(await self._bot(msg, text, screening, conversation, finishing)), self.media_reply()]
        if not text:
            return [self.empty_reply()]
        return await self._bot(msg, text, screening, conversation, finishing)

    async def _verification(self, msg: Inbound, text: str, conversation: str,
                            intent: Optional[str]) -> Optional[List[str]]:
        """``intent``: what a pending date-of-birth question was asked for, if one is pending."""
        if intent is None or not text:
            return None
        if await self.identity.awaiting_code(conversation) and re.fullmatch(r"\s*\d{6}\s*", text):
            attempt = await self.identity.complete_with_code(conversation, msg.channel, text.strip())
            return await self._verified_or_not(msg, conversation, intent, attempt)
        try:
            given = parse_dob(text)
        except InvalidDate as exc:
            return [replies.invalid_date(str(exc))]
        if given is None:
            return None  # not an answer: the bot takes the message, the question stays pending
        candidates = (await self.appointments.birth_dates_at(phone_index(self.keys, msg.sender))
                      if msg.channel == "sms" else [])
        with_code = self.send_code is not None
        attempt = await self.identity.check_dob(conversation, msg.channel, given, candidates, then_code=with_code)
        if attempt.verified and with_code:
            code = await self.identity.issue_code(conversation)
            await self.audit.record(SYSTEM, "identity_verification", conversation, "dob_matched", {})
            if code is None or not await self.send_code(msg, conversation, replies.one_time_code(self.office, code)):
                return [replies.verification_failed(self.office)]
            return [replies.code_sent(self.office)]
        return await self._verified_or_not(msg, conversation, intent, attempt)

    async def _verified_or_not(self, msg: Inbound, conversation: str, intent: str, attempt) -> List[str]:
        outcome = "verified" if attempt.verified else f"locked_{attempt.locked}" if attempt.locked else "failed"
        await self.audit.record(SYSTEM, "identity_verification", conversation, outcome, {})
        if not attempt.verified:
            if attempt.locked:
                await self.handoff.escalate(conversation, msg.channel, "verification_lockout", "urgent")
            return [replies.verification_failed(self.office)]
        await clear_pending(self.identity, conversation)
        if not intent.replace("_", "").isalpha():
            # Never passed to Rasa as a command; the patient is verified and asked what they need.
            return self._fallback(conversation, "unknown_pending_intent")
        return await self._ask_rasa(msg, "/" + intent, conversation)  # the gateway's own command, not patient text

    async def _bot(self, msg: Inbound, text: str, screening: Screening, conversation: str,
                   finishing: List[Callable[[], Awaitable]]) -> List[str]:
        """Rasa's answer; if it takes longer than the provider will wait, a holding message now
        and the answer later by the outbound API (through the outbound gate). A message with
        danger words (``screening.concern``) gets Rasa's safety answer (the NLU's emergency
        intent, layers 3 and 4) or, if Rasa cannot give one in time, the safety check now."""
        answer = asyncio.ensure_future(self._ask_rasa(msg, for_rasa(text), conversation, screening))
        if screening.concern:
            try:
                out = await asyncio.wait_for(asyncio.shield(answer), self.holding_after)
            except asyncio.TimeoutError:
                logger.info("Rasa slow for conversation %s with a safety concern: safety check now", conversation)
                # Rasa's answer still comes (and alerts staff if it is a safety answer); a failure is logged.
                answer.add_done_callback(lambda done: _log_failure(done, conversation))
                out = []
            if out:
                return out
            return self._checked(msg, screening, conversation, finishing)
        if self.late_delivery is None or msg.channel != "sms":
            return await answer
        try:
            return await asyncio.wait_for(asyncio.shield(answer), self.holding_after)
        except asyncio.TimeoutError:
            logger.info("Rasa slow for conversation %s: holding message now, answer by API", conversation)
            follow_up = asyncio.ensure_future(self._deliver_late(msg, conversation, answer))
            self._late.add(follow_up)
            follow_up.add_done_callback(self._late.discard)
            return [self.holding_reply()]

    async def _deliver_late(self, msg: Inbound, conversation: str, answer: "asyncio.Future[List[str]]") -> None:
        # The holding message promised an answer: whatever happens to it, one is sent (the
        # outbound gate still stops it after an opt-out).
        try:
            try:
                texts = await answer
            except Exception as exc:  # noqa: BLE001 - logged by class, the patient told we can't answer
                logger.error("late Rasa answer failed for conversation %s: %s", conversation, exc.__class__.__name__)
                texts = [self.unavailable_reply()]
            if not texts:  # _ask_rasa already stands in for an empty answer; this keeps the promise whatever it returns
                texts = self._fallback(conversation, "late_empty")
            await self._remember_contact(msg, conversation)  # the bot may have escalated meanwhile
            self._answered_with_phi.discard(msg.message_id)  # the webhook's stored answer is the holding message
            await self.late_delivery(msg, conversation, texts)
        except Exception:  # noqa: BLE001 - a background task must log, never vanish silently
            logger.exception("late delivery failed for conversation %s", conversation)

    async def _remember_contact(self, msg: Inbound, conversation: str) -> None:
        """On an escalated SMS conversation, keep the number (sealed) so staff can text back."""
        if msg.channel == "sms":
            await self.handoff.remember_contact(conversation, msg.sender)

    async def drain(self, timeout: float = 15.0) -> None:
        """Wait for late deliveries in flight (shutdown, tests)."""
        if self._late:
            await asyncio.wait(list(self._late), timeout=timeout)

    async def _ask_rasa(self, msg: Inbound, rasa_text: str, conversation: str,
                        screening: Optional[Screening] = None) -> List[str]:
        # 8. Rasa, then the egress guard. On a message with danger words (``screening.concern``)
        #    only a safety answer is passed on: anything else, or no answer, returns [] and the
        #    caller gives the safety check. Any other message gets at least the fallback.
        concern = screening is not None and screening.concern is not None
        try:
            bot_replies = await self.rasa.send(conversation, rasa_text, msg.channel, msg.message_id,
                                               screening.risk if screening is not None else None)
        except RasaUnavailable as exc:
            logger.error("Rasa unavailable for conversation %s: %s", conversation, exc)
            return [] if concern else [self.unavailable_reply()]
        safety = next((r.safety for r in bot_replies if r.safety in (REDIRECT, CHECK)), None)
        if safety is not None:
            await self._alert_staff(msg, conversation, "nlu" if safety == REDIRECT else "net",
                                    [r.text for r in bot_replies])
        elif concern:
            logger.warning("Rasa gave an ordinary answer to a message with danger words in conversation %s; "
                           "safety check instead", conversation)
            return []
        verified = await self.identity.session(conversation, msg.channel) is not None
        allowed = self.egress_guard(conversation, bot_replies, verified=verified)
        if verified and msg.message_id and any(r.phi_class == phi.PHI for r in bot_replies):
            self._answered_with_phi.add(msg.message_id)
        blocked = len(bot_replies) - len(allowed)
        if blocked:
            await self.audit.record(SYSTEM, "phi_reply_blocked", conversation, "incident", {"blocked": blocked})
        disclosed = [r.phi_class for r in bot_replies if r.phi_class == phi.PHI and verified]
        if disclosed:  # an accounting of disclosures: PHI went to a verified patient
            await self.audit.record(SYSTEM, "phi_disclosed", conversation, "ok",
                                    {"channel": msg.channel, "replies": len(disclosed)})
        if not allowed and not concern:
            # Rasa answers 200 with no messages when a custom action fails (it logs the error,
            # drops the action's events and listens), or the guard blocked every reply.
            return self._fallback(conversation, "all_blocked" if bot_replies else "empty_answer")
        return allowed

    def _emergency(self, msg: Inbound, emergency: Emergency, language: str, conversation: str,
                   finishing: List[Callable[[], Awaitable]]) -> List[str]:
        """The redirect, at once. Staff are alerted (the conversation queued at emergency
        priority, with the number to text back) and the audit and the staff log told, by writes
        added to the last ones: side by side, so the redirect waits for about two round trips,
        not one per write. If any of them fails the redirect is still given (handle)."""
        logger.warning("EMERGENCY redirect (%s, %s %s) for conversation %s; staff alerted",
                       emergency.category, emergency.layer, emergency.rule, conversation)
        redirect = self._redirect(emergency, language)
        finishing += [
            lambda: self.audit.record(SYSTEM, "emergency_redirect", conversation, "redirected",
                                      {"category": emergency.category, "rule": emergency.rule,
                                       "layer": emergency.layer, "language": language}),
            lambda: self.handoff.escalate(conversation, msg.channel, "emergency_follow_up", "emergency",
                                          contact=msg.sender if msg.channel == "sms" else None),
            # The staff member following up sees what the patient wrote and what they were told.
            lambda: self.handoff.post_exchange(conversation, self.keys.encrypt_text(
                clean_text(msg.text), self.handoff.inbox_key(conversation)), redirect, SYSTEM)]
        return [redirect]

    def _checked(self, msg: Inbound, screening: Screening, conversation: str,
                 finishing: List[Callable[[], Awaitable]]) -> List[str]:
        """The safety net's answer: the safety check, and an urgent staff alert with what the
        patient wrote and what they were told, by writes added to the last ones (as
        :meth:`_emergency`)."""
        logger.warning("SAFETY CHECK (danger words: %s) for conversation %s; staff alerted",
                       screening.concern, conversation)
        check = self._safety_check(screening.language)
        finishing += [
            lambda: self.audit.record(SYSTEM, "safety_check", conversation, "checked",
                                      {"concern": screening.concern, "layer": "net", "language": screening.language}),
            lambda: self.handoff.escalate(conversation, msg.channel, "safety_check", "urgent",
                                          contact=msg.sender if msg.channel == "sms" else None),
            lambda: self.handoff.post_exchange(conversation, self.keys.encrypt_text(
                clean_text(msg.text), self.handoff.inbox_key(conversation)), check, SYSTEM)]
        return [check]

    async def _alert_staff(self, msg: Inbound, conversation: str, layer: str, answer: List[str]) -> None:
        """Staff alerted to a safety answer the NLU gave (its emergency intent: ``nlu``, the
        emergency queue; the safety net inside Rasa: ``net``, urgent), with the exchange."""
        emergency = layer == "nlu"
        logger.warning("%s from the NLU for conversation %s; staff alerted",
                       "EMERGENCY redirect" if emergency else "SAFETY CHECK", conversation)
        sealed = self.keys.encrypt_text(clean_text(msg.text), self.handoff.inbox_key(conversation))
        results = await asyncio.gather(
            self.audit.record(SYSTEM, "emergency_redirect" if emergency else "safety_check", conversation,
                              "redirected" if emergency else "checked", {"layer": layer}),
            self.handoff.escalate(conversation, msg.channel, "emergency_follow_up" if emergency else "safety_check",
                                  "emergency" if emergency else "urgent",
                                  contact=msg.sender if msg.channel == "sms" else None),
            self.handoff.post_exchange(conversation, sealed, " ".join(answer), SYSTEM),
            return_exceptions=True)
        for result in results:  # the answer is given even if alerting failed; the failure is loud
            if isinstance(result, BaseException):
                logger.critical("could not alert staff to a safety answer for conversation %s: %s",
                                conversation, result.__class__.__name__)

    async def _keywords(self, msg: Inbound, text: str, conversation: str, phone_idx: str, state: ConsentState,
                        finishing: List[Callable[[], Awaitable]],
                        received: Callable[[], Awaitable]) -> Optional[List[str]]:
        """The keyword gate's answer, or None to let the message go on to the bot (the caller
        then records ``received``). The gate's answers are known before any write, so the
        "received" event goes beside the consent change, or with the last writes when nothing
        changes; the consent change is made before the answer, its audit event and the end of
        a verified session go with the last writes, still before the answer is sent."""
        keyword = classify_keyword(text)
        language = keyword_language(text)
        if keyword == "opt_out" and not state.opted_out:
            # Effective before the reply; the "received" event is chained first either way.
            await asyncio.gather(received(), self.consent.record_opt_out(phone_idx, "keyword", text))
            finishing.append(lambda: self.audit.record(SYSTEM, "consent_opt_out", conversation, "recorded",
                                                       {"source": "keyword"}))
            finishing.append(lambda: self.identity.end(conversation))  # an opt-out also ends a verified session
            logger.info("opt-out recorded for conversation %s", conversation)
            return [replies.opted_out(self.office, language)]
        if keyword == "opt_in" or (state.opted_out and is_opt_in_word(text)):
            await asyncio.gather(received(), self.consent.record_opt_in(phone_idx, "keyword", text))
            finishing.append(lambda: self.audit.record(SYSTEM, "consent_opt_in", conversation, "recorded",
                                                       {"source": "keyword"}))
            logger.info("opt-in recorded for conversation %s", conversation)
            return [replies.opted_in(self.office, language)]
        if state.opted_out:
            answer: List[str] = []  # no message of any kind until the number opts back in (a second STOP too)
        elif keyword == "help":
            answer = [replies.help_text(self.office, language)]
        else:
            return None
        finishing.insert(0, received)  # nothing changes: the event goes with the last writes
        return answer

    def egress_guard(self, conversation: str, bot_replies: List[BotReply], verified: bool) -> List[str]:
        """Drop (and log as an incident) any reply whose class the conversation may not get."""
        allowed = []
        for reply in bot_replies:
            if phi.egress_allowed(reply.phi_class, verified):
                allowed.append(reply.text)
            else:
                logger.critical(
                    "INCIDENT blocked a %r reply to unverified conversation %s", reply.phi_class, conversation
                )
        return allowed
