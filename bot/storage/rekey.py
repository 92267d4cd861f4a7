"""Data-key rotation, online: a new key seals from now on, everything sealed before is
re-encrypted under it while the stack keeps serving, and then the old keys are destroyed.

Why it can be generic: every sealed value's associated data is the Redis key it is stored
under (``key#field`` inside a hash), so a value can be re-sealed knowing only where it was
found. Strings and hash fields are swapped with a compare-and-set script (a value written
meanwhile by the service is left alone). A stream's entries cannot be edited, so a script
rebuilds the stream in one atomic step with the same entry ids, swapping only the values
read before and copying entries appended since (a busy audit stream never starves it). The audit chain covers a digest of the
plaintext, so re-encrypting its details leaves the chain and exported heads valid.

Old keys are destroyed only after a second pass finds nothing they sealed. If anything
could not be re-encrypted (a value that does not open where it is stored), the old keys are
kept and the report names the Redis keys, so no data is ever made unreadable by a rotation.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Dict, Iterator, List, Optional, Set

import redis

from bot.storage.crypto import REFRESH_SECONDS, DecryptionError, KeyRing, KeyStore, key_id_of
from bot.storage.redis_client import as_text

# A process checks for a new key every REFRESH_SECONDS; waiting longer before re-encrypting
# means nothing is still being sealed with an old key once the scan starts.
GRACE_SECONDS = 2 * REFRESH_SECONDS + 1

_SWAP_STRING = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL') return 1
end
return 0
"""
_REWRITE_STREAM = """
local swap = {}
for i = 1, #ARGV, 4 do swap[ARGV[i] .. '|' .. ARGV[i + 1]] = {ARGV[i + 2], ARGV[i + 3]} end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local last
for i = 1, #info, 2 do if info[i] == 'last-generated-id' then last = info[i + 1] end end
local ttl = redis.call('PTTL', KEYS[1])
redis.call('DEL', KEYS[2])
local changed = 0
for _, entry in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do
  local args = {KEYS[2], entry[1]}
  local fields = entry[2]
  for j = 1, #fields, 2 do
    local value = fields[j + 1]
    local s = swap[entry[1] .. '|' .. fields[j]]
    if s and s[1] == value then value = s[2]; changed = changed + 1 end
    args[#args + 1] = fields[j]
    args[#args + 1] = value
  end
  redis.call('XADD', unpack(args))
end
redis.call('XSETID', KEYS[2], last)
redis.call('RENAME', KEYS[2], KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return changed
"""
_SWAP_FIELD = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) return 1
end
return 0
"""


@dataclass
class RotationReport:
    new_key: str
    old_keys: List[str]
    keys_scanned: int = 0
    values_reencrypted: int = 0
    unreadable: List[str] = field(default_factory=list)  # Redis keys whose values did not open
    retired: List[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return not self.unreadable and bool(self.retired or not self.old_keys)


class Rekeyer:
    """Re-encrypts everything under one Redis prefix with the active data key."""

    def __init__(self, client: redis.Redis, store: KeyStore, prefix: str,
                 progress: Optional[Callable[[int, int], None]] = None) -> None:
        self.redis = client
        self.store = store
        self.prefix = prefix
        self.progress = progress or (lambda done, total: None)
        self.status_key = f"{prefix}keys:rotation"
        self._swap_string = client.register_script(_SWAP_STRING)
        self._swap_field = client.register_script(_SWAP_FIELD)
        self._rewrite_stream = client.register_script(_REWRITE_STREAM)

    def _keys(self) -> Iterator[str]:
        skip = {self.store.key, self.status_key}
        for key in self.redis.scan_iter(match=f"{self.prefix}*", count=500):
            key = as_text(key)
            if key not in skip and not key.endswith(":rekey-tmp"):
                yield key

    # -- one Redis key -------------------------------------------------------------------------
    def _reseal(self, ring: KeyRing, token: str, aad: str) -> str:
        return ring.encrypt(ring.decrypt(token, aad), aad)

    def _rekey_string(self, ring: KeyRing, key: str, old: Set[str]) -> int:
        token = as_text(self.redis.get(key))
        if key_id_of(token) not in old:
            return 0
        return int(self._swap_string(keys=[key], args=[token, self._reseal(ring, token, key)]))

    def _rekey_hash(self, ring: KeyRing, key: str, old: Set[str]) -> int:
        done = 0
        for fld, token in self.redis.hgetall(key).items():
            fld, token = as_text(fld), as_text(token)
            if key_id_of(token) in old:
                fresh = self._reseal(ring, token, f"{key}#{fld}")
                done += int(self._swap_field(keys=[key], args=[fld, token, fresh]))
        return done

    def _rekey_stream(self, ring: KeyRing, key: str, old: Set[str]) -> int:
        swaps: List[str] = []
        for entry_id, fields in self.redis.xrange(key):
            for name, value in fields.items():
                value = as_text(value)
                if key_id_of(value) in old:
                    swaps += [as_text(entry_id), as_text(name), value, self._reseal(ring, value, key)]
        if not swaps:
            return 0
        return int(self._rewrite_stream(keys=[key, f"{key}:rekey-tmp"], args=swaps))

    def _rekey(self, ring: KeyRing, key: str, old: Set[str]) -> int:
        kind = as_text(self.redis.type(key))
        if kind == "string":
            return self._rekey_string(ring, key, old)
        if kind == "hash":
            return self._rekey_hash(ring, key, old)
        if kind == "stream":
            return self._rekey_stream(ring, key, old)
        return 0  # sets, sorted sets, lists hold pseudonyms and timestamps, never ciphertexts

    def sealed_by(self, old: Set[str]) -> List[str]:
        """Redis keys still holding a value sealed by one of ``old`` (the check before retiring)."""
        found = []
        for key in self._keys():
            kind = as_text(self.redis.type(key))
            if kind == "string":
                values = [self.redis.get(key)]
            elif kind == "hash":
                values = list(self.redis.hvals(key))
            elif kind == "stream":
                values = [v for _, f in self.redis.xrange(key) for v in f.values()]
            elif kind in ("set", "zset", "list"):
                values = (list(self.redis.smembers(key)) if kind == "set" else
                          self.redis.zrange(key, 0, -1) if kind == "zset" else self.redis.lrange(key, 0, -1))
            else:
                values = []
            if any(key_id_of(v) in old for v in values):
                found.append(key)
        return found

    # -- the whole rotation ------------------------------------------------------------------
    def _status(self, **fields) -> None:
        self.redis.hset(self.status_key, mapping={k: str(v) for k, v in fields.items()})

    def rotate(self, grace: float = GRACE_SECONDS) -> RotationReport:
        started = time.monotonic()
        old = set(self.store.status()["keys"])
        new_key = self.store.add_key()
        report = RotationReport(new_key=new_key, old_keys=sorted(old))
        self._status(state="waiting", new_key=new_key, done=0, total=0,
                     started=datetime.now(timezone.utc).isoformat())
        time.sleep(grace)
        ring = self.store.load()
        keys = list(self._keys())
        self._status(state="re-encrypting", total=len(keys))
        for n, key in enumerate(keys, 1):
            try:
                report.values_reencrypted += self._rekey(ring, key, old)
            except DecryptionError:
                report.unreadable.append(key)
            report.keys_scanned = n
            if n % 200 == 0 or n == len(keys):
                self.progress(n, len(keys))
                self._status(done=n)
        left = self.sealed_by(old)  # a value a slow process sealed with an old key: once more
        for key in left:
            try:
                report.values_reencrypted += self._rekey(ring, key, old)
            except DecryptionError:
                pass
        left = self.sealed_by(old)
        report.unreadable = sorted(set(report.unreadable) | set(left))
        if not report.unreadable:
            for kid in sorted(old):
                self.store.retire(kid)
            report.retired = sorted(old)
        report.seconds = time.monotonic() - started
        self._status(state="complete" if report.complete else "incomplete: old keys kept",
                     finished=datetime.now(timezone.utc).isoformat(), reencrypted=report.values_reencrypted)
        return report
