"""The exchange log staff see: patient messages, staff replies, internal notes and bot answers
in one timeline (the conversation's stream), each entry sealed bound to the stream's key."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Dict, List, Optional

from bot.records.handoff.events import MESSAGE, HandoffEvents
from bot.storage.redis_client import as_text

LOG_KINDS = ("patient", "staff", "note", "bot")


def _entry_time(entry_id: str) -> str:
    """A stream entry's time (its id is milliseconds since the epoch), ISO 8601 UTC."""
    millis = int(entry_id.split("-", 1)[0])
    return datetime.fromtimestamp(millis / 1000, timezone.utc).isoformat()


class HandoffLog(HandoffEvents):
    """Writes and opens the conversation's log."""

    async def post_exchange(self, conversation: str, sealed_text: str, reply: str, by: str) -> None:
        """A patient message (already sealed by the caller) and the answer it got, in that
        order, with one announcement: one round trip (an emergency's redirect waits on it)."""
        key = self.inbox_key(conversation)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(key, {"body": sealed_text})
            pipe.xadd(key, {"body": self._keys().encrypt_text(reply, key), "kind": "bot", "by": by})
            pipe.publish(self.events_channel, self._event(MESSAGE, conversation))
            await pipe.execute()

    async def add_to_log(self, conversation: str, kind: str, text: str, by: str) -> str:
        """Append a staff reply, an internal note or a bot message (sealed); returns its id."""
        if kind not in LOG_KINDS:
            raise ValueError(f"unknown log entry kind {kind!r}")
        key = self.inbox_key(conversation)
        entry_id = await self.redis.xadd(key, {"body": self._keys().encrypt_text(text, key), "kind": kind, "by": by})
        await self._announce(MESSAGE, conversation)
        return as_text(entry_id)

    async def log(self, conversation: str, after: Optional[str] = None) -> List[Dict[str, str]]:
        """The conversation's log, opened, oldest first (only entries after ``after`` if given):
        ``{"id", "at", "kind", "by", "text"}``. Callers audit the view: this is PHI."""
        key = self.inbox_key(conversation)
        start = f"({after}" if after else "-"
        out = []
        for entry_id, fields in await self.redis.xrange(key, min=start):
            f = {as_text(k): as_text(v) for k, v in fields.items()}
            entry_id = as_text(entry_id)
            out.append({"id": entry_id, "at": _entry_time(entry_id), "kind": f.get("kind", "patient"),
                        "by": f.get("by", ""), "text": self._keys().decrypt_text(f["body"], key)})
        return out
