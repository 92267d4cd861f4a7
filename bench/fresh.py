"""Benchmarks start from fresh conversations: Rasa's per-turn cost grows with the length of a
session, so a rerun on the same synthetic senders would measure ever longer conversations."""
from __future__ import annotations

from typing import Iterable

from bot.config import Settings
from bot.storage.crypto import conversation_id, keyring
from bot.storage.redis_client import sync_redis


def forget_conversations(cfg: Settings, numbers: Iterable[str], raw_ids: Iterable[str] = ()) -> None:
    """Delete the trackers (and idempotency-free state) of the benchmark's own synthetic senders."""
    keys = keyring(cfg)
    ids = [conversation_id(keys, "sms", n) for n in numbers] + list(raw_ids)
    client = sync_redis(cfg)
    client.delete(*[f"{cfg.redis_prefix}tracker:{i}" for i in ids])
    for key in client.scan_iter(match=f"{cfg.redis_prefix}rate:*"):  # the bench texts faster than people
        client.delete(key)
