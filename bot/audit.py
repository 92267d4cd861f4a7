"""The audit trail: an append-only, hash-chained log of who did what, when, to which conversation.

Each event is one entry of the Redis stream ``pb:audit``. Its fields are public metadata
(time, actor, action, subject pseudonym, outcome) plus ``details``, sealed with AES-GCM because
details may hold PHI. Every entry carries the hash of the one before it, so deleting or
editing an entry breaks the chain at that point and :meth:`AuditLog.verify` says where.

The chain covers ``digest``, the SHA-256 of the sealed plaintext (which holds a random salt,
so the digest says nothing about short details such as a date), not the ciphertext: key
rotation re-encrypts the details without touching the chain, and verify still catches a
changed, swapped or deleted ciphertext because it must open and match its digest.

Retention may trim the oldest entries (never younger than the audit minimum): the first kept
entry's ``prev`` is then recorded in ``pb:audit:anchor`` with the number of entries removed,
so the chain still verifies from there and exported heads keep their positions.

Writers never race on the chain: an append is one script that adds the entry only if the head
is still the hash the entry was chained to, and the writer retries on the new head if another
writer moved it first. Within one process appends queue on a lock and remember the head they
wrote, so a busy gateway's append costs one round trip (the safety gate's answers wait on a
few of them). An event without an actor is a programming error and raises.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping, Optional

import redis.asyncio as aioredis

from bot.crypto import DecryptionError, KeyRing

GENESIS = "0" * 64

# One round trip per append: add the entry and move the head only if the head is still the
# ``prev`` the entry was chained to; otherwise return the current head (the writer retries).
_APPEND = """
local head = redis.call('GET', KEYS[2]) or ARGV[3]
if head ~= ARGV[1] then return head end
redis.call('XADD', KEYS[1], '*', unpack(ARGV, 4))
redis.call('SET', KEYS[2], ARGV[2])
return 0
"""
SYSTEM = "system:gateway"  # the actor for what the gateway does on its own


@dataclass(frozen=True)
class AuditEvent:
    at: str
    actor: str
    action: str
    subject: str
    outcome: str
    details: Dict[str, Any]
    digest: str
    prev: str
    hash: str
    entry_id: str = ""


def _text(value) -> Optional[str]:
    return value.decode() if isinstance(value, bytes) else value


def _text_fields(raw: Mapping) -> Dict[str, str]:
    return {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()}


def _digest(prev: str, public: Mapping[str, str]) -> str:
    canonical = json.dumps({"prev": prev, **public}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class AuditLog:
    def __init__(self, client: aioredis.Redis, keys: KeyRing, prefix: str = "pb:") -> None:
        self.redis = client
        self.keys = keys
        self.stream = f"{prefix}audit"
        self.head = f"{prefix}audit:head"
        self.anchor = f"{prefix}audit:anchor"
        self._append_lock = asyncio.Lock()
        self._last_head: Optional[str] = None  # what this writer appended last (usually still the head)
        self._append = client.register_script(_APPEND)

    def _open(self, f: Mapping[str, str]) -> Dict[str, Any]:
        """The entry's details, checked against the digest the chain covers."""
        plaintext = self.keys.decrypt(f["details"], self.stream)
        if hashlib.sha256(plaintext).hexdigest() != f.get("digest"):
            raise DecryptionError("audit details do not match the entry's digest")
        return json.loads(plaintext)["details"]

    async def record(self, actor: str, action: str, subject: str = "", outcome: str = "ok",
                     details: Optional[Mapping[str, Any]] = None, at: Optional[datetime] = None) -> str:
        """Append one event; returns its hash. ``subject`` is a pseudonym, never a number or name."""
        if not actor:
            raise ValueError("an audit event needs an actor")
        if not action:
            raise ValueError("an audit event needs an action")
        when = (at or datetime.now(timezone.utc)).isoformat()
        plaintext = json.dumps({"salt": secrets.token_hex(16), "details": dict(details or {})}, sort_keys=True).encode()
        public = {"at": when, "actor": actor, "action": action, "subject": subject, "outcome": outcome,
                  "digest": hashlib.sha256(plaintext).hexdigest()}
        sealed = self.keys.encrypt(plaintext, self.stream)
        async with self._append_lock:
            prev = self._last_head
            if prev is None:
                prev = _text(await self.redis.get(self.head)) or GENESIS
            while True:
                digest = _digest(prev, public)
                fields = {**public, "details": sealed, "prev": prev, "hash": digest}
                current = await self._append(keys=[self.stream, self.head],
                                             args=[prev, digest, GENESIS, *[x for kv in fields.items() for x in kv]])
                if current == 0:
                    self._last_head = digest
                    return digest
                prev = _text(current)  # another process appended first: chain onto its entry

    async def events(self, count: Optional[int] = None) -> List[AuditEvent]:
        """Events oldest first, details decrypted."""
        out = []
        for entry_id, raw in await self.redis.xrange(self.stream, count=count):
            f = _text_fields(raw)
            out.append(AuditEvent(f["at"], f["actor"], f["action"], f["subject"], f["outcome"], self._open(f),
                                  f["digest"], f["prev"], f["hash"],
                                  entry_id.decode() if isinstance(entry_id, bytes) else entry_id))
        return out

    async def verify(self, exported_head: Optional[Mapping[str, Any]] = None) -> Optional[str]:
        """None if the log is intact, else where it breaks: an entry id, "head", or a divergence.

        Each entry must chain to the one before (a changed byte, a deleted, reordered or inserted
        entry all break it). Truncating the end and resetting the head key leaves a valid but
        shorter chain: checking against a head exported earlier (:meth:`head_record`) finds it,
        because the exported hash must still sit at the exported position.
        """
        prev, position = await self._anchor()
        hashes = {}
        for entry_id, raw in await self.redis.xrange(self.stream):
            f = _text_fields(raw)
            public = {k: f.get(k, "") for k in ("at", "actor", "action", "subject", "outcome", "digest")}
            if f.get("prev") != prev or _digest(prev, public) != f.get("hash"):
                return entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            try:
                self._open(f)
            except (DecryptionError, ValueError, KeyError):
                return entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            prev = f["hash"]
            position += 1
            hashes[position] = prev
        head = await self.redis.get(self.head)
        head = (head.decode() if isinstance(head, bytes) else head) or GENESIS
        if head != prev:
            return "head"
        if exported_head is not None:
            at = int(exported_head["entries"])
            trimmed_past = at <= (await self._anchor())[1]  # retention removed it: nothing to compare
            if not trimmed_past and hashes.get(at) != exported_head["hash"]:
                return "diverged from the exported head (rewritten or truncated)"
        return None

    async def _anchor(self) -> tuple:
        """(prev hash of the first stored entry, entries removed before it) after retention."""
        raw = _text_fields(await self.redis.hgetall(self.anchor))
        return raw.get("prev", GENESIS), int(raw.get("removed", 0))

    async def trim_before(self, cutoff: datetime, keep_subjects: frozenset = frozenset()) -> int:
        """Remove entries older than ``cutoff`` from the start of the log (retention).

        Stops at the first entry about a subject under legal hold, so the chain stays whole.
        The last removed entry's hash becomes the anchor the rest chains from. Returns how many
        entries were removed.
        """
        due = []
        for entry_id, raw in await self.redis.xrange(self.stream):
            f = _text_fields(raw)
            if datetime.fromisoformat(f["at"]) >= cutoff or f.get("subject") in keep_subjects:
                break
            due.append((entry_id, f["hash"]))
        if not due:
            return 0
        _, before = await self._anchor()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xdel(self.stream, *[entry_id for entry_id, _ in due])
            pipe.hset(self.anchor, mapping={"prev": due[-1][1], "removed": before + len(due)})
            await pipe.execute()
        return len(due)

    async def head_record(self) -> Dict[str, Any]:
        """The chain's current head, to keep outside Redis and check against later."""
        head = await self.redis.get(self.head)
        return {"hash": (head.decode() if isinstance(head, bytes) else head) or GENESIS,
                "entries": await self.redis.xlen(self.stream) + (await self._anchor())[1],
                "at": datetime.now(timezone.utc).isoformat()}
