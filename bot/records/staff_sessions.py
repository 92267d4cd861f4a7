"""Console sessions: a random token in a cookie, its SHA-256 in Redis, an idle and an absolute limit.

The cookie holds 256 random bits; Redis holds only their hash (``pb:staff:session:<hash>``), so
a dump of Redis lets nobody take over a session. Each session carries its own CSRF token. A
session ends after ``idle`` without activity (15 minutes by default) and at the latest after
``max_age``, whatever the activity; disabling an account ends all of its sessions.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Optional, Tuple

import redis.asyncio as aioredis

from bot.storage.redis_client import as_text


@dataclass(frozen=True)
class Session:
    key: str  # the Redis key (hash of the token), never the token
    staff_id: str
    csrf: str
    created: datetime
    last_seen: datetime

    def csrf_ok(self, given: Optional[str]) -> bool:
        return bool(given) and secrets.compare_digest(given.encode(), self.csrf.encode())


class StaffSessions:
    def __init__(self, client: aioredis.Redis, prefix: str = "pb:", idle_minutes: int = 15,
                 max_hours: int = 12) -> None:
        self.redis = client
        self.prefix = prefix
        self.idle = timedelta(minutes=idle_minutes)
        self.max_age = timedelta(hours=max_hours)

    def _key(self, token: str) -> str:
        return f"{self.prefix}staff:session:{hashlib.sha256(token.encode()).hexdigest()[:48]}"

    def _index(self, staff_id: str) -> str:
        return f"{self.prefix}staff:sessions-of:{staff_id}"

    def _ttl(self) -> int:
        return int(self.idle.total_seconds()) + 60  # Redis forgets it soon after it went idle

    async def create(self, staff_id: str, now: Optional[datetime] = None) -> Tuple[str, Session]:
        """A new session (a fresh token at every sign-in: no session fixation)."""
        now = now or datetime.now(timezone.utc)
        token = secrets.token_urlsafe(32)
        key = self._key(token)
        session = Session(key, staff_id, secrets.token_urlsafe(32), now, now)
        await self.redis.hset(key, mapping={"staff": staff_id, "csrf": session.csrf, "created": now.isoformat(),
                                            "last_seen": now.isoformat()})
        await self.redis.expire(key, self._ttl())
        await self.redis.sadd(self._index(staff_id), key)
        await self.redis.expire(self._index(staff_id), int(self.max_age.total_seconds()))
        return token, session

    async def load(self, token: Optional[str], now: Optional[datetime] = None,
                   touch: bool = True) -> Tuple[Optional[Session], str, str]:
        """(session, "ok", staff id), or (None, why, staff id or ""): why is "missing", "idle" or
        "expired" (an idle or expired session is ended here).

        ``touch`` counts the request as activity; background polling and the live event stream
        pass False, so an open tab still logs off after the idle limit.
        """
        if not token:
            return None, "missing", ""
        now = now or datetime.now(timezone.utc)
        key = self._key(token)
        raw = await self.redis.hgetall(key)
        if not raw:
            return None, "missing", ""
        f = {as_text(k): as_text(v) for k, v in raw.items()}
        session = Session(key, f["staff"], f["csrf"], datetime.fromisoformat(f["created"]),
                          datetime.fromisoformat(f["last_seen"]))
        if now - session.last_seen > self.idle:
            await self._end(session)
            return None, "idle", session.staff_id
        if now - session.created > self.max_age:
            await self._end(session)
            return None, "expired", session.staff_id
        if touch:
            await self.redis.hset(key, "last_seen", now.isoformat())
            await self.redis.expire(key, self._ttl())
            session = Session(key, session.staff_id, session.csrf, session.created, now)
        return session, "ok", session.staff_id

    async def _end(self, session: Session) -> None:
        await self.redis.delete(session.key, f"{session.key}:flash")
        await self.redis.srem(self._index(session.staff_id), session.key)

    async def end(self, session: Session) -> None:
        """Sign out."""
        await self._end(session)

    async def end_all(self, staff_id: str) -> int:
        """End every session of a staff member (account disabled or reset); returns how many."""
        keys = [as_text(k) for k in await self.redis.smembers(self._index(staff_id))]
        if keys:
            await self.redis.delete(*keys, *[f"{k}:flash" for k in keys])
        await self.redis.delete(self._index(staff_id))
        return len(keys)

    async def flash(self, session: Session, message: str) -> None:
        """A one-line notice for the next page (no PHI: e.g. "Reply sent")."""
        await self.redis.set(f"{session.key}:flash", message, ex=self._ttl())

    async def pop_flash(self, session: Session) -> Optional[str]:
        key = f"{session.key}:flash"
        value = await self.redis.get(key)
        if value is not None:
            await self.redis.delete(key)
        return as_text(value) if value is not None else None
