"""Staff accounts for the console: Argon2id passwords, a TOTP second factor, lockout, roles.

An account is a Redis hash ``pb:staff:user:<uuid>``; the unique id (``staff:<uuid>``) is what
the audit trail names. Usernames map to ids in one hash (``pb:staff:usernames``); no key holds
a name. The password is stored only as an Argon2id hash, the TOTP secret sealed bound to its
field (aad ``<key>#totp_secret``). Every sign-in needs the password *and* a current TOTP code,
and a code is accepted once (a replayed code fails). After ``max_failures`` failures in a row
the account is locked for ``lockout_minutes``, whatever is typed; every failure looks the same
to the person signing in, so nobody learns whether a username exists or is locked.
"""
from __future__ import annotations

import asyncio
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Dict, List, Optional, Tuple

import pyotp
import redis.asyncio as aioredis
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from bot.storage.crypto import KeyRing
from bot.storage.redis_client import as_text

ROLES = ("agent", "admin")
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD_CHARS = 12
TOTP_STEP = 30

# Accept a TOTP step only if it is newer than the last one accepted (RFC 6238 section 5.2).
_USE_STEP = """
local last = tonumber(redis.call('HGET', KEYS[1], 'totp_last_step') or '-1')
if tonumber(ARGV[1]) > last then
  redis.call('HSET', KEYS[1], 'totp_last_step', ARGV[1])
  return 1
end
return 0
"""


class StaffError(ValueError):
    """A staff account operation was refused; the message says why (never a password)."""


@dataclass(frozen=True)
class StaffMember:
    id: str
    username: str
    role: str
    disabled: bool
    created_at: str
    failures: int = 0
    locked_until: str = ""

    @property
    def actor(self) -> str:
        """The audit actor for this staff member."""
        return f"staff:{self.id}"

    def locked(self, now: datetime) -> bool:
        return bool(self.locked_until) and datetime.fromisoformat(self.locked_until) > now


@dataclass(frozen=True)
class Enrolment:
    """What a new or reset account is handed once: the TOTP secret and its provisioning URI."""

    member: StaffMember
    password: str
    totp_secret: str
    provisioning_uri: str


@dataclass(frozen=True)
class SignIn:
    ok: bool
    member: Optional[StaffMember]
    reason: str  # ok | bad_password | bad_code | locked | disabled | unknown_user


def generate_password() -> str:
    """A random password for a new or reset account (about 120 bits)."""
    return secrets.token_urlsafe(15)


