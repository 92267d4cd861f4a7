"""One-time links to the secure web chat, sent by SMS instead of health information.

A link is ``<PUBLIC_BASE_URL>/chat/s/<token>``. The token is 192 random bits
(``secrets.token_urlsafe(24)``); Redis never holds it, only its keyed hash (the blind index,
purpose ``secure-link``), so a dump of Redis gives nobody a link that opens. A link is bound to
the conversation and number it was sent to and the question it answers, carries no PHI, opens
once, and expires 15 minutes after it was issued.

* ``pb:link:<hash>``  a hash: ``state`` (live | used | expired), ``expires`` (Unix seconds),
  ``id`` (a random id that ties the link's audit events together; not derived from the token),
  ``conversation`` (the pseudonym the audit events name) and, while live, ``grant`` (sealed:
  conversation, phone index, intent). Once used or expired the grant is deleted and the rest
  kept for a day, so the page can tell a used link from an expired one from one that never
  existed, and a late open is audited on its conversation.
* ``pb:links:live``   a sorted set of the live links' hashes by expiry, for :meth:`SecureLinks.sweep`.

Opening and expiring are one script each, so a link changes state once: two browsers racing
to open it get one "ok" and one "used", and an unopened link's expiry is audited once. Audit
events name the conversation and the link's id, never the token or its hash.
"""
from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import List, Optional

import redis.asyncio as aioredis

from bot.storage.audit import SYSTEM, AuditLog
from bot.storage.crypto import KeyRing
from bot.storage.redis_client import as_text

LINK_TTL = timedelta(minutes=15)
MARKER_TTL = timedelta(hours=24)  # how long "used" / "expired" stays known after the link is gone
TOKEN_BYTES = 24  # 192 bits; the issue asks for at least 128
LINK_PATH = "/chat/s/"
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{32}")  # what token_urlsafe(24) gives
LIVE, USED, EXPIRED = "live", "used", "expired"
OK, UNKNOWN = "ok", "unknown"

# Spend a link: a live one before its expiry becomes "used"; a live one past it becomes
# "expired" (and is returned, so its expiry is audited once); either way the grant goes.
# KEYS: link, live index. ARGV: now (Unix seconds), marker TTL (seconds), the link's hash.
# Returns {outcome, grant or false, id, conversation}; outcome is the state when nothing changed.
_SPEND = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'unknown', false, false, false} end
local id = redis.call('HGET', KEYS[1], 'id')
local conversation = redis.call('HGET', KEYS[1], 'conversation')
if state ~= 'live' then return {state, false, id, conversation} end
local grant = redis.call('HGET', KEYS[1], 'grant')
local outcome = 'used'
if tonumber(ARGV[1]) >= tonumber(redis.call('HGET', KEYS[1], 'expires')) then outcome = 'expired' end
redis.call('HSET', KEYS[1], 'state', outcome)
redis.call('HDEL', KEYS[1], 'grant')
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[3])
if outcome == 'used' then return {'ok', grant, id, conversation} end
return {'expired_now', false, id, conversation}
"""
# Expire a live link past its time (the sweep); one already used, expired or gone is only
# dropped from the index.
# KEYS: link, live index. ARGV: now, marker TTL, the link's hash. Returns {id, conversation} or false.
_EXPIRE = """
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'live' and tonumber(ARGV[1]) < tonumber(redis.call('HGET', KEYS[1], 'expires')) then return false end
redis.call('ZREM', KEYS[2], ARGV[3])
if state ~= 'live' then return false end
redis.call('HSET', KEYS[1], 'state', 'expired')
redis.call('HDEL', KEYS[1], 'grant')
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {redis.call('HGET', KEYS[1], 'id'), redis.call('HGET', KEYS[1], 'conversation')}
"""


@dataclass(frozen=True)
class LinkGrant:
    """What an opened link gives: the conversation it was sent to, the number's blind index and
    the question it answers (None: no particular one; ask the patient what they need)."""
    conversation: str
    phone_idx: str
    intent: Optional[str]


@dataclass(frozen=True)
class LinkOpen:
    """The result of opening a link: ``status`` is "ok" (``grant`` set), "used", "expired" or "unknown"."""
    status: str
    grant: Optional[LinkGrant] = None


def new_token() -> str:
    """A fresh link token: 192 random bits, URL-safe."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def link_url(public_base_url: str, token: str) -> str:
    """The link the patient gets: ``<PUBLIC_BASE_URL>/chat/s/<token>``."""
    return f"{public_base_url.rstrip('/')}{LINK_PATH}{token}"


_IN_TEXT = re.compile(re.escape(LINK_PATH) + r"[A-Za-z0-9_-]+")


def carries_link(text: str) -> bool:
    """Whether ``text`` holds a secure link (such a text is never stored or replayed as is)."""
    return bool(_IN_TEXT.search(text))


def redact(text: str) -> str:
    """``text`` with any secure link's token replaced, for records that outlive the link."""
    return _IN_TEXT.sub(LINK_PATH + "[link]", text)


def _epoch(at: datetime) -> int:
    return int(at.timestamp())


