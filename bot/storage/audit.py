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

Writers never race on the chain: an append is one script that adds entries only if the head
is still the hash the first was chained to, and the writer retries on the new head if another
writer moved it first. Within one process appends are committed in groups: while one round
trip is in flight, the events recorded meanwhile wait and then go together in the next one,
chained in the order they were recorded. A busy gateway's append therefore waits for at most
one round trip ahead of its own, however many messages are in flight (the safety gate's
answers wait on a few appends). Each writer remembers the head it wrote, so there is no read
first. An event without an actor is a programming error and raises.
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

from bot.storage.crypto import DecryptionError, KeyRing
from bot.storage.redis_client import as_text

GENESIS = "0" * 64

# One round trip per group of appends: add the entries (ARGV[4] fields each, already chained
# one to the next) and move the head only if the head is still the ``prev`` the first entry was
# chained to; otherwise return the current head (the writer re-chains and retries).
_APPEND = """
local head = redis.call('GET', KEYS[2]) or ARGV[3]
if head ~= ARGV[1] then return head end
local width = tonumber(ARGV[4])
for first = 5, #ARGV, width do
  redis.call('XADD', KEYS[1], '*', unpack(ARGV, first, first + width - 1))
end
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


def _text_fields(raw: Mapping) -> Dict[str, str]:
    return {as_text(k): as_text(v) for k, v in raw.items()}


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
        self._queued: List[tuple] = []  # (public fields, sealed details, future of the hash), in order
        self._committing = False
        self._flusher: Optional[asyncio.Future] = None
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
        done: asyncio.Future = asyncio.get_running_loop().create_future()
        self._queued.append((public, sealed, done))
        if not self._committing:
            # Its own task: a caller that is cancelled (a client hung up) never strands the
            # events queued behind its own; they are written all the same.
            self._committing = True
            self._flusher = asyncio.ensure_future(self._flush())  # kept: the loop holds tasks weakly
        return await done

    async def _flush(self) -> None:
        try:
            while self._queued:
                group, self._queued = self._queued, []
                await self._commit(group)
        finally:
            self._committing = False

    async def _commit(self, group: List[tuple]) -> None:
        """Append ``group`` in one round trip (retrying on another writer's head); every
        event's future gets its hash, or the error if the append failed."""
        try:
            prev = self._last_head
            if prev is None:
                prev = as_text(await self.redis.get(self.head)) or GENESIS
            while True:
                first, args, hashes = prev, [], []
                for public, sealed, _ in group:
                    digest = _digest(prev, public)
                    fields = {**public, "details": sealed, "prev": prev, "hash": digest}
                    args += [x for kv in fields.items() for x in kv]
                    hashes.append(digest)
                    prev = digest
                current = await self._append(keys=[self.stream, self.head],
                                             args=[first, prev, GENESIS, len(fields) * 2, *args])
                if current == 0:
                    self._last_head = prev
                    break
                prev = as_text(current)  # another process appended first: chain onto its entry
        except BaseException as exc:
            self._last_head = None  # unknown now: read it again next time
            for _, _, done in group:
                if not done.done():
                    done.set_exception(exc if isinstance(exc, Exception) else RuntimeError("audit append cancelled"))
            if not isinstance(exc, Exception):
                raise
            return
        for (_, _, done), digest in zip(group, hashes):
            if not done.done():
                done.set_result(digest)

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
