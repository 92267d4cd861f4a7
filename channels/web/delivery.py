"""Messages from the web outbox (bot/conversation/web_outbox.py) shown in the browsers this
worker holds: live, as the outbox announces them, and kept ones when a browser asks for its
session. Each connection remembers what it was shown, so a message announced while it was
also being read from the outbox is shown once; an entry is deleted once a browser has it."""
from __future__ import annotations

import asyncio
import logging
from typing import Optional

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bot.conversation.web_outbox import WebMessage, WebOutbox
from channels.web.socket_server import SHOWN_KEPT, WebChat

logger = logging.getLogger(__name__)

RECONNECT_SECONDS = (0.5, 1.0, 2.0, 5.0)


class Delivery:
    def __init__(self, chat: WebChat, outbox: WebOutbox, listener: aioredis.Redis) -> None:
        self.chat = chat
        self.outbox = outbox
        # A subscription holds its connection for good: its own client, not one of the
        # gateway's pool, whose connections are opened ahead for bursts of messages.
        self.listener = listener
        self._task: Optional[asyncio.Task] = None
        self.listening = asyncio.Event()  # set once subscribed (tests wait for it, not for time)

    async def show(self, conversation: str, entry: str, message: WebMessage) -> bool:
        """Show one message in every browser of ``conversation`` this worker holds, each once;
        then forget it in the outbox. False if no browser here has it now."""
        shown = False
        for sid in list(self.chat.rooms.get(conversation, ())):
            browser = self.chat.browsers.get(sid)
            if browser is None:
                continue
            shown = True
            if entry in browser.shown:
                continue
            browser.shown[entry] = None
            while len(browser.shown) > SHOWN_KEPT:
                browser.shown.popitem(last=False)
            await self.chat.emit_reply(sid, message.text, message.choices)
        if shown:
            await self.outbox.delivered(conversation, [entry])
        return shown

    async def show_kept(self, conversation: str) -> None:
        """What the outbox kept for ``conversation``, shown in its browsers here, oldest first."""
        try:
            for entry, message in await self.outbox.pending(conversation):
                await self.show(conversation, entry, message)
        except RedisError:
            logger.error("web chat: kept messages for conversation %s unavailable (Redis)", conversation)

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._listen_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.listener.close()

    async def _listen_forever(self) -> None:
        attempt = 0
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self.listening.clear()
                delay = RECONNECT_SECONDS[min(attempt, len(RECONNECT_SECONDS) - 1)]
                attempt += 1
                logger.error("web chat: outbox subscription lost (%s); again in %.1f s", exc.__class__.__name__, delay)
                await asyncio.sleep(delay)

    async def _listen(self) -> None:
        pubsub = self.listener.pubsub()
        try:
            await pubsub.subscribe(self.outbox.channel)
            self.listening.set()
            for conversation in list(self.chat.rooms):  # what was announced while not subscribed
                await self.show_kept(conversation)
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if not message or message.get("type") != "message":
                    continue
                event = self.outbox.read(message["data"], wanted=self.chat.rooms.__contains__)
                if event is None:
                    continue
                if event.ended:
                    await self.chat.close_conversation(event.conversation)
                elif event.message is not None:
                    await self.show(event.conversation, event.entry, event.message)
        finally:
            await pubsub.reset()
