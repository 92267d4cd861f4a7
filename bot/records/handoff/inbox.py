"""The patient's messages while escalated: the gateway keeps the bot silent and posts each
message, sealed, to the conversation's log for the staff member."""
from __future__ import annotations

from typing import List

from bot.records.handoff.events import MESSAGE, HandoffEvents
from bot.storage.redis_client import as_text


class HandoffInbox(HandoffEvents):
    """Patient messages kept for staff in the conversation's log stream."""

    async def post_to_inbox(self, conversation: str, sealed_text: str) -> None:
        """Keep a patient message (already encrypted by the caller) for the staff member."""
        await self.redis.xadd(self.inbox_key(conversation), {"body": sealed_text})
        await self._announce(MESSAGE, conversation)

    async def inbox(self, conversation: str) -> List[str]:
        """The sealed patient messages kept for staff, oldest first."""
        out = []
        for _, fields in await self.redis.xrange(self.inbox_key(conversation)):
            f = {as_text(k): as_text(v) for k, v in fields.items()}
            if f.get("kind", "patient") == "patient":
                out.append(f["body"])
        return out
