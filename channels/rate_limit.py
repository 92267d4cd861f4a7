"""Per-sender rate limit for inbound messages: a fixed one-minute window counted in Redis.

Keyed by the sender's blind index (never the number). A burst beyond the limit is refused
with 429 by the channel; the limit is a setting (SMS_RATE_LIMIT_PER_MINUTE).
"""
from __future__ import annotations

import time

import redis.asyncio as aioredis

WINDOW_SECONDS = 60


class RateLimiter:
    def __init__(self, client: aioredis.Redis, prefix: str, per_minute: int) -> None:
        self.redis = client
        self.prefix = prefix
        self.per_minute = per_minute

    async def allow(self, sender_idx: str, now: float = None) -> bool:
        """Count one message from ``sender_idx``; False once the minute's budget is spent."""
        window = int((now if now is not None else time.time()) // WINDOW_SECONDS)
        key = f"{self.prefix}rate:{sender_idx}:{window}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, WINDOW_SECONDS * 2)
            count, _ = await pipe.execute()
        return count <= self.per_minute