class StaffAccounts:
    def __init__(self, client: aioredis.Redis, keys: KeyRing, prefix: str = "pb:", max_failures: int = 5,
                 lockout_minutes: int = 15, issuer: str = "patientbot",
                 hasher: Optional[PasswordHasher] = None) -> None:
        self.redis = client
        self.keys = keys
        self.prefix = prefix
        self.max_failures = max_failures
        self.lockout = timedelta(minutes=lockout_minutes)
        self.issuer = issuer
        self.hasher = hasher or PasswordHasher()  # Argon2id, RFC 9106 low-memory profile
        self._dummy_hash: Optional[str] = None

    # -- keys ---------------------------------------------------------------------------------
    def _user_key(self, staff_id: str) -> str:
        return f"{self.prefix}staff:user:{staff_id}"

    @property
    def _names_key(self) -> str:
        return f"{self.prefix}staff:usernames"

    # -- reading ------------------------------------------------------------------------------
    async def get(self, staff_id: str) -> Optional[StaffMember]:
        raw = await self.redis.hgetall(self._user_key(staff_id))
        if not raw:
            return None
        f = {as_text(k): as_text(v) for k, v in raw.items()}
        return StaffMember(id=staff_id, username=f["username"], role=f["role"], disabled=f.get("disabled") == "1",
                           created_at=f.get("created_at", ""), failures=int(f.get("failures", "0")),
                           locked_until=f.get("locked_until", ""))

    async def id_of(self, username: str) -> Optional[str]:
        return as_text(await self.redis.hget(self._names_key, username.strip().lower()))

    async def by_username(self, username: str) -> Optional[StaffMember]:
        staff_id = await self.id_of(username)
        return await self.get(staff_id) if staff_id else None

    async def list(self) -> List[StaffMember]:
        out = []
        for staff_id in (await self.redis.hgetall(self._names_key)).values():
            member = await self.get(as_text(staff_id))
            if member:
                out.append(member)
        return sorted(out, key=lambda m: m.username)

    async def usernames(self) -> Dict[str, str]:
        """``{staff id: username}`` for showing who holds what."""
        return {as_text(v): as_text(k) for k, v in (await self.redis.hgetall(self._names_key)).items()}

    # -- changing -----------------------------------------------------------------------------
    async def _hash(self, password: str) -> str:
        if len(password) < MIN_PASSWORD_CHARS:
            raise StaffError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")
        return await asyncio.to_thread(self.hasher.hash, password)  # ~0.1 s of CPU: off the event loop

    def _enrol(self, member: StaffMember, password: str) -> Tuple[str, Dict[str, str], Enrolment]:
        secret = pyotp.random_base32()
        uri = pyotp.TOTP(secret).provisioning_uri(name=member.username, issuer_name=self.issuer)
        key = self._user_key(member.id)
        sealed = self.keys.encrypt_text(secret, f"{key}#totp_secret")
        return key, {"totp_secret": sealed, "totp_last_step": "-1"}, Enrolment(member, password, secret, uri)

    async def add(self, username: str, role: str, password: Optional[str] = None) -> Enrolment:
        """Create an account; the password (generated if not given) and TOTP secret are returned once."""
        username = username.strip().lower()
        if not USERNAME_RE.match(username):
            raise StaffError("a username is 2-64 characters: lowercase letters, digits, '.', '_' or '-'")
        if role not in ROLES:
            raise StaffError(f"role must be one of {', '.join(ROLES)}")
        password = password or generate_password()
        password_hash = await self._hash(password)
        staff_id = str(uuid.uuid4())
        if not await self.redis.hsetnx(self._names_key, username, staff_id):
            raise StaffError(f"a staff member named {username!r} exists already")
        member = StaffMember(staff_id, username, role, False, datetime.now(timezone.utc).isoformat())
        key, totp_fields, enrolment = self._enrol(member, password)
        await self.redis.hset(key, mapping={"username": username, "role": role, "disabled": "0",
                                            "created_at": member.created_at, "password_hash": password_hash,
                                            "failures": "0", "locked_until": "", **totp_fields})
        return enrolment

    async def _require(self, username: str) -> StaffMember:
        member = await self.by_username(username)
        if member is None:
            raise StaffError(f"no staff member named {username!r}")
        return member

    async def reset(self, username: str, password: Optional[str] = None) -> Enrolment:
        """New password and new TOTP secret (a lost phone, a forgotten password); lifts a lockout."""
        member = await self._require(username)
        password = password or generate_password()
        password_hash = await self._hash(password)
        key, totp_fields, enrolment = self._enrol(member, password)
        await self.redis.hset(key, mapping={"password_hash": password_hash, "failures": "0", "locked_until": "",
                                            **totp_fields})
        return enrolment

    async def set_disabled(self, username: str, disabled: bool) -> StaffMember:
        member = await self._require(username)
        await self.redis.hset(self._user_key(member.id), "disabled", "1" if disabled else "0")
        return await self.get(member.id)

    async def unlock(self, username: str) -> StaffMember:
        member = await self._require(username)
        await self.redis.hset(self._user_key(member.id), mapping={"failures": "0", "locked_until": ""})
        return await self.get(member.id)

    # -- signing in ---------------------------------------------------------------------------
    async def _verify_password(self, password_hash: Optional[str], password: str) -> bool:
        if password_hash is None:  # unknown user: spend the same time, so timing tells nothing
            if self._dummy_hash is None:
                self._dummy_hash = await asyncio.to_thread(self.hasher.hash, secrets.token_urlsafe(16))
            password_hash = self._dummy_hash
        try:
            return await asyncio.to_thread(self.hasher.verify, password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def _verify_code(self, member: StaffMember, code: str, now: float) -> bool:
        key = self._user_key(member.id)
        token = as_text(await self.redis.hget(key, "totp_secret"))
        code = re.sub(r"\s", "", code or "")
        if not token or not re.fullmatch(r"\d{6}", code):
            return False
        totp = pyotp.TOTP(self.keys.decrypt_text(token, f"{key}#totp_secret"))
        current = int(now // TOTP_STEP)
        for step in (current - 1, current, current + 1):  # one step of clock drift either way
            if secrets.compare_digest(totp.at(step * TOTP_STEP), code):
                return bool(await self.redis.eval(_USE_STEP, 1, key, step))
        return False

    async def authenticate(self, username: str, password: str, code: str,
                           now: Optional[datetime] = None) -> SignIn:
        """Check password and TOTP code; count failures and lock the account after too many."""
        now = now or datetime.now(timezone.utc)
        member = await self.by_username(username or "")
        password_hash = as_text(await self.redis.hget(self._user_key(member.id), "password_hash")) if member else None
        password_ok = await self._verify_password(password_hash, password or "")
        if member is None:
            return SignIn(False, None, "unknown_user")
        if member.disabled:
            return SignIn(False, member, "disabled")
        if member.locked(now):
            return SignIn(False, member, "locked")
        if not password_ok:
            return await self._failed(member, "bad_password", now)
        if not await self._verify_code(member, code, now.timestamp()):
            return await self._failed(member, "bad_code", now)
        key = self._user_key(member.id)
        await self.redis.hset(key, mapping={"failures": "0", "locked_until": ""})
        if self.hasher.check_needs_rehash(password_hash):
            await self.redis.hset(key, "password_hash", await asyncio.to_thread(self.hasher.hash, password))
        return SignIn(True, await self.get(member.id), "ok")

    async def _failed(self, member: StaffMember, reason: str, now: datetime) -> SignIn:
        key = self._user_key(member.id)
        failures = await self.redis.hincrby(key, "failures", 1)
        if failures >= self.max_failures:
            await self.redis.hset(key, mapping={"locked_until": (now + self.lockout).isoformat(), "failures": "0"})
            return SignIn(False, await self.get(member.id), "locked_now")
        return SignIn(False, await self.get(member.id), reason)


def current_code(secret: str, at: Optional[float] = None) -> str:
    """The TOTP code for ``secret`` at ``at`` (default now): what an authenticator app shows."""
    return pyotp.TOTP(secret).at(int(at if at is not None else time.time()))
