"""Escalation to staff: the hand-off queue in Redis.

A conversation is queued once with a reason and a priority; emergencies sort first, then by
waiting time. Conversation ids are pseudonyms, so the queue itself holds no PHI.

From escalation until a staff member resolves it, a conversation is *active* (``waiting`` for
a staff member, then ``held`` by exactly one): the gateway keeps the bot silent and every
patient message goes to the conversation's log (bot.records.handoff.inbox). Every change is
announced to the console (bot.records.handoff.events).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Tuple

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from bot.records.handoff.contacts import HandoffContacts
from bot.records.handoff.events import QUEUE, HandoffEvents
from bot.storage.audit import AuditLog
from bot.storage.crypto import KeyRing
from bot.storage.redis_client import as_text

PRIORITY = {"emergency": 0, "urgent": 1, "normal": 2}
REASONS = {
    "patient_request", "repeated_misunderstanding", "reschedule", "running_late",
    "clinical_question", "test_results", "emergency_follow_up", "verification_lockout", "safety_check",
}
ACTIVE = ("waiting", "held")

# Claim atomically: one owner at a time. Returns {1, owner} when claimed (or already ours),
# {0, owner} when someone else holds it, {-1, ""} when the conversation is not in the queue.
_CLAIM = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {-1, ''} end
local owner = redis.call('HGET', KEYS[1], 'held_by')
if status == 'held' and owner and owner ~= ARGV[1] then return {0, owner} end
if status ~= 'held' or not owner then
  redis.call('HSET', KEYS[1], 'status', 'held', 'held_by', ARGV[1], 'held_since', ARGV[2])
end
return {1, ARGV[1]}
"""
# Queue a conversation, or raise its priority, keep the sealed number if one is given (as
# _REMEMBER_CONTACT) and tell the console: one round trip. KEYS: the entry, the queue.
# ARGV: since, reason, priority, channel, score, the priority's rank, the conversation, the
# sealed number or '', the console's channel, the announcement. Returns 1 queued, 2 raised,
# 0 already there at that priority or higher. The ranks are PRIORITY's, written into the
# script so there is one table.
_ESCALATE = """
local done = 0
if redis.call('HSETNX', KEYS[1], 'since', ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], 'reason', ARGV[2], 'priority', ARGV[3], 'channel', ARGV[4], 'status', 'waiting')
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[7])
  done = 1
else
  local current = redis.call('HGET', KEYS[1], 'priority')
  local rank = {%s}
  if current and rank[current] and tonumber(ARGV[6]) < rank[current] then
    redis.call('HSET', KEYS[1], 'priority', ARGV[3], 'reason', ARGV[2])
    redis.call('ZADD', KEYS[2], ARGV[5], ARGV[7])
    done = 2
  end
end
if ARGV[8] ~= '' and redis.call('HEXISTS', KEYS[1], 'status') == 1 then
  redis.call('HSETNX', KEYS[1], 'contact', ARGV[8])
end
if done ~= 0 then redis.call('PUBLISH', ARGV[9], ARGV[10]) end
return done
""" % ", ".join(f"{name} = {rank}" for name, rank in PRIORITY.items())


