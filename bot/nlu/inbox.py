"""The review inbox: messages the bot did not understand well enough, for admins to label.

Captured: messages the NLU fell back on (``nlu_fallback``), messages classified below
``NLU_REVIEW_THRESHOLD``, messages staff flagged, and messages the bot asked about whose
reading the patient then picked (labelled with the pick, for an admin to accept). Layout (``pb:`` is the prefix):

* ``pb:nlu-inbox:item:<id>``  hash; ``text`` sealed (aad ``<key>#text``), the rest plain:
  predicted intent, confidence, reason, count, first/last seen, status (``open`` or
  ``proposed`` with ``proposed_intent``)
* ``pb:nlu-inbox:open``        sorted set of ids by last seen

The id is a keyed blind index of the normalised text, so the same message sent many times is
one item with a count. Items expire after ``NLU_INBOX_DAYS``; labelling or discarding deletes
the item, so the original text is kept no longer than needed. The original is kept only
sealed; an admin only ever sees it through the scrubber (bot.nlu.scrub), and only the
scrubbed text is written to the training data.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import List, Optional

from bot.storage.crypto import KeyRing
from bot.nlu.scrub import Scrubber

FALLBACK_INTENT = "nlu_fallback"
# "clarified": the patient picked a reading when the bot asked; the pick is the predicted intent.
REASONS = ("fallback", "low_confidence", "staff_flag", "clarified")


@dataclass
class InboxItem:
    id: str
    text: str  # scrubbed
    predicted: str
    confidence: float
    reason: str
    count: int
    first_seen: float
    last_seen: float
    status: str
    proposed_intent: str = ""


def review_reason(intent: Optional[str], confidence: Optional[float], threshold: float) -> Optional[str]:
    """Why a parse result belongs in the inbox, or None if it does not."""
    if not intent or intent == FALLBACK_INTENT:
        return "fallback"
    if confidence is None or confidence < threshold:
        return "low_confidence"
    return None


def _s(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class ReviewInbox:
    def __init__(self, client, keys: KeyRing, prefix: str = "pb:", ttl_days: int = 30) -> None:
        self.redis = client
        self.keys = keys
        self.prefix = prefix
        self.ttl = int(ttl_days * 86400)

    def item_key(self, item_id: str) -> str:
        return f"{self.prefix}nlu-inbox:item:{item_id}"

    @property
    def index_key(self) -> str:
        return f"{self.prefix}nlu-inbox:open"

    def item_id(self, text: str) -> str:
        return self.keys.blind_index(" ".join(text.casefold().split()), "nlu-inbox")[:24]

    async def capture(self, text: str, predicted: str, confidence: float, reason: str,
                      at: Optional[float] = None) -> Optional[str]:
        """Keep ``text`` (sealed) for review; returns the item id (None for an empty text)."""
        if reason not in REASONS:
            raise ValueError(f"unknown inbox reason {reason!r}")
        if not text.strip():
            return None
        at = time.time() if at is None else at
        item_id = self.item_id(text)
        key = self.item_key(item_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, "text", self.keys.encrypt_text(text, f"{key}#text"))
            pipe.hsetnx(key, "first_seen", repr(at))
            pipe.hsetnx(key, "status", "open")
            pipe.hset(key, mapping={"predicted": predicted or FALLBACK_INTENT,
                                    "confidence": f"{float(confidence or 0.0):.4f}",
                                    "reason": reason, "last_seen": repr(at)})
            pipe.hincrby(key, "count", 1)
            pipe.expire(key, self.ttl)
            pipe.zadd(self.index_key, {item_id: at})
            await pipe.execute()
        return item_id

    async def _load(self, item_id: str, scrubber: Scrubber) -> Optional[InboxItem]:
        key = self.item_key(item_id)
        raw = {_s(k): v for k, v in (await self.redis.hgetall(key)).items()}
        if "text" not in raw:
            return None
        text = scrubber.scrub(self.keys.decrypt_text(_s(raw["text"]), f"{key}#text"))
        return InboxItem(item_id, text, _s(raw.get("predicted", FALLBACK_INTENT)),
                         float(_s(raw.get("confidence", "0"))), _s(raw.get("reason", "")),
                         int(_s(raw.get("count", "1"))), float(_s(raw.get("first_seen", "0"))),
                         float(_s(raw.get("last_seen", "0"))), _s(raw.get("status", "open")),
                         _s(raw.get("proposed_intent", "")))

    async def get(self, item_id: str, scrubber: Scrubber) -> Optional[InboxItem]:
        """One item, its text scrubbed."""
        return await self._load(item_id, scrubber)

    async def items(self, scrubber: Scrubber, limit: int = 200) -> List[InboxItem]:
        """Open and proposed items, most recent first, texts scrubbed (expired ones pruned)."""
        out = []
        for raw_id in await self.redis.zrevrange(self.index_key, 0, limit - 1):
            item = await self._load(_s(raw_id), scrubber)
            if item is None:
                await self.redis.zrem(self.index_key, raw_id)
                continue
            out.append(item)
        return out

    async def propose(self, item_id: str, intent: str) -> bool:
        """Mark an item as an example of an intent that does not exist yet."""
        key = self.item_key(item_id)
        if not await self.redis.exists(key):
            return False
        await self.redis.hset(key, mapping={"status": "proposed", "proposed_intent": intent})
        return True

    async def remove(self, item_id: str) -> bool:
        """Delete an item (labelled or discarded): its sealed text goes with it."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.item_key(item_id))
            pipe.zrem(self.index_key, item_id)
            deleted, _ = await pipe.execute()
        return bool(deleted)
