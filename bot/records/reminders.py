"""Appointment reminders, and the patient's replies to them.

A reminder run (``patientbot remind``) looks at appointments starting within the largest
reminder window (48 h and 2 h before, by default) and, for each one due, texts the patient's
number(s) on file once per window, unless:

* the outbound gate refuses: opted out, no consent for reminders, quiet hours (8:00-21:00 in
  the recipient's time zone);
* the number already got its automated messages for the day (1) or the week (3);
* the appointment is no longer upcoming (cancelled, fulfilled).

Every decision is returned (and audited when it is a refusal), so the run can be reviewed:
who got a reminder, who did not and why. A reminder holds only minimum-necessary content
(date, time, office name, call-back number) and the reply options, in at most 160 characters.

Replies ("C", "yes", "1", "R", "can't make it"...) within the reminder's lifetime are handled
here, deterministically, before the NLU: the appointment is confirmed or a reschedule is
requested, and the change is recorded on it. A short reply that is neither gets a clarifying
question; anything longer goes on to the bot as usual.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Awaitable, Callable, List, Optional, Sequence

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from bot.core import replies
from bot.records.appointments import UPCOMING_STATUSES, AppointmentStore, StoredAppointment
from bot.storage.audit import AuditLog
from bot.storage.crypto import KeyRing, conversation_id, phone_index
from bot.records.handoff import HandoffQueue
from bot.core.office import Office
from bot.records.outbound import OutboundGate
from bot.core.phone import local_timezone
from bot.storage.redis_client import as_text

logger = logging.getLogger(__name__)

ACTOR = "system:reminders"
DEFAULT_WINDOWS_HOURS = (48, 2)
PER_DAY, PER_WEEK = 1, 3  # automated messages per number (healthcare-message guidance)

CONFIRM_REPLIES = {"c", "y", "yes", "yep", "yeah", "ya", "yes please", "confirm", "confirmed", "1", "ok",
                   "okay", "k", "sure", "ill be there", "yes ill be there", "i will be there", "see you then",
                   "yes confirm", "c yes"}
RESCHEDULE_REPLIES = {"r", "2", "reschedule", "resched", "cant make it", "cannot make it", "can not make it",
                      "i cant make it", "i cannot make it", "i cant come", "need to reschedule",
                      "i need to reschedule", "can we reschedule", "new time", "different time"}
CLARIFY_MAX_WORDS = 3


@dataclass(frozen=True)
class Outcome:
    appointment: str  # pseudonymous ref
    number_index: str
    window_hours: int
    result: str  # sent | skipped
    reason: str  # ok | opted_out | no_consent_for_scope | quiet_hours | daily_limit | weekly_limit | ...


Send = Callable[[str, str, str], Awaitable[object]]  # (to E.164, body, conversation)


def _plain(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9 ]+", "", text.lower().replace("\u2019", "'").replace("'", "")).split())


class Reminders:
    def __init__(self, redis: aioredis.Redis, keys: KeyRing, prefix: str, office: Office,
                 gate: OutboundGate, send: Send, windows_hours: Sequence[int] = DEFAULT_WINDOWS_HOURS) -> None:
        self.redis = redis
        self.keys = keys
        self.prefix = prefix
        self.office = office
        self.gate = gate
        self.send = send
        self.windows = sorted(set(int(w) for w in windows_hours))
        self.store = AppointmentStore(redis, keys, prefix)
        self.audit: AuditLog = gate.audit

    # -- keys --------------------------------------------------------------------------------
    def _sent_key(self, aid: str, window: int) -> str:
        return f"{self.prefix}reminded:{aid}:{window}"

    def _count_key(self, number_idx: str) -> str:
        return f"{self.prefix}auto-sent:{number_idx}"

    def pending_key(self, conversation: str) -> str:
        return f"{self.prefix}reminder-pending:{conversation}"

    # -- the run -----------------------------------------------------------------------------
    async def run(self, now: Optional[datetime] = None) -> List[Outcome]:
        now = now or datetime.now(timezone.utc)
        outcomes: List[Outcome] = []
        horizon = now + timedelta(hours=max(self.windows))
        for appt in await self.store.starting_between(now, horizon):
            outcomes += await self._remind(appt, now)
        return outcomes

    async def _remind(self, appt: StoredAppointment, now: datetime) -> List[Outcome]:
        due = [w for w in self.windows if appt.start - now <= timedelta(hours=w)]
        window = min(due)
        patient = await self.store.get_patient(appt.pid) or {}
        numbers = patient.get("phones", [])
        if appt.status not in UPCOMING_STATUSES:
            return [Outcome(appt.aid, "", window, "skipped", "not_upcoming")]
        if await self.redis.exists(self._sent_key(appt.aid, window)):
            return [Outcome(appt.aid, "", window, "skipped", "already_sent")]
        outcomes = []
        for number in numbers:
            outcomes.append(await self._remind_number(appt, number, window, due, now))
        return outcomes or [Outcome(appt.aid, "", window, "skipped", "no_number")]

    async def _remind_number(self, appt: StoredAppointment, number: str, window: int, due: List[int],
                             now: datetime) -> Outcome:
        idx = phone_index(self.keys, number)
        conv = conversation_id(self.keys, "sms", number)
        tz = local_timezone(number, str(self.office.timezone))
        decision = await self.gate.check(idx, conv, "reminder", ACTOR, tz=tz, now=now)
        if not decision.allowed:
            return Outcome(appt.aid, idx, window, "skipped", decision.reason)
        limit = await self._limit_reached(idx, now)
        if limit:
            await self.audit.record(ACTOR, "reminder_skipped", conv, limit, {"appointment": appt.aid})
            return Outcome(appt.aid, idx, window, "skipped", limit)
        # Claim before sending, so two runs at once never send the same reminder twice.
        claim = self._sent_key(appt.aid, window) + f":{idx}"
        if not await self.redis.set(claim, now.isoformat(), nx=True, ex=8 * 24 * 3600):
            return Outcome(appt.aid, idx, window, "skipped", "already_sent")
        try:
            await self.send(number, replies.reminder(appt.start, self.office), conv)
        except Exception as exc:  # noqa: BLE001 - released, so the next run tries again
            await self.redis.delete(claim)
            logger.error("reminder for conversation %s not sent: %s", conv, exc.__class__.__name__)
            return Outcome(appt.aid, idx, window, "skipped", "send_failed")
        ttl = max(60, int((appt.start - now).total_seconds()) + 3600)
        async with self.redis.pipeline(transaction=True) as pipe:
            for w in due:  # a 2 h reminder makes a missed 48 h one moot
                pipe.set(self._sent_key(appt.aid, w), now.isoformat(), ex=8 * 24 * 3600)
            pipe.zadd(self._count_key(idx), {f"{appt.aid}:{window}": now.timestamp()})
            pipe.zremrangebyscore(self._count_key(idx), 0, (now - timedelta(days=7)).timestamp())
            pipe.expire(self._count_key(idx), 8 * 24 * 3600)
            pipe.set(self.pending_key(conv), appt.aid, ex=ttl)
            await pipe.execute()
        await self.audit.record(ACTOR, "reminder_sent", conv, "sent", {"appointment": appt.aid, "window_hours": window})
        return Outcome(appt.aid, idx, window, "sent", "ok")

    async def _limit_reached(self, idx: str, now: datetime) -> Optional[str]:
        key = self._count_key(idx)
        if await self.redis.zcount(key, (now - timedelta(days=1)).timestamp(), "+inf") >= PER_DAY:
            return "daily_limit"
        if await self.redis.zcount(key, (now - timedelta(days=7)).timestamp(), "+inf") >= PER_WEEK:
            return "weekly_limit"
        return None


class ReminderReplies:
    """Answers to a reminder, handled before the NLU while the reminder is pending."""

    def __init__(self, redis: aioredis.Redis, keys: KeyRing, prefix: str, office: Office, audit: AuditLog) -> None:
        self.redis = redis
        self.prefix = prefix
        self.office = office
        self.audit = audit
        self.store = AppointmentStore(redis, keys, prefix)
        self.handoff = HandoffQueue(redis, keys, prefix, audit)  # one audit writer per process

    def _pending_key(self, conversation: str) -> str:
        return f"{self.prefix}reminder-pending:{conversation}"

    def pending_on(self, pipe: Pipeline, conversation: str) -> Callable[[list], Optional[str]]:
        """Queue the read of the appointment a reminder awaits an answer about on ``pipe``; the
        returned function reads it (None: no reminder pending) from the pipeline's results."""
        at = len(pipe)
        pipe.get(self._pending_key(conversation))
        return lambda results: as_text(results[at])

    async def answer(self, conversation: str, channel: str, text: str, aid: Optional[str]) -> Optional[List[str]]:
        """The reply to ``text`` if it answers the reminder pending about appointment ``aid``
        (read by :meth:`pending_on`; None: none pending), else None (the bot answers)."""
        if aid is None:
            return None
        plain = _plain(text)
        if plain not in CONFIRM_REPLIES and plain not in RESCHEDULE_REPLIES:
            if plain and len(plain.split()) <= CLARIFY_MAX_WORDS:
                return [replies.reminder_clarify(self.office)]
            return None
        appt = await self.store.get_appointment(aid)
        await self.redis.delete(self._pending_key(conversation))
        if appt is None or appt.status not in UPCOMING_STATUSES:
            return [replies.no_appointment(self.office)]
        actor = f"patient:{channel}"
        if plain in CONFIRM_REPLIES:
            appt = await self.store.confirm(appt, actor)
            await self.audit.record(actor, "appointment_confirmed", conversation, "ok", {"appointment": appt.aid})
            return [replies.confirmed(appt.start, self.office)]
        appt = await self.store.request_reschedule(appt, actor)
        await self.handoff.escalate(conversation, channel, "reschedule")
        await self.audit.record(actor, "reschedule_requested", conversation, "ok", {"appointment": appt.aid})
        return [replies.reschedule_requested(self.office)]