class EscalationQueue(HandoffContacts, HandoffEvents):
    """The staff queue of escalated conversations: who waits, who holds which, for what."""

    def __init__(self, client: aioredis.Redis, keys: Optional[KeyRing], prefix: str = "pb:",
                 audit: Optional[AuditLog] = None) -> None:
        super().__init__(client, keys, prefix)
        # The process's audit writer where there is one (the gateway's): appends share its round trips.
        self._audit_log = audit
        self._escalate = client.register_script(_ESCALATE)

    async def escalate(
        self, conversation: str, channel: str, reason: str, priority: str = "normal",
        at: Optional[datetime] = None, actor: str = "system:bot", contact: Optional[str] = None,
    ) -> bool:
        """Queue ``conversation`` for staff. Returns False if it was already waiting or held.

        A higher priority raises an existing entry (an emergency overtakes a routine request).
        Queuing and raising are audited and announced to the console. ``contact``, the
        patient's number, is kept sealed as :meth:`remember_contact` would, in the same round
        trip (an emergency's redirect waits on this).
        """
        if reason not in REASONS:
            raise ValueError(f"unknown escalation reason {reason!r}")
        if priority not in PRIORITY:
            raise ValueError(f"unknown priority {priority!r}")
        at = at or datetime.now(timezone.utc)
        score = PRIORITY[priority] * 10**12 + at.timestamp()
        sealed = self._seal_contact(conversation, contact) if contact else ""
        done = await self._escalate(keys=[self._conv_key(conversation), self._queue_key],
                                    args=[at.isoformat(), reason, priority, channel, score, PRIORITY[priority],
                                          conversation, sealed, self.events_channel,
                                          self._event(QUEUE, conversation)])
        if done:
            await self._audit(actor, conversation, "queued" if done == 1 else "raised", reason, priority)
        return done == 1

    async def _audit(self, actor: str, conversation: str, outcome: str, reason: str, priority: str) -> None:
        if self._audit_log is None:
            self._audit_log = AuditLog(self.redis, self._keys(), self.prefix)
        await self._audit_log.record(actor, "escalated", conversation, outcome, {"reason": reason, "priority": priority})

    async def take(self, conversation: str, staff_id: str, at: Optional[datetime] = None) -> None:
        """A staff member holds the conversation: patient messages go to the inbox, the bot is silent."""
        at = at or datetime.now(timezone.utc)
        await self.redis.hset(self._conv_key(conversation), mapping={
            "status": "held", "held_by": staff_id, "held_since": at.isoformat(),
        })
        await self.redis.hsetnx(self._conv_key(conversation), "since", at.isoformat())
        await self._announce(QUEUE, conversation)

    async def claim(self, conversation: str, staff_id: str, at: Optional[datetime] = None) -> Tuple[bool, Optional[str]]:
        """Take a queued conversation if nobody else holds it: (claimed, owner).

        ``(False, None)`` means it is not in the queue (resolved meanwhile); ``(False, other)``
        that another staff member holds it. Claiming one's own conversation again is a no-op.
        """
        at = at or datetime.now(timezone.utc)
        code, owner = await self.redis.eval(_CLAIM, 1, self._conv_key(conversation), staff_id, at.isoformat())
        if int(code) == -1:
            return False, None
        if int(code) == 1:
            await self._announce(QUEUE, conversation)
        return int(code) == 1, as_text(owner)

    async def hand_back(self, conversation: str) -> None:
        """Staff are done: the bot answers again and the conversation leaves the queue.

        The log stays (sealed), for the next hand-off and for review; bot.storage.retention trims it.
        """
        await self.redis.delete(self._conv_key(conversation))
        await self.redis.zrem(self._queue_key, conversation)
        await self._announce(QUEUE, conversation)

    async def status(self, conversation: str) -> Optional[str]:
        """``waiting``, ``held``, or None when the conversation is not in the queue."""
        return as_text(await self.redis.hget(self._conv_key(conversation), "status"))

    async def is_held(self, conversation: str) -> bool:
        """Held by a staff member (not merely waiting)."""
        return await self.status(conversation) == "held"

    async def is_active(self, conversation: str) -> bool:
        """Escalated and not yet handed back: the bot stays silent, messages go to staff."""
        return await self.status(conversation) in ACTIVE

    def active_on(self, pipe: Pipeline, conversation: str) -> Callable[[list], bool]:
        """Queue the read of :meth:`is_active` on ``pipe``, to go in the same round trip as other
        reads; the returned function reads the answer from the pipeline's results."""
        at = len(pipe)
        pipe.hget(self._conv_key(conversation), "status")
        return lambda results: as_text(results[at]) in ACTIVE

    async def entry(self, conversation: str) -> Optional[Dict[str, str]]:
        """The conversation's queue entry (since, reason, priority, channel, status, ...), or None."""
        raw = await self.redis.hgetall(self._conv_key(conversation))
        if not raw:
            return None
        return {as_text(k): as_text(v) for k, v in raw.items()}

    async def waiting(self) -> List[Dict[str, Any]]:
        """The queue, highest priority and longest waiting first."""
        out = []
        for member in await self.redis.zrange(self._queue_key, 0, -1):
            conv = member.decode() if isinstance(member, bytes) else member
            entry = await self.entry(conv)
            if entry:
                out.append({"conversation": conv, **entry})
        return out
