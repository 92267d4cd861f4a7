"""What every part of the hand-off shares: the Redis client, the key ring and the key names.

Keys, under the configured prefix:

* ``handoff:<conversation>``  hash: since, reason, priority, channel, status, held_by,
  held_since, contact (the patient's number, sealed bound to ``<key>#contact``)
* ``handoff:queue``           sorted set of waiting and held conversations, by priority then time
* ``inbox:<conversation>``    stream: the conversation's log (patient messages, staff replies,
  notes, bot answers), each body sealed bound to the stream's key
* ``staff:events``            pub/sub channel: pseudonym and kind of change only, never text
"""
from __future__ import annotations

from typing import Optional

import redis.asyncio as aioredis

from bot.storage.crypto import KeyRing


class HandoffStore:
    """The Redis client, key ring and key names the hand-off parts work on."""

    def __init__(self, client: aioredis.Redis, keys: Optional[KeyRing], prefix: str = "pb:") -> None:
        self.redis = client
        self.keys = keys  # needed only to seal and open log entries and the contact number
        self.prefix = prefix

    def _conv_key(self, conversation: str) -> str:
        return f"{self.prefix}handoff:{conversation}"

    @property
    def _queue_key(self) -> str:
        return f"{self.prefix}handoff:queue"

    def inbox_key(self, conversation: str) -> str:
        """The conversation's log stream; also the binding its entries are sealed to."""
        return f"{self.prefix}inbox:{conversation}"

    def _keys(self) -> KeyRing:
        if self.keys is None:
            raise RuntimeError(f"this {type(self).__name__} was made without a key ring")
        return self.keys
