"""The gateway's safety answers: the redirect (911, 988, Poison Help) for an emergency and the
safety check for danger words, each with an alert to staff and an audit event. Given whatever
else fails: a person in danger is never left without the redirect or the check."""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, List

from bot.conversation.inbound import Inbound, clean_text
from bot.safety.detect import Emergency
from bot.safety.redirects import redirect_reply, safety_check_reply
from bot.safety.screen import Screening
from bot.services import Services
from bot.storage.audit import SYSTEM

logger = logging.getLogger(__name__)

Writes = List[Callable[[], Awaitable]]  # writes made side by side before the answer is given


class SafetyAnswers:
    def __init__(self, services: Services) -> None:
        self.services = services

    def redirect(self, emergency: Emergency, language: str) -> str:
        office = self.services.office
        return redirect_reply(emergency, office.phone, office.emergency, language)

    def check(self, language: str) -> str:
        office = self.services.office
        return safety_check_reply(office.phone, office.emergency, language)

    def _sealed(self, msg: Inbound, conversation: str) -> str:
        """What the patient wrote, sealed for the staff member following up."""
        handoff = self.services.handoff
        return self.services.keys.encrypt_text(clean_text(msg.text), handoff.inbox_key(conversation))

    def emergency(self, msg: Inbound, emergency: Emergency, language: str, conversation: str,
                  finishing: Writes) -> List[str]:
        """The redirect, at once. Staff are alerted (the conversation queued at emergency
        priority, with the number to text back) and the audit and the staff log told, by writes
        added to the last ones: side by side, so the redirect waits for about two round trips,
        not one per write. If any of them fails the redirect is still given (the pipeline)."""
        logger.warning("EMERGENCY redirect (%s, %s %s) for conversation %s; staff alerted",
                       emergency.category, emergency.layer, emergency.rule, conversation)
        redirect = self.redirect(emergency, language)
        details = {"category": emergency.category, "rule": emergency.rule, "layer": emergency.layer,
                   "language": language}
        self._alert_with(finishing, msg, conversation, redirect, ("emergency_redirect", "redirected", details),
                         ("emergency_follow_up", "emergency"))
        return [redirect]

    def checked(self, msg: Inbound, screening: Screening, conversation: str, finishing: Writes) -> List[str]:
        """The safety net's answer: the safety check, and an urgent staff alert with what the
        patient wrote and what they were told, by writes added to the last ones (as
        :meth:`emergency`)."""
        logger.warning("SAFETY CHECK (danger words: %s) for conversation %s; staff alerted",
                       screening.concern, conversation)
        check = self.check(screening.language)
        details = {"concern": screening.concern, "layer": "net", "language": screening.language}
        self._alert_with(finishing, msg, conversation, check, ("safety_check", "checked", details),
                         ("safety_check", "urgent"))
        return [check]

    def _alert_with(self, finishing: Writes, msg: Inbound, conversation: str, answer: str,
                    event: tuple, escalation: tuple) -> None:
        """Add the audit event, the escalation and the staff log's exchange to ``finishing``."""
        audit, handoff = self.services.audit, self.services.handoff
        action, outcome, details = event
        reason, priority = escalation
        contact = msg.sender if msg.channel == "sms" else None
        finishing += [
            lambda: audit.record(SYSTEM, action, conversation, outcome, details),
            lambda: handoff.escalate(conversation, msg.channel, reason, priority, contact=contact),
            # The staff member following up sees what the patient wrote and what they were told.
            lambda: handoff.post_exchange(conversation, self._sealed(msg, conversation), answer, SYSTEM)]

    async def alert_staff(self, msg: Inbound, conversation: str, layer: str, answer: List[str]) -> None:
        """Staff alerted to a safety answer the NLU gave (its emergency intent: ``nlu``, the
        emergency queue; the safety net inside Rasa: ``net``, urgent), with the exchange."""
        emergency = layer == "nlu"
        logger.warning("%s from the NLU for conversation %s; staff alerted",
                       "EMERGENCY redirect" if emergency else "SAFETY CHECK", conversation)
        alerts: Writes = []
        self._alert_with(alerts, msg, conversation, " ".join(answer),
                         ("emergency_redirect" if emergency else "safety_check",
                          "redirected" if emergency else "checked", {"layer": layer}),
                         ("emergency_follow_up" if emergency else "safety_check", "emergency" if emergency else "urgent"))
        results = await asyncio.gather(*(write() for write in alerts), return_exceptions=True)
        for result in results:  # the answer is given even if alerting failed; the failure is loud
            if isinstance(result, BaseException):
                logger.critical("could not alert staff to a safety answer for conversation %s: %s",
                                conversation, result.__class__.__name__)
