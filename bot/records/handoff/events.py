"""The console's live view: every queue or log change announced on a pub/sub channel, with the
conversation's pseudonym and the kind of change only (never text)."""
from __future__ import annotations

import json

from bot.records.handoff.store import HandoffStore

QUEUE = "queue"      # a conversation was queued, raised, claimed, taken or handed back
MESSAGE = "message"  # the conversation's log has a new entry


class HandoffEvents(HandoffStore):
    """Announces hand-off changes to the staff console."""

    @property
    def events_channel(self) -> str:
        """Pub/sub channel announcing queue and log changes (pseudonym and kind only)."""
        return f"{self.prefix}staff:events"

    @staticmethod
    def _event(kind: str, conversation: str) -> str:
        """The announcement's payload, also for callers that publish it in their own round trip."""
        return json.dumps({"type": kind, "conversation": conversation})

    async def _announce(self, kind: str, conversation: str) -> None:
        await self.redis.publish(self.events_channel, self._event(kind, conversation))
