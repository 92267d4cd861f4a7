"""The number to text back: conversation ids are one-way pseudonyms, so a queued conversation
keeps the patient's number, sealed bound to its entry, for staff replies by SMS."""
from __future__ import annotations

from typing import Optional

import redis.asyncio as aioredis

from bot.records.handoff.store import HandoffStore
from bot.storage.crypto import KeyRing
from bot.storage.redis_client import as_text

# Keep the sealed number only on a conversation that is in the queue (never create an entry).
_REMEMBER_CONTACT = """
if redis.call('HEXISTS', KEYS[1], 'status') == 1 then
  return redis.call('HSETNX', KEYS[1], 'contact', ARGV[1])
end
return 0
"""


class HandoffContacts(HandoffStore):
    """The sealed number on each queued conversation."""

    def __init__(self, client: aioredis.Redis, keys: Optional[KeyRing], prefix: str = "pb:") -> None:
        super().__init__(client, keys, prefix)
        self._remember_contact = client.register_script(_REMEMBER_CONTACT)

    def _seal_contact(self, conversation: str, number: str) -> str:
        key = self._conv_key(conversation)
        return self._keys().encrypt_text(number, f"{key}#contact")

    async def remember_contact(self, conversation: str, number: str) -> bool:
        """Keep the patient's number (sealed) on a queued conversation, so staff can reply by
        text: conversation ids are one-way pseudonyms. Does nothing outside the queue."""
        sealed = self._seal_contact(conversation, number)
        return bool(await self._remember_contact(keys=[self._conv_key(conversation)], args=[sealed]))

    async def contact(self, conversation: str) -> Optional[str]:
        """The number to reply to, or None (not queued, not SMS, or no message since escalation)."""
        key = self._conv_key(conversation)
        token = as_text(await self.redis.hget(key, "contact"))
        return self._keys().decrypt_text(token, f"{key}#contact") if token else None
