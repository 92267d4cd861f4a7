"""Configuration changes are audited: at start-up the gateway compares the running settings
and office.yml with the last configuration it saw, and records what changed.

Only names and keyed digests are kept (``<prefix>config:seen``): settings may hold secrets
or credentials (a password inside REDIS_URL), so their values are never stored or logged.
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Dict, List

import redis.asyncio as aioredis

from bot.storage.audit import AuditLog
from bot.config import Settings
from bot.storage.crypto import KeyRing


def fingerprint(cfg: Settings, keys: KeyRing) -> Dict[str, str]:
    """Setting name -> keyed digest of its value; office.yml by the digest of its content."""
    values = {f.name: str(getattr(cfg, f.name)) for f in dataclasses.fields(cfg) if f.name != "extra"}
    values["data_key"] = hashlib.sha256(cfg.data_key).hexdigest()
    values["office.yml"] = hashlib.sha256(cfg.office_config.read_bytes()).hexdigest()
    return {name: keys.blind_index(value, "config")[:16] for name, value in values.items()}


async def audit_configuration(client: aioredis.Redis, keys: KeyRing, audit: AuditLog, cfg: Settings,
                              actor: str) -> List[str]:
    """Record the configuration; audit the first one and every change. Returns what changed."""
    key = f"{cfg.redis_prefix}config:seen"
    seen = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in (await client.hgetall(key)).items()}
    current = fingerprint(cfg, keys)
    changed = sorted(name for name in current.keys() | seen.keys() if current.get(name) != seen.get(name))
    if not changed:
        return []
    if seen:
        await audit.record(actor, "configuration_changed", "", "ok", {"changed": changed})
    else:
        await audit.record(actor, "configuration_recorded", "", "ok", {"settings": len(current)})
    async with client.pipeline(transaction=True) as pipe:
        pipe.delete(key)
        pipe.hset(key, mapping=current)
        await pipe.execute()
    return changed if seen else []
