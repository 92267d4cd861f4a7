"""The bot's answer (Rasa), then the PHI egress guard on each reply; a holding message now and
the answer later when Rasa is slow; never silence where an answer is due."""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, List, Optional, Set

from bot.conversation import own_replies
from bot.conversation.idempotency import Idempotency
from bot.conversation.inbound import Inbound
from bot.conversation.phi_by_text import secure_link_reply
from bot.conversation.rasa_client import BotReply, RasaClient, RasaUnavailable, Reply
from bot.conversation.safety_answers import SafetyAnswers, Writes
from bot.core import phi
from bot.records.consent import ConsentState
from bot.safety.screen import CHECK, REDIRECT, Screening
from bot.services import Services
from bot.storage.audit import SYSTEM
from bot.storage.crypto import phone_index_from_conversation

logger = logging.getLogger(__name__)

# Delivers a late answer by the outbound API: (message, conversation, texts) -> delivered.
LateDelivery = Callable[[Inbound, str, List[str]], Awaitable[None]]


def _log_failure(done: "asyncio.Future", conversation: str) -> None:
    """A background answer's failure, logged (never the text) instead of lost."""
    if not done.cancelled() and done.exception() is not None:
        logger.error("late Rasa answer failed for conversation %s: %s", conversation,
                     done.exception().__class__.__name__)


