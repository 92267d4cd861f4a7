"""The language each conversation is held in, sealed in Redis.

A conversation's language is what the patient chose ("español", "english": source ``switch``),
what they write in (``message``), or, for a message the office starts (a reminder, a staff
reply), the patient record's preferred language (``office``). The record's language is never
used to answer a patient's own message before they have been spoken to in it: a known and an
unknown number writing the same words must get the same answer (bot/core/replies.py), and a
Spanish answer to a number that never wrote Spanish would say a record exists there.

One key per conversation, ``pb:lang:<conversation>``, sealed (a language is a demographic fact
about a person), two years from the last change: a patient texts the same office for years.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Callable, Optional, Tuple

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from bot.core.language import LANGUAGES
from bot.storage.crypto import KeyRing
from bot.storage.redis_client import as_text

LANGUAGE_TTL = timedelta(days=730)
SWITCH, MESSAGE, RECORD, OFFICE = "switch", "message", "record", "office"
SOURCES = (SWITCH, MESSAGE, RECORD, OFFICE)


class LanguageStore:
    """Each conversation's language, by conversation pseudonym, sealed."""

    def __init__(self, client: aioredis.Redis, keys: KeyRing, prefix: str = "pb:",
                 supported: Tuple[str, ...] = LANGUAGES, default: str = "en") -> None:
        self.redis = client
        self.keys = keys
        self.prefix = prefix
        self.supported = tuple(supported)
        self.default = default

    def _key(self, conversation: str) -> str:
        return f"{self.prefix}lang:{conversation}"

    def _open(self, key: str, token) -> Optional[str]:
        token = as_text(token)
        if token is None:
            return None
        language = json.loads(self.keys.decrypt_text(token, key)).get("language")
        return language if language in self.supported else None

    def get_on(self, pipe: Pipeline, conversation: str) -> Callable[[list], Optional[str]]:
        """Queue the read on ``pipe``; the returned function takes the pipeline's results."""
        key = self._key(conversation)
        index = len(pipe)
        pipe.get(key)
        return lambda results: self._open(key, results[index])

    async def get(self, conversation: str) -> Optional[str]:
        """The conversation's language, or None when it has none yet."""
        key = self._key(conversation)
        return self._open(key, await self.redis.get(key))

    async def set(self, conversation: str, language: str, source: str) -> None:
        """Hold ``conversation`` in ``language`` from now on; ``source`` says how it was learnt."""
        if language not in self.supported:
            raise ValueError(f"unsupported language {language!r}")
        if source not in SOURCES:
            raise ValueError(f"unknown language source {source!r}")
        key = self._key(conversation)
        doc = {"language": language, "source": source, "at": datetime.now(timezone.utc).isoformat()}
        await self.redis.set(key, self.keys.encrypt_text(json.dumps(doc), key),
                             ex=int(LANGUAGE_TTL.total_seconds()))

    async def for_outbound(self, conversation: str, patient_language: Optional[str]) -> str:
        """The language of a message the office starts: the conversation's, else the patient
        record's if supported, else the office default. A conversation that had none is held
        in the chosen one from now on, so the patient's replies are answered in it."""
        current = await self.get(conversation)
        if current is not None:
            return current
        chosen = patient_language if patient_language in self.supported else self.default
        await self.set(conversation, chosen, OFFICE)
        return chosen
