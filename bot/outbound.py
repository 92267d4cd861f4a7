"""The consent check every message the office starts must pass before it is sent.

Replies to a patient's own message are decided by the inbound gate (channels/pipeline.py).
Everything else, appointment reminders, staff replies from the console, bot follow-ups, asks
here first. After an opt-out nothing goes out, of any kind, until the number opts back in;
each refusal is audited (by pseudonym) so a compliance review can see it was stopped.

Who may get what:

* appointment reminders and other bot-initiated messages: only numbers that opted in to that
  scope (``appointment_reminders`` or ``care_messages``);
* staff replies: any number that has not opted out (the patient wrote to us first; staff
  answer within that conversation).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.audit import AuditLog
from bot.consent import ConsentRegistry

logger = logging.getLogger(__name__)

INITIATORS = ("reminder", "staff", "bot")
SCOPE_OF = {"reminder": "appointment_reminders", "bot": "care_messages"}


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str  # "ok", "opted_out", "no_consent_for_scope"


class OutboundGate:
    def __init__(self, consent: ConsentRegistry, audit: AuditLog) -> None:
        self.consent = consent
        self.audit = audit

    async def check(self, phone_idx: str, conversation: str, initiator: str, actor: str) -> Decision:
        """May an ``initiator`` message be sent to this number now? Refusals are audited."""
        if initiator not in INITIATORS:
            raise ValueError(f"unknown outbound initiator {initiator!r}")
        state = await self.consent.state(phone_idx)
        if state.opted_out:
            decision = Decision(False, "opted_out")
        elif initiator in SCOPE_OF and not state.allows(SCOPE_OF[initiator]):
            decision = Decision(False, "no_consent_for_scope")
        else:
            decision = Decision(True, "ok")
        if not decision.allowed:
            logger.info("outbound %s to conversation %s refused: %s", initiator, conversation, decision.reason)
            await self.audit.record(actor, "outbound_refused", conversation, decision.reason,
                                    {"initiator": initiator})
        return decision
