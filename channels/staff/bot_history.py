"""The console's link to the Rasa tracker, through the Rasa-side connector (channels.rasa_bridge.connector).

Staff see the bot conversation that led to the hand-off (the tracker's user and bot texts),
and on hand-back what staff said is recorded in the tracker as bot utterances (author
``staff``), so the conversation stays whole. Both calls carry the gateway's shared secret;
Rasa's own HTTP API stays off.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Dict, List, Optional

import aiohttp

from bot.conversation.rasa_client import SECRET_HEADER

logger = logging.getLogger(__name__)

TRANSCRIPT_PATH = "/webhooks/patientbot/transcript"
STAFF_MESSAGES_PATH = "/webhooks/patientbot/staff_messages"


class BotHistory:
    def __init__(self, http: aiohttp.ClientSession, rasa_url: str, secret: str, timeout: float = 5.0) -> None:
        self.http = http
        self.base = rasa_url.rstrip("/")
        self.headers = {SECRET_HEADER: secret}
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def transcript(self, conversation: str) -> Optional[List[Dict[str, Any]]]:
        """The tracker's texts, oldest first; None if Rasa could not be asked."""
        try:
            async with self.http.get(self.base + TRANSCRIPT_PATH, params={"sender": conversation},
                                     headers=self.headers, timeout=self.timeout) as resp:
                if resp.status != 200:
                    logger.warning("transcript for conversation %s: Rasa answered %s", conversation, resp.status)
                    return None
                body = await resp.json()
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            logger.warning("transcript for conversation %s unavailable: %s", conversation, exc.__class__.__name__)
            return None
        return [m for m in body.get("messages", []) if isinstance(m, dict)]

    async def record(self, conversation: str, messages: List[Dict[str, Any]]) -> bool:
        """Append ``[{"text", "author", "timestamp"}]`` to the tracker as bot utterances."""
        try:
            async with self.http.post(self.base + STAFF_MESSAGES_PATH, json={"sender": conversation, "messages": messages},
                                      headers=self.headers, timeout=self.timeout) as resp:
                if resp.status != 200:
                    logger.error("recording staff messages for conversation %s: Rasa answered %s",
                                 conversation, resp.status)
                return resp.status == 200
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            logger.error("recording staff messages for conversation %s failed: %s", conversation,
                         exc.__class__.__name__)
            return False
