"""Which number on file a web chat conversation is about.

An SMS conversation is its number; a web conversation is a browser, about no number until it
learns one: from a secure link opened from an SMS (``via="link"``), or from the patient typing
their mobile number when the bot asks before verification (``via="number"``, bound whether or
not anyone is on file there, so the reply never says whether the number is known). The date
of birth is then checked against the patients at that number, and the one-time code goes to
the number on file (bot.records.appointments.AppointmentStore.number_on_file), never to a
number the browser typed.

One key per conversation, ``pb:web:bind:<conversation>``, sealed (the phone index inside would
otherwise tie the web conversation to the SMS one in a dump of Redis), 12 hours: the longest a
verified session lasts (bot.records.identity).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Optional

import redis.asyncio as aioredis

from bot.storage.crypto import KeyRing
from bot.storage.redis_client import as_text

BINDING_TTL = timedelta(hours=12)
VIA_LINK, VIA_NUMBER = "link", "number"
VIAS = (VIA_LINK, VIA_NUMBER)


@dataclass(frozen=True)
class Binding:
    phone_idx: str  # blind index of the number (bot.storage.crypto.phone_index)
    via: str  # "link" | "number"


class WebBindings:
    """The number each web conversation is about, by blind index, sealed."""

    def __init__(self, client: aioredis.Redis, keys: KeyRing, prefix: str = "pb:") -> None:
        self.redis = client
        self.keys = keys
        self.prefix = prefix

    def _key(self, conversation: str) -> str:
        return f"{self.prefix}web:bind:{conversation}"

    async def bind(self, conversation: str, phone_idx: str, via: str) -> None:
        """Bind ``conversation`` to the number with blind index ``phone_idx`` (replacing any
        earlier binding) for 12 hours; ``via`` says how it was learnt."""
        if via not in VIAS:
            raise ValueError(f"unknown binding source {via!r}")
        if not phone_idx:
            raise ValueError("a binding needs a phone index")
        key = self._key(conversation)
        sealed = self.keys.encrypt_text(json.dumps({"phone_idx": phone_idx, "via": via}), key)
        await self.redis.set(key, sealed, ex=int(BINDING_TTL.total_seconds()))

    async def bound(self, conversation: str) -> Optional[Binding]:
        """The conversation's binding, or None (never bound, expired or cleared)."""
        key = self._key(conversation)
        token = as_text(await self.redis.get(key))
        if token is None:
            return None
        doc = json.loads(self.keys.decrypt_text(token, key))
        return Binding(doc["phone_idx"], doc["via"])

    async def clear(self, conversation: str) -> None:
        """Forget the binding (sign out)."""
        await self.redis.delete(self._key(conversation))
