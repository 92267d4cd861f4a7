"""Identity verification: who may hear PHI, for how long, and what happens after failures.

The state lives in Redis under the conversation's pseudonym, sealed, never in the Rasa
tracker alone, so no crafted message or slot can forge it:

* ``pb:idv:session:<conv>``  the verified session (which patient ref, channel, since, last
  seen); it ends after 15 minutes idle, 12 hours in total, on opt-out, on sign out (web
  chat) or at a lock-out;
* ``pb:idv:fails:<conv>``    failed attempts (a sorted set of times): 3 within 30 minutes lock
  verification for 30 minutes, 10 within a day lock it until staff unlock;
* ``pb:idv:otp:<conv>``      a one-time code, stored as a keyed hash, valid 10 minutes, single
  use; at most 3 codes an hour per conversation and 5 per number on file
  (``pb:idv:otp-sent-to:<phone index>``).

The date of birth and the code a patient types are compared and dropped: never stored, never
logged. Every failure gets the same reply whatever was wrong, so a wrong DOB, an unknown
number and a patient without a record are indistinguishable.
"""
from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Callable, Iterable, Optional, Tuple

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from bot.storage.crypto import KeyRing
from bot.storage.redis_client import as_text

IDLE_LIMIT = timedelta(minutes=15)
TOTAL_LIMIT = timedelta(hours=12)
SHORT_LOCK_AFTER, SHORT_LOCK = 3, timedelta(minutes=30)
DAY_LOCK_AFTER = 10
OTP_TTL = timedelta(minutes=10)
OTP_PER_HOUR = 3
OTP_PER_NUMBER_HOUR = 5


@dataclass(frozen=True)
class Session:
    patient_ref: str
    channel: str
    since: datetime
    last_seen: datetime


@dataclass(frozen=True)
class Attempt:
    verified: bool
    locked: Optional[str] = None  # None | "short" | "staff"
    patient_ref: Optional[str] = None


