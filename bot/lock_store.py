"""Rasa's Redis lock store on the project's one Redis setting (configured in endpoints.yml).

Rasa's own ``type: redis`` lock store takes host, port and db from endpoints.yml; this one
uses REDIS_URL with the same TLS (``rediss://``) and ACL user/password as every other
process, and keeps its keys under REDIS_PREFIX. Lock records hold conversation ids, which
are pseudonyms, and nothing else.
"""
from __future__ import annotations

from typing import Any

from rasa.core.lock_store import LockStore, RedisLockStore

from bot.config import settings
from bot.redis_client import sync_redis


class SettingsRedisLockStore(RedisLockStore):
    def __init__(self, endpoint_config: Any = None, **_ignored: Any) -> None:
        cfg = settings()
        self.red = sync_redis(cfg)
        self.red.ping()  # refuse to start without Redis
        self.key_prefix = f"{cfg.redis_prefix}lock:"
        LockStore.__init__(self)
