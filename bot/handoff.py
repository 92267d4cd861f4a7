"""Escalation to staff: the hand-off queue in Redis.

A conversation is queued once with a reason and a priority; emergencies sort first, then by
waiting time. Conversation ids are pseudonyms, so the queue itself holds no PHI.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

import redis.asyncio as aioredis

PRIORITY = {"emergency": 0, "urgent": 1, "normal": 2}
REASONS = {
    "patient_request", "repeated_misunderstanding", "reschedule", "running_late",
    "clinical_question", "test_results", "emergency_follow_up", "verification_lockout",
}


class HandoffQueue:
    """The staff queue of escalated conversations."""

    def __init__(self, client: aioredis.Redis, prefix: str = "pb:") -> None:
        self.redis = client
        self.prefix = prefix

    def _conv_key(self, conversation: str) -> str:
        return f"{self.prefix}handoff:{conversation}"

    @property
    def _queue_key(self) -> str:
        return f"{self.prefix}handoff:queue"

    async def escalate(
        self, conversation: str, channel: str, reason: str, priority: str = "normal",
        at: Optional[datetime] = None,
    ) -> bool:
        """Queue ``conversation`` for staff. Returns False if it was already waiting or held.

        A higher priority raises an existing entry (an emergency overtakes a routine request).
        """
        if reason not in REASONS:
            raise ValueError(f"unknown escalation reason {reason!r}")
        if priority not in PRIORITY:
            raise ValueError(f"unknown priority {priority!r}")
        at = at or datetime.now(timezone.utc)
        key = self._conv_key(conversation)
        score = PRIORITY[priority] * 10**12 + at.timestamp()
        created = await self.redis.hsetnx(key, "since", at.isoformat())
        if created:
            await self.redis.hset(key, mapping={
                "reason": reason, "priority": priority, "channel": channel, "status": "waiting",
            })
            await self.redis.zadd(self._queue_key, {conversation: score})
            return True
        current = await self.redis.hget(key, "priority")
        current = current.decode() if isinstance(current, bytes) else current
        if current in PRIORITY and PRIORITY[priority] < PRIORITY[current]:
            await self.redis.hset(key, mapping={"priority": priority, "reason": reason})
            await self.redis.zadd(self._queue_key, {conversation: score})
        return False

    async def take(self, conversation: str, staff_id: str, at: Optional[datetime] = None) -> None:
        """A staff member holds the conversation: patient messages go to the inbox, the bot is silent."""
        at = at or datetime.now(timezone.utc)
        await self.redis.hset(self._conv_key(conversation), mapping={
            "status": "held", "held_by": staff_id, "held_since": at.isoformat(),
        })
        await self.redis.hsetnx(self._conv_key(conversation), "since", at.isoformat())

    async def hand_back(self, conversation: str) -> None:
        """Staff are done: the bot answers again and the conversation leaves the queue."""
        await self.redis.delete(self._conv_key(conversation))
        await self.redis.zrem(self._queue_key, conversation)

    async def is_held(self, conversation: str) -> bool:
        status = await self.redis.hget(self._conv_key(conversation), "status")
        return (status.decode() if isinstance(status, bytes) else status) == "held"

    def inbox_key(self, conversation: str) -> str:
        return f"{self.prefix}inbox:{conversation}"

    async def post_to_inbox(self, conversation: str, sealed_text: str) -> None:
        """Keep a patient message (already encrypted by the caller) for the staff member."""
        await self.redis.xadd(self.inbox_key(conversation), {"body": sealed_text})

    async def inbox(self, conversation: str) -> List[str]:
        """The sealed messages waiting for staff, oldest first."""
        out = []
        for _, fields in await self.redis.xrange(self.inbox_key(conversation)):
            token = fields.get(b"body") or fields.get("body")
            out.append(token.decode() if isinstance(token, bytes) else token)
        return out

    async def entry(self, conversation: str) -> Optional[Dict[str, str]]:
        raw = await self.redis.hgetall(self._conv_key(conversation))
        if not raw:
            return None
        return {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                for k, v in raw.items()}

    async def waiting(self) -> List[Dict[str, Any]]:
        """The queue, highest priority and longest waiting first."""
        out = []
        for member in await self.redis.zrange(self._queue_key, 0, -1):
            conv = member.decode() if isinstance(member, bytes) else member
            entry = await self.entry(conv)
            if entry:
                out.append({"conversation": conv, **entry})
        return out