class IdentityRegistry:
    def __init__(self, client: aioredis.Redis, keys: KeyRing, prefix: str = "pb:") -> None:
        self.redis = client
        self.keys = keys
        self.prefix = prefix

    def _k(self, kind: str, conversation: str) -> str:
        return f"{self.prefix}idv:{kind}:{conversation}"

    # -- sessions ------------------------------------------------------------------------------
    async def session(self, conversation: str, channel: str, now: Optional[datetime] = None,
                      touch: bool = True) -> Optional[Session]:
        """The live verified session of ``conversation`` on ``channel``, or None (expired ones end)."""
        now = now or datetime.now(timezone.utc)
        key = self._k("session", conversation)
        token = await self.redis.get(key)
        if token is None:
            return None
        doc = json.loads(self.keys.decrypt_text(token.decode() if isinstance(token, bytes) else token, key))
        s = Session(doc["patient_ref"], doc["channel"], datetime.fromisoformat(doc["since"]),
                    datetime.fromisoformat(doc["last_seen"]))
        if s.channel != channel or now - s.last_seen > IDLE_LIMIT or now - s.since > TOTAL_LIMIT:
            await self.end(conversation)
            return None
        if touch:
            await self._store_session(conversation, Session(s.patient_ref, s.channel, s.since, now))
        return s

    async def _store_session(self, conversation: str, s: Session) -> None:
        key = self._k("session", conversation)
        doc = {"patient_ref": s.patient_ref, "channel": s.channel, "since": s.since.isoformat(),
               "last_seen": s.last_seen.isoformat()}
        await self.redis.set(key, self.keys.encrypt_text(json.dumps(doc), key), ex=int(TOTAL_LIMIT.total_seconds()))

    async def end(self, conversation: str) -> None:
        """End verification (idle, expired, opt-out, or the patient's own request)."""
        await self.redis.delete(self._k("session", conversation), self._k("otp", conversation),
                                self._k("code-step", conversation))

    # -- date of birth -------------------------------------------------------------------------
    async def lock_state(self, conversation: str, now: Optional[datetime] = None) -> Optional[str]:
        now = now or datetime.now(timezone.utc)
        key = self._k("fails", conversation)
        if await self.redis.exists(self._k("staff-lock", conversation)):
            return "staff"
        recent = await self.redis.zcount(key, (now - SHORT_LOCK).timestamp(), "+inf")
        return "short" if recent >= SHORT_LOCK_AFTER else None

    async def check_dob(self, conversation: str, channel: str, given: date,
                        candidates: Iterable[Tuple[str, date]], now: Optional[datetime] = None,
                        then_code: bool = False) -> Attempt:
        """Compare ``given`` with the birth dates of the patients on file for this number.

        ``candidates`` are (patient ref, birth date) of every patient at the sender's number
        (none for an unknown number): shared phones are told apart by the date given.
        """
        now = now or datetime.now(timezone.utc)
        locked = await self.lock_state(conversation, now)
        if locked:
            return Attempt(False, locked)
        matches = [ref for ref, born in candidates if hmac.compare_digest(born.isoformat(), given.isoformat())]
        if len(matches) == 1:
            if then_code:
                # The date matched; the session starts only with the one-time code. The failures
                # stay counted until then: were they cleared here, the lock-out's timing would
                # tell someone who never sees the code whether the date was right.
                key = self._k("code-step", conversation)
                await self.redis.set(key, self.keys.encrypt_text(matches[0], key), ex=int(OTP_TTL.total_seconds()))
            else:
                await self.redis.delete(self._k("fails", conversation))
                await self._store_session(conversation, Session(matches[0], channel, now, now))
            return Attempt(True, None, matches[0])
        return Attempt(False, await self._fail(conversation, now))

    async def _fail(self, conversation: str, now: datetime) -> Optional[str]:
        key = self._k("fails", conversation)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(key, {secrets.token_hex(4): now.timestamp()})
            pipe.zremrangebyscore(key, 0, (now - timedelta(days=1)).timestamp())
            pipe.expire(key, 24 * 3600)
            pipe.zcard(key)
            *_, day_count = await pipe.execute()
        if day_count >= DAY_LOCK_AFTER:
            await self.redis.set(self._k("staff-lock", conversation), now.isoformat())
            return "staff"
        return await self.lock_state(conversation, now)

    async def staff_unlock(self, conversation: str) -> None:
        await self.redis.delete(self._k("staff-lock", conversation), self._k("fails", conversation))

    # -- one-time codes ------------------------------------------------------------------------
    def _code_hash(self, conversation: str, code: str) -> str:
        return self.keys.blind_index(f"{conversation}:{code}", "otp")

    async def issue_code(self, conversation: str, now: Optional[datetime] = None,
                         recipient_idx: Optional[str] = None) -> Optional[str]:
        """A fresh 6-digit code to send to the number on file, or None past 3 codes an hour for
        the conversation, or past 5 an hour for the number (``recipient_idx``, its blind index:
        a web browser can start any number of conversations, the number's owner gets at most
        that many texts)."""
        now = now or datetime.now(timezone.utc)
        counters = [(self._k("otp-sent", conversation), OTP_PER_HOUR)]
        if recipient_idx:
            counters.append((self._k("otp-sent-to", recipient_idx), OTP_PER_NUMBER_HOUR))
        hour_ago = (now - timedelta(hours=1)).timestamp()
        for key, limit in counters:
            if await self.redis.zcount(key, hour_ago, "+inf") >= limit:
                return None
        code = f"{secrets.randbelow(10**6):06d}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self._k("otp", conversation),
                     json.dumps({"hash": self._code_hash(conversation, code), "expires": (now + OTP_TTL).isoformat()}),
                     ex=int(OTP_TTL.total_seconds()))
            for key, _ in counters:
                pipe.zadd(key, {secrets.token_hex(4): now.timestamp()})
                pipe.expire(key, 3600)
            await pipe.execute()
        return code

    async def cancel_code_step(self, conversation: str) -> None:
        """Drop a code step in progress (the web conversation was bound to another number)."""
        await self.redis.delete(self._k("otp", conversation), self._k("code-step", conversation))

    async def awaiting_code(self, conversation: str) -> bool:
        return bool(await self.redis.exists(self._k("code-step", conversation)))

    async def complete_with_code(self, conversation: str, channel: str, code: str,
                                 now: Optional[datetime] = None) -> Attempt:
        """Second step: the right code within 10 minutes starts the session for the matched patient."""
        now = now or datetime.now(timezone.utc)
        locked = await self.lock_state(conversation, now)
        if locked:
            return Attempt(False, locked)
        key = self._k("code-step", conversation)
        token = await self.redis.get(key)
        if token is None or not await self.redis.exists(self._k("otp", conversation)):
            # No code was sent (the date did not match, or past the hourly limits): a wrong code
            # all the same, so the count of failures does not tell which.
            return Attempt(False, await self._fail(conversation, now))
        if not await self.check_code(conversation, code, now):
            return Attempt(False, await self.lock_state(conversation, now))
        patient_ref = self.keys.decrypt_text(token.decode() if isinstance(token, bytes) else token, key)
        await self.redis.delete(key, self._k("fails", conversation))
        await self._store_session(conversation, Session(patient_ref, channel, now, now))
        return Attempt(True, None, patient_ref)

    async def check_code(self, conversation: str, code: str, now: Optional[datetime] = None) -> bool:
        """True once for the right code within 10 minutes; the code is spent either way on success."""
        now = now or datetime.now(timezone.utc)
        key = self._k("otp", conversation)
        raw = await self.redis.get(key)
        if raw is None:
            return False
        doc = json.loads(raw)
        if now > datetime.fromisoformat(doc["expires"]):
            await self.redis.delete(key)
            return False
        if not hmac.compare_digest(doc["hash"], self._code_hash(conversation, code.strip())):
            await self._fail(conversation, now)
            return False
        return bool(await self.redis.delete(key))  # single use: only the first of two racing checks wins


# -- what the patient asked before being asked to verify -------------------------------------------
PENDING_TTL = timedelta(minutes=10)


async def request_verification(registry: IdentityRegistry, conversation: str, intent: str) -> None:
    """Remember that ``conversation`` was asked for its DOB to answer ``intent`` (no PHI kept)."""
    await registry.redis.set(registry._k("pending", conversation), intent, ex=int(PENDING_TTL.total_seconds()))


async def pending_verification(registry: IdentityRegistry, conversation: str) -> Optional[str]:
    raw = await registry.redis.get(registry._k("pending", conversation))
    return raw.decode() if isinstance(raw, bytes) else raw


def pending_verification_on(registry: IdentityRegistry, pipe: Pipeline,
                            conversation: str) -> Callable[[list], Optional[str]]:
    """Queue the read of :func:`pending_verification` on ``pipe``; the returned function reads
    the intent from the pipeline's results."""
    at = len(pipe)
    pipe.get(registry._k("pending", conversation))
    return lambda results: as_text(results[at])


async def clear_pending(registry: IdentityRegistry, conversation: str) -> None:
    await registry.redis.delete(registry._k("pending", conversation))
