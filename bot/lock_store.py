"""Rasa's Redis lock store on the project's one Redis setting, with atomic ticket changes
(configured in endpoints.yml).

Rasa's own ``type: redis`` lock store takes host, port and db from endpoints.yml; this one
uses REDIS_URL with the same TLS (``rediss://``) and ACL user/password as every other
process, and keeps its keys under REDIS_PREFIX. Lock records hold conversation ids, which
are pseudonyms, and nothing else.

Rasa Open Source's Redis lock store also reads a conversation's lock, changes it and writes
it back in separate calls: two Rasa servers issuing a ticket at once can both get the same
number and handle two of the conversation's messages side by side (seen with two instances:
tests/test_scale_out.py, tests/test_lock_store.py). Here each change is one WATCH/MULTI
transaction, retried on conflict.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Optional, TypeVar

from rasa.core.lock import TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, LockStore, RedisLockStore
from redis.exceptions import WatchError

from bot.config import settings
from bot.redis_client import sync_redis

T = TypeVar("T")


class SettingsRedisLockStore(RedisLockStore):
    def __init__(self, endpoint_config: Any = None, **_ignored: Any) -> None:
        cfg = settings()
        self.red = sync_redis(cfg)
        self.red.ping()  # refuse to start without Redis
        self.key_prefix = f"{cfg.redis_prefix}lock:"
        LockStore.__init__(self)

    def _change(self, conversation_id: str, change: Callable[[TicketLock], T], create: bool) -> Optional[T]:
        """Apply ``change`` to the conversation's lock in one transaction; delete it once empty."""
        key = self.key_prefix + conversation_id
        with self.red.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    if raw is None and not create:
                        pipe.unwatch()
                        return None
                    lock = TicketLock.from_dict(json.loads(raw)) if raw else TicketLock(conversation_id)
                    result = change(lock)
                    pipe.multi()
                    if lock.tickets:
                        pipe.set(key, lock.dumps())
                    else:  # nobody holds or waits: the lock goes, as Rasa's cleanup does
                        pipe.delete(key)
                    pipe.execute()
                    return result
                except WatchError:
                    continue

    def issue_ticket(self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME) -> int:
        return self._change(conversation_id, lambda lock: lock.issue_ticket(lock_lifetime), create=True)

    def update_lock(self, conversation_id: str) -> None:
        self._change(conversation_id, lambda lock: lock.remove_expired_tickets(), create=False)

    def cleanup(self, conversation_id: str, ticket_number: int) -> None:
        self._change(conversation_id, lambda lock: lock.remove_ticket_for(ticket_number), create=False)
