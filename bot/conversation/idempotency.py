"""A message id answered once: a provider's retry of a message gets the first answer again,
with no second side effect, and never a second fetch of PHI."""
from __future__ import annotations

import asyncio
import json
import logging
from typing import List, Set

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from bot.conversation import own_replies
from bot.conversation.inbound import Inbound
from bot.core import replies
from bot.records.secure_links import carries_link
from bot.storage.crypto import KeyRing

logger = logging.getLogger(__name__)

TTL_SECONDS = 48 * 3600  # providers retry for up to a day; keep twice that
PENDING = "pending"


class Idempotency:
    def __init__(self, redis: aioredis.Redis, keys: KeyRing, prefix: str) -> None:
        self.redis = redis
        self.keys = keys
        self.prefix = prefix
        self._answered_with_phi: Set[str] = set()  # message ids whose answer carried PHI

    def key(self, msg: Inbound) -> str:
        # The sender is part of it: an id another sender also used (a web client chooses its own)
        # is another message, never a duplicate answered with someone else's reply.
        blind = self.keys.blind_index(f"{msg.sender}\x00{msg.message_id}", "message-id")[:40]
        return f"{self.prefix}idem:{msg.channel}:{blind}"

    def claim_on(self, pipe: Pipeline, msg: Inbound) -> None:
        """Queue the claim of the message's id on ``pipe``: its result is true for the first delivery."""
        pipe.set(self.key(msg), PENDING, nx=True, ex=TTL_SECONDS)

    async def earlier_replies(self, msg: Inbound, wait: float) -> List[str]:
        """The replies a message id already claimed got (its claim failed: a duplicate). If the
        first delivery is still being answered after ``wait`` seconds, the holding message: a
        provider's retry never gets an empty answer, and the first delivery still answers."""
        key = self.key(msg)
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            stored = await self.redis.get(key)
            stored = stored.decode() if isinstance(stored, bytes) else stored
            if stored and stored != PENDING:
                return json.loads(self.keys.decrypt_text(stored, key))
            if asyncio.get_running_loop().time() >= deadline:
                logger.info("duplicate %s delivery while the first is still being answered: holding message",
                            msg.channel)
                return [own_replies.holding()]
            await asyncio.sleep(0.05)

    def answered_with_phi(self, message_id: str) -> None:
        """The answer to ``message_id`` carries PHI: a replay of it must not get it again."""
        self._answered_with_phi.add(message_id)

    def not_with_phi(self, message_id: str) -> None:
        """The stored answer to ``message_id`` is not the one that carried PHI (a holding message)."""
        self._answered_with_phi.discard(message_id)

    def to_remember(self, msg: Inbound, texts: List[str]) -> List[str]:
        """What a replay of ``msg`` gets: its answer, except that a replayed request must never
        fetch PHI again (whoever replays a captured, signed webhook gets the answer on their
        HTTP connection, not on the phone), nor a secure link (which leads to PHI; and its
        token is then never stored, even sealed)."""
        phi_sent = msg.message_id in self._answered_with_phi
        self._answered_with_phi.discard(msg.message_id)
        return [replies.replayed_phi()] if phi_sent or any(carries_link(t) for t in texts) else texts

    async def remember(self, msg: Inbound, texts: List[str]) -> None:
        """Store ``texts`` (from :meth:`to_remember`) as the answer replays of ``msg`` get."""
        key = self.key(msg)
        sealed = self.keys.encrypt_text(json.dumps(texts), key)
        await self.redis.set(key, sealed, ex=TTL_SECONDS)

    async def release(self, msg: Inbound) -> None:
        """Forget a claimed message id so the provider's retry is processed afresh."""
        if not msg.message_id:
            return
        try:
            await self.redis.delete(self.key(msg))
        except RedisError:
            pass
