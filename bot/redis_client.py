"""Redis connections, built from one URL so TLS (``rediss://``) and ACL users work everywhere.

``REDIS_URL`` may carry ``username:password@`` and ``?ssl_cert_reqs=...``; ``REDIS_USERNAME``
and ``REDIS_PASSWORD`` override the URL's credentials so a password need not sit in the URL.
Each process keeps one pool: connections are reused, never set up per message.
"""
from __future__ import annotations

from typing import Dict, Optional

import redis
import redis.asyncio as aioredis

from bot.config import Settings, settings as current_settings


def _options(cfg: Settings) -> Dict[str, object]:
    options: Dict[str, object] = {"socket_timeout": 5, "socket_connect_timeout": 3, "health_check_interval": 30}
    username = cfg.extra.get("REDIS_USERNAME")
    password = cfg.extra.get("REDIS_PASSWORD")
    if username:
        options["username"] = username
    if password:
        options["password"] = password
    return options


_sync: Dict[str, redis.Redis] = {}


def sync_redis(cfg: Optional[Settings] = None) -> redis.Redis:
    """A shared synchronous client (CLI, Rasa tracker store)."""
    cfg = cfg or current_settings()
    client = _sync.get(cfg.redis_url)
    if client is None:
        client = _sync[cfg.redis_url] = redis.Redis.from_url(cfg.redis_url, **_options(cfg))
    return client


def async_redis(cfg: Optional[Settings] = None) -> aioredis.Redis:
    """A new asyncio client with its own pool; the caller keeps it for the process's life."""
    cfg = cfg or current_settings()
    return aioredis.Redis.from_url(cfg.redis_url, **_options(cfg))