class SecureLinks:
    """Issues, opens and expires one-time links to the secure web chat."""

    def __init__(self, client: aioredis.Redis, keys: KeyRing, prefix: str, audit: AuditLog) -> None:
        self.redis = client
        self.keys = keys
        self.prefix = prefix
        self.audit = audit
        self.live_index = f"{prefix}links:live"
        self._spend = client.register_script(_SPEND)
        self._expire = client.register_script(_EXPIRE)

    def _hash(self, token: str) -> str:
        return self.keys.blind_index(token, "secure-link")[:40]

    def _key(self, link_hash: str) -> str:
        return f"{self.prefix}link:{link_hash}"

    def _grant(self, key: str, sealed) -> LinkGrant:
        doc = json.loads(self.keys.decrypt_text(as_text(sealed), f"{key}#grant"))
        return LinkGrant(doc["conversation"], doc["phone_idx"], doc["intent"])

    async def issue(self, conversation: str, phone_idx: str, intent: Optional[str],
                    now: Optional[datetime] = None) -> str:
        """A new one-time link's token for ``conversation`` (the number ``phone_idx``, the
        question ``intent``), valid 15 minutes from ``now``; audited ``secure_link_issued``."""
        now = now or datetime.now(timezone.utc)
        token = new_token()
        link_hash = self._hash(token)
        key, link_id, expires = self._key(link_hash), secrets.token_hex(8), _epoch(now + LINK_TTL)
        grant = json.dumps({"conversation": conversation, "phone_idx": phone_idx, "intent": intent})
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"state": LIVE, "expires": expires, "id": link_id, "conversation": conversation,
                                    "grant": self.keys.encrypt_text(grant, f"{key}#grant")})
            pipe.expire(key, int((LINK_TTL + MARKER_TTL).total_seconds()))
            pipe.zadd(self.live_index, {link_hash: expires})
            await pipe.execute()
        await self.audit.record(SYSTEM, "secure_link_issued", conversation, "ok",
                                {"link": link_id, "intent": intent or "", "expires": (now + LINK_TTL).isoformat()})
        return token

    async def peek(self, token: str, now: Optional[datetime] = None) -> str:
        """The link's status without spending it: "live", "used", "expired" or "unknown". For
        the page a GET shows: phones fetch a link's preview when it arrives, and that fetch
        must not spend it (only the patient's press of the page's button does)."""
        now = now or datetime.now(timezone.utc)
        if not isinstance(token, str) or not _TOKEN_RE.fullmatch(token):
            return UNKNOWN
        state, expires = await self.redis.hmget(self._key(self._hash(token)), "state", "expires")
        state = as_text(state)
        if state is None:
            return UNKNOWN
        if state == LIVE and _epoch(now) >= int(as_text(expires)):
            return EXPIRED
        return state

    async def open(self, token: str, now: Optional[datetime] = None) -> LinkOpen:
        """Spend the link ``token``: "ok" with its grant the first time within 15 minutes, and
        never again; "used", "expired" or "unknown" otherwise (each audited)."""
        now = now or datetime.now(timezone.utc)
        if not isinstance(token, str) or not _TOKEN_RE.fullmatch(token):
            await self.audit.record(SYSTEM, "secure_link_refused", "", UNKNOWN, {})
            return LinkOpen(UNKNOWN)
        link_hash = self._hash(token)
        key = self._key(link_hash)
        found = await self._spend(keys=[key, self.live_index],
                                  args=[_epoch(now), int(MARKER_TTL.total_seconds()), link_hash])
        outcome, link_id, conversation = as_text(found[0]), as_text(found[2]) or "", as_text(found[3]) or ""
        if outcome == OK:
            await self.audit.record(SYSTEM, "secure_link_opened", conversation, "ok", {"link": link_id})
            return LinkOpen(OK, self._grant(key, found[1]))
        if outcome == "expired_now":  # this open found it past its time: its expiry, then the refusal
            await self._audit_expired(conversation, link_id)
            outcome = EXPIRED
        await self.audit.record(SYSTEM, "secure_link_refused", conversation, outcome,
                                {"link": link_id} if link_id else {})
        return LinkOpen(outcome)

    async def sweep(self, now: Optional[datetime] = None) -> int:
        """Expire every live link past its time, each audited ``secure_link_expired`` once;
        returns how many expired. Safe to run from several processes at once."""
        now = now or datetime.now(timezone.utc)
        due: List = await self.redis.zrangebyscore(self.live_index, "-inf", _epoch(now))
        expired = 0
        for member in due:
            link_hash = as_text(member)
            key = self._key(link_hash)
            found = await self._expire(keys=[key, self.live_index],
                                       args=[_epoch(now), int(MARKER_TTL.total_seconds()), link_hash])
            if found:
                await self._audit_expired(as_text(found[1]), as_text(found[0]))
                expired += 1
        return expired

    async def _audit_expired(self, conversation: str, link_id: str) -> None:
        await self.audit.record(SYSTEM, "secure_link_expired", conversation, "expired", {"link": link_id})
