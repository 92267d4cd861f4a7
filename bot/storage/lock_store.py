"""Rasa's Redis lock store on the project's one Redis setting, with atomic ticket changes
(configured in endpoints.yml).

Rasa's own ``type: redis`` lock store takes host, port and db from endpoints.yml; this one
uses REDIS_URL with the same TLS (``rediss://``) and ACL user/password as every other
process, and keeps its keys under REDIS_PREFIX. Lock records hold conversation ids, which
are pseudonyms, and nothing else.

Rasa Open Source's Redis lock store also reads a conversation's lock, changes it and writes
it back in separate calls: two Rasa servers issuing a ticket at once can both get the same
number and handle two of the conversation's messages side by side (seen with two instances:
tests/test_scale_out.py, tests/test_lock_store.py). Here each change is a compare-and-set
script: it writes the new lock only if the stored one is still what the change was computed
from, and otherwise returns the stored one to compute the change again. The store remembers
the lock it wrote last, so issuing a ticket and cleaning it up are one round trip each when
no other server touched the conversation meanwhile (three before, with WATCH/GET/MULTI).
Rasa calls these synchronously on its event loop, so every round trip saved is time every
patient waits less.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Dict, Optional, TypeVar

from rasa.core.lock import TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, LockStore, RedisLockStore

from bot.config import settings
from bot.storage.redis_client import sync_redis

T = TypeVar("T")

# KEYS[1] the lock; ARGV[1] the stored lock the change was computed from ('' = none);
# ARGV[2] the new lock ('' = delete). Returns {1, ''} when written, else {0, the stored lock}.
_COMPARE_AND_SET = """
local current = redis.call('GET', KEYS[1]) or ''
if current ~= ARGV[1] then return {0, current} end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2]) end
return {1, ''}
"""
REMEMBERED_LOCKS = 10_000  # locks of conversations in flight; more means something never cleaned up


class SettingsRedisLockStore(RedisLockStore):
    def __init__(self, endpoint_config: Any = None, **_ignored: Any) -> None:
        cfg = settings()
        self.red = sync_redis(cfg)
        self.red.ping()  # refuse to start without Redis
        self.key_prefix = f"{cfg.redis_prefix}lock:"
        self._compare_and_set = self.red.register_script(_COMPARE_AND_SET)
        self._written: Dict[str, str] = {}  # key -> the lock this store wrote last (a guess, checked)
        LockStore.__init__(self)

    def _change(self, conversation_id: str, change: Callable[[TicketLock], T], create: bool) -> Optional[T]:
        """Apply ``change`` to the conversation's lock atomically; delete it once empty."""
        key = self.key_prefix + conversation_id
        if key in self._written:
            stored = self._written.pop(key)
        elif create:
            stored = ""  # usually no lock: the last message's cleanup deleted it
        else:
            stored = _text(self.red.get(key))
        while True:
            if not stored and not create:
                return None
            lock = TicketLock.from_dict(json.loads(stored)) if stored else TicketLock(conversation_id)
            result = change(lock)
            new = lock.dumps() if lock.tickets else ""  # nobody holds or waits: the lock goes
            written, current = self._compare_and_set(keys=[key], args=[stored, new])
            if written:
                if new:
                    if len(self._written) >= REMEMBERED_LOCKS:
                        self._written.clear()
                    self._written[key] = new
                return result
            stored = _text(current)  # changed meanwhile (another server): compute again from it

    def issue_ticket(self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME) -> int:
        return self._change(conversation_id, lambda lock: lock.issue_ticket(lock_lifetime), create=True)

    def update_lock(self, conversation_id: str) -> None:
        self._change(conversation_id, lambda lock: lock.remove_expired_tickets(), create=False)

    def cleanup(self, conversation_id: str, ticket_number: int) -> None:
        self._change(conversation_id, lambda lock: lock.remove_ticket_for(ticket_number), create=False)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")
