"""Per-sender rate limit for inbound messages: a fixed one-minute window counted in Redis.

Keyed by the sender's blind index (never the number). A burst beyond the limit is refused
with 429 by the channel; the limit is a setting (SMS_RATE_LIMIT_PER_MINUTE).
"""
from __future__ import annotations

import time
from typing import Callable, Optional

from redis.asyncio.client import Pipeline

WINDOW_SECONDS = 60


class RateLimiter:
    def __init__(self, prefix: str, per_minute: int) -> None:
        self.prefix = prefix
        self.per_minute = per_minute

    def count(self, pipe: Pipeline, sender_idx: str, now: Optional[float] = None) -> Callable[[list], bool]:
        """Queue one message's count from ``sender_idx`` on ``pipe`` (so it goes in the same
        round trip as the message's other first reads); the returned function reads the
        verdict from the pipeline's results: False once the minute's budget is spent."""
        window = int((now if now is not None else time.time()) // WINDOW_SECONDS)
        key = f"{self.prefix}rate:{sender_idx}:{window}"
        at = len(pipe)
        pipe.incr(key)
        pipe.expire(key, WINDOW_SECONDS * 2)
        return lambda results: results[at] <= self.per_minute
