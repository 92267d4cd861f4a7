"""Retention: purge what the policy says is due, except what a legal hold keeps.

The policy (days, from settings; see :class:`Policy`):

* ``conversations``: Rasa trackers, which hold the message text of bot conversations. They
  carry a Redis expiry of this length from their last message; the run re-applies it where
  a released hold removed it.
* ``messages``: staff-conversation logs (the hand-off inbox), trimmed entry by entry.
* ``appointments``: appointment records this long after the visit, then patients left
  without any appointment.
* ``consent``: consent history entries this long after the change; the current state and
  the latest entry are always kept (an opt-out is honoured forever).
* ``audit``: the audit trail, never below six years (a shorter setting is refused).

Legal holds are per phone number (by blind index): while one is in place nothing linked to
the number is purged, its tracker loses its expiry, and the audit trail is not trimmed past
its first event. Placing, releasing and every run are audited.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Dict, List, Optional

import redis.asyncio as aioredis

from bot.storage.audit import AuditLog
from bot.storage.crypto import KeyRing
from bot.storage.redis_client import as_text

AUDIT_MINIMUM_DAYS = 6 * 365


@dataclass(frozen=True)
class Policy:
    conversations: int = 90
    messages: int = 7 * 365
    appointments: int = 2 * 365
    consent: int = 7 * 365
    audit: int = 7 * 365

    def __post_init__(self) -> None:
        if self.audit < AUDIT_MINIMUM_DAYS:
            raise ValueError(f"audit retention must be at least {AUDIT_MINIMUM_DAYS} days (six years)")
        for name in ("conversations", "messages", "appointments", "consent"):
            if getattr(self, name) < 1:
                raise ValueError(f"retention for {name} must be at least one day")


def policy_from(cfg) -> Policy:
    """The policy from settings (RETENTION_*_DAYS)."""
    return Policy(conversations=cfg.retention_conversation_days, messages=cfg.retention_message_days,
                  appointments=cfg.retention_appointment_days, consent=cfg.retention_consent_days,
                  audit=cfg.retention_audit_days)


def _stream_id(at: datetime) -> str:
    return str(int(at.timestamp() * 1000))  # stream ids start with milliseconds since the epoch


class LegalHolds:
    """Legal holds per number: a hash of blind index -> sealed {reason, by, at}."""

    def __init__(self, client: aioredis.Redis, keys: KeyRing, prefix: str = "pb:") -> None:
        self.redis = client
        self.keys = keys
        self.key = f"{prefix}legal-hold"

    async def place(self, phone_idx: str, reason: str, by: str, at: Optional[datetime] = None) -> None:
        doc = {"reason": reason, "by": by, "at": (at or datetime.now(timezone.utc)).isoformat()}
        await self.redis.hset(self.key, phone_idx, self.keys.encrypt_text(json.dumps(doc), f"{self.key}#{phone_idx}"))

    async def release(self, phone_idx: str) -> bool:
        return bool(await self.redis.hdel(self.key, phone_idx))

    async def held(self) -> Dict[str, Dict[str, str]]:
        out = {}
        for idx, token in (await self.redis.hgetall(self.key)).items():
            idx = as_text(idx)
            out[idx] = json.loads(self.keys.decrypt_text(as_text(token), f"{self.key}#{idx}"))
        return out

    async def is_held(self, phone_idx: str) -> bool:
        return bool(await self.redis.hexists(self.key, phone_idx))


class Retention:
    def __init__(self, client: aioredis.Redis, keys: KeyRing, prefix: str, policy: Policy, audit: AuditLog) -> None:
        self.redis = client
        self.keys = keys
        self.prefix = prefix
        self.policy = policy
        self.audit = audit
        self.holds = LegalHolds(client, keys, prefix)

    async def _scan(self, pattern: str) -> List[str]:
        return [as_text(k) async for k in self.redis.scan_iter(match=f"{self.prefix}{pattern}", count=500)]

    async def run(self, actor: str, now: Optional[datetime] = None, dry_run: bool = False) -> Dict[str, int]:
        """Purge what is due; returns counts per kind of record. Audited (also a dry run)."""
        now = now or datetime.now(timezone.utc)
        held = set(await self.holds.held())
        held_conversations = {f"sms-{idx}" for idx in held}
        counts = {
            "trackers_expiry_set": await self._trackers(held_conversations, dry_run),
            "message_entries": await self._messages(now, held_conversations, dry_run),
            "appointments": await self._appointments(now, held, dry_run),
            "consent_entries": await self._consent(now, held, dry_run),
            "audit_entries": 0,
        }
        if not dry_run:
            cutoff = now - timedelta(days=self.policy.audit)
            counts["audit_entries"] = await self.audit.trim_before(cutoff, frozenset(held | held_conversations))
        await self.audit.record(actor, "retention_run", "", "dry_run" if dry_run else "ok",
                                {**counts, "legal_holds": len(held), "policy": vars(self.policy)})
        return counts

    async def _trackers(self, held_conversations: set, dry_run: bool) -> int:
        """Held trackers lose their expiry; others without one get the policy's expiry back."""
        changed = 0
        for key in await self._scan("tracker:*"):
            conversation = key[len(f"{self.prefix}tracker:"):]
            ttl = await self.redis.ttl(key)
            if conversation in held_conversations:
                if ttl >= 0 and not dry_run:
                    await self.redis.persist(key)
            elif ttl == -1:
                changed += 1
                if not dry_run:
                    await self.redis.expire(key, self.policy.conversations * 86400)
        return changed

    async def _messages(self, now: datetime, held_conversations: set, dry_run: bool) -> int:
        cutoff = _stream_id(now - timedelta(days=self.policy.messages))
        removed = 0
        for key in await self._scan("inbox:*"):
            if key[len(f"{self.prefix}inbox:"):] in held_conversations:
                continue
            due = await self.redis.xrange(key, "-", f"({cutoff}")
            removed += len(due)
            if due and not dry_run:
                await self.redis.xtrim(key, minid=cutoff, approximate=False)
        return removed

    async def _appointments(self, now: datetime, held: set, dry_run: bool) -> int:
        from bot.records.appointments import AppointmentStore

        store = AppointmentStore(self.redis, self.keys, self.prefix)
        cutoff = (now - timedelta(days=self.policy.appointments)).timestamp()
        index = store._k("appts-by-start", "all")  # noqa: SLF001 - the store's own index key
        removed = 0
        for aid in await self.redis.zrangebyscore(index, "-inf", f"({cutoff}"):
            aid = as_text(aid)
            appt = await store.get_appointment(aid)
            patient = await store.get_patient(appt.pid) if appt else None
            if patient and held & set(patient.get("phone_indexes", [])):
                continue
            removed += 1
            if dry_run:
                continue
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(store._k("appt", aid))  # noqa: SLF001
                pipe.zrem(index, aid)
                if appt:
                    pipe.zrem(store._k("patient-appts", appt.pid), aid)  # noqa: SLF001
                await pipe.execute()
            if appt and patient and not await self.redis.zcard(store._k("patient-appts", appt.pid)):  # noqa: SLF001
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.delete(store._k("patient", appt.pid))  # noqa: SLF001
                    for idx in patient.get("phone_indexes", []):
                        pipe.srem(store._k("phone", idx), appt.pid)  # noqa: SLF001
                    await pipe.execute()
        return removed

    async def _consent(self, now: datetime, held: set, dry_run: bool) -> int:
        cutoff = _stream_id(now - timedelta(days=self.policy.consent))
        removed = 0
        for key in await self._scan("consent-log:*"):
            if key[len(f"{self.prefix}consent-log:"):] in held:
                continue
            latest = await self.redis.xrevrange(key, count=1)
            if not latest:
                continue
            keep_from = min(cutoff, as_text(latest[0][0]), key=lambda i: tuple(int(p) for p in i.split("-")))
            due = await self.redis.xrange(key, "-", f"({keep_from}")
            removed += len(due)
            if due and not dry_run:
                await self.redis.xtrim(key, minid=keep_from, approximate=False)
        return removed
