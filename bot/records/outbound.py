"""The one gate every message the office starts must pass before it is sent.

Replies to a patient's own message are decided by the inbound gate (bot/conversation/pipeline.py).
Everything else, appointment reminders, staff replies from the console, bot follow-ups and
replies delivered late by API, asks here first, and each refusal is audited by pseudonym:

1. consent: after an opt-out nothing goes out, of any kind, until the number opts back in.
   Reminders and other bot-initiated messages need the number's consent for their scope
   (``appointment_reminders`` or ``care_messages``); staff and late bot replies answer a
   conversation the patient started, so they need only the absence of an opt-out;
2. PHI: a message classed ``phi`` never goes to a conversation whose identity is not verified,
   nor to a number without the patient's written authorization for PHI by text (``phi_by_text``);
3. quiet hours: no bot-initiated message before 8:00 or after 21:00 in the recipient's time
   zone (from the number where it maps to one zone, else the office's).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, time, timezone
from typing import Optional
from zoneinfo import ZoneInfo

from bot.core import phi
from bot.storage.audit import AuditLog
from bot.records.consent import ConsentRegistry

logger = logging.getLogger(__name__)

INITIATORS = ("reminder", "bot", "staff", "reply")  # "reply": a bot answer delivered late by API
SCOPE_OF = {"reminder": "appointment_reminders", "bot": "care_messages"}
QUIET_START, QUIET_END = time(21, 0), time(8, 0)
BOT_INITIATED = ("reminder", "bot")


class SendFailed(Exception):
    """The provider did not take the message (after retries, or refused it outright): what a
    sender (channels/sms/sender.py) raises, and what the console tells staff."""

    def __init__(self, reason: str, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str  # ok | opted_out | no_consent_for_scope | phi_unverified | phi_not_authorized | quiet_hours


def in_quiet_hours(now: datetime, tz: str) -> bool:
    local = now.astimezone(ZoneInfo(tz)).time()
    return local >= QUIET_START or local < QUIET_END


class OutboundGate:
    def __init__(self, consent: ConsentRegistry, audit: AuditLog) -> None:
        self.consent = consent
        self.audit = audit

    async def check(self, phone_idx: str, conversation: str, initiator: str, actor: str,
                    phi_class: str = phi.PUBLIC, verified: bool = False, tz: str = "UTC",
                    now: Optional[datetime] = None) -> Decision:
        """May this message be sent now? Refusals are audited; the first failing rule is the reason."""
        if initiator not in INITIATORS:
            raise ValueError(f"unknown outbound initiator {initiator!r}")
        state = await self.consent.state(phone_idx)
        if state.opted_out:
            decision = Decision(False, "opted_out")
        elif initiator in SCOPE_OF and not state.allows(SCOPE_OF[initiator]):
            decision = Decision(False, "no_consent_for_scope")
        elif not phi.egress_allowed(phi_class, verified):
            decision = Decision(False, "phi_unverified")
        elif not phi.sms_body_allowed(phi_class, state.phi_by_text):
            decision = Decision(False, "phi_not_authorized")
        elif initiator in BOT_INITIATED and in_quiet_hours(now or datetime.now(timezone.utc), tz):
            decision = Decision(False, "quiet_hours")
        else:
            decision = Decision(True, "ok")
        if not decision.allowed:
            logger.info("outbound %s to conversation %s refused: %s", initiator, conversation, decision.reason)
            await self.audit.record(actor, "outbound_refused", conversation, decision.reason,
                                    {"initiator": initiator})
        return decision