class BotAnswers:
    def __init__(self, services: Services, rasa: RasaClient, alerts: SafetyAnswers,
                 idempotency: Idempotency) -> None:
        self.services = services
        self.rasa = rasa
        self.alerts = alerts
        self.idempotency = idempotency
        self._late: Set[asyncio.Future] = set()

    async def answer(self, msg: Inbound, rasa_text: str, screening: Screening, conversation: str,
                     finishing: Writes, holding_after: float, late_delivery: Optional[LateDelivery],
                     consent: Optional[ConsentState] = None) -> List[str]:
        """Rasa's answer; if it takes longer than the provider will wait (``holding_after``
        seconds), a holding message now and the answer later by ``late_delivery`` (the outbound
        API, through the outbound gate; None: no holding message). A message with
        danger words (``screening.concern``) gets Rasa's safety answer (the NLU's emergency
        intent, layers 3 and 4) or, if Rasa cannot give one in time, the safety check now.
        ``consent``: the number's consent as the message's first round trip read it (SMS)."""
        answer = asyncio.ensure_future(self.ask(msg, rasa_text, conversation, screening, consent))
        if screening.concern:
            try:
                out = await asyncio.wait_for(asyncio.shield(answer), holding_after)
            except asyncio.TimeoutError:
                logger.info("Rasa slow for conversation %s with a safety concern: safety check now", conversation)
                # Rasa's answer still comes (and alerts staff if it is a safety answer); a failure is logged.
                answer.add_done_callback(lambda done: _log_failure(done, conversation))
                out = []
            if out:
                return out
            return self.alerts.checked(msg, screening, conversation, finishing)
        if late_delivery is None or msg.channel != "sms":
            return await answer
        try:
            return await asyncio.wait_for(asyncio.shield(answer), holding_after)
        except asyncio.TimeoutError:
            logger.info("Rasa slow for conversation %s: holding message now, answer by API", conversation)
            follow_up = asyncio.ensure_future(self._deliver_late(msg, conversation, answer, late_delivery))
            self._late.add(follow_up)
            follow_up.add_done_callback(self._late.discard)
            return [own_replies.holding()]

    async def _deliver_late(self, msg: Inbound, conversation: str, answer: "asyncio.Future[List[str]]",
                            late_delivery: LateDelivery) -> None:
        # The holding message promised an answer: whatever happens to it, one is sent (the
        # outbound gate still stops it after an opt-out).
        office = self.services.office
        try:
            try:
                texts = await answer
            except Exception as exc:  # noqa: BLE001 - logged by class, the patient told we can't answer
                logger.error("late Rasa answer failed for conversation %s: %s", conversation, exc.__class__.__name__)
                texts = [own_replies.unavailable(office)]
            if not texts:  # ask() already stands in for an empty answer; this keeps the promise whatever it returns
                texts = own_replies.fallback(office, conversation, "late_empty")
            await self.remember_contact(msg, conversation)  # the bot may have escalated meanwhile
            self.idempotency.not_with_phi(msg.message_id)  # the webhook's stored answer is the holding message
            await late_delivery(msg, conversation, texts)
        except Exception:  # noqa: BLE001 - a background task must log, never vanish silently
            logger.exception("late delivery failed for conversation %s", conversation)

    async def remember_contact(self, msg: Inbound, conversation: str) -> None:
        """On an escalated SMS conversation, keep the number (sealed) so staff can text back."""
        if msg.channel == "sms":
            await self.services.handoff.remember_contact(conversation, msg.sender)

    async def drain(self, timeout: float = 15.0) -> None:
        """Wait for late deliveries in flight (shutdown, tests)."""
        if self._late:
            await asyncio.wait(list(self._late), timeout=timeout)

    async def ask(self, msg: Inbound, rasa_text: str, conversation: str,
                  screening: Optional[Screening] = None, consent: Optional[ConsentState] = None) -> List[str]:
        """Rasa, then the egress guard. On a message with danger words (``screening.concern``)
        only a safety answer is passed on: anything else, or no answer, returns [] and the
        caller gives the safety check. Any other message gets at least the fallback.
        ``consent``: the SMS number's consent if already read (else the guard reads it when a
        reply is PHI)."""
        concern = screening is not None and screening.concern is not None
        try:
            bot_replies = await self.rasa.send(conversation, rasa_text, msg.channel, msg.message_id,
                                               screening.risk if screening is not None else None)
        except RasaUnavailable as exc:
            logger.error("Rasa unavailable for conversation %s: %s", conversation, exc)
            return [] if concern else [own_replies.unavailable(self.services.office)]
        safety = next((r.safety for r in bot_replies if r.safety in (REDIRECT, CHECK)), None)
        if safety is not None:
            await self.alerts.alert_staff(msg, conversation, "nlu" if safety == REDIRECT else "net",
                                          [r.text for r in bot_replies])
        elif concern:
            logger.warning("Rasa gave an ordinary answer to a message with danger words in conversation %s; "
                           "safety check instead", conversation)
            return []
        allowed = await self._guarded(msg, conversation, bot_replies, consent)
        if not allowed and not concern:
            # Rasa answers 200 with no messages when a custom action fails (it logs the error,
            # drops the action's events and listens), or the guard blocked every reply.
            return own_replies.fallback(self.services.office, conversation,
                                        "all_blocked" if bot_replies else "empty_answer")
        return allowed

    async def _guarded(self, msg: Inbound, conversation: str, bot_replies: List[BotReply],
                       consent: Optional[ConsentState]) -> List[str]:
        """The replies the conversation may get (PHI only with a live verified session and, in an
        SMS body, the number's ``phi_by_text``), with blocked replies audited as an incident and
        disclosures accounted for. PHI blocked for want of ``phi_by_text`` is replaced by a
        secure link: the patient reads the answer in the secure chat, never gets silence."""
        audit = self.services.audit
        verified = await self.services.identity.session(conversation, msg.channel) is not None
        phi_replies = sum(1 for r in bot_replies if r.phi_class == phi.PHI)
        phone_idx = phone_index_from_conversation(conversation) if msg.channel == "sms" else None
        if phone_idx is not None and phi_replies and consent is None:
            consent = await self.services.consent.state(phone_idx)  # not read yet (after a verification)
        by_text = phone_idx is None or not phi_replies or consent.phi_by_text
        allowed = egress_guard(conversation, bot_replies, verified=verified, phi_in_body=by_text)
        disclosed = phi_replies if verified and by_text else 0
        if disclosed and msg.message_id:
            self.idempotency.answered_with_phi(msg.message_id)
        blocked = len(bot_replies) - len(allowed)
        if blocked:
            await audit.record(SYSTEM, "phi_reply_blocked", conversation, "incident",
                               {"blocked": blocked, **({} if by_text else {"phi_by_text": False})})
        if disclosed:  # an accounting of disclosures: PHI went to a verified patient
            await audit.record(SYSTEM, "phi_disclosed", conversation, "ok",
                               {"channel": msg.channel, "replies": disclosed})
        if not by_text:  # the action should have offered the link itself; the guard makes sure
            allowed.append(await secure_link_reply(self.services, conversation, phone_idx, None))
        return allowed


def egress_guard(conversation: str, bot_replies: List[BotReply], *, verified: bool, phi_in_body: bool) -> List[str]:
    """Drop (and log as an incident) any reply whose class the conversation may not get.
    ``phi_in_body``: whether PHI may go in this channel's message bodies at all (False: an SMS
    to a number without ``phi_by_text``)."""
    allowed = []
    for reply in bot_replies:
        if phi.egress_allowed(reply.phi_class, verified) and phi.sms_body_allowed(reply.phi_class, phi_in_body):
            allowed.append(Reply(reply.text, reply.choices) if reply.choices else reply.text)
        else:
            logger.critical("INCIDENT blocked a %r reply to conversation %s (verified: %s, PHI by text: %s)",
                            reply.phi_class, conversation, verified, phi_in_body)
    return allowed
