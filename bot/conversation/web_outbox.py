"""Messages the office sends to a web chat conversation: staff replies from the console, and
whatever else reaches a browser outside the answer to its own message.

A browser is held by one gateway worker (its socket.io connection), and the sender (the
console, another worker, another gateway) does not know which. So a message is sealed and
kept in the conversation's outbox, a Redis stream (``web:outbox:<conversation>``, each entry
sealed with AES-GCM bound to that key, kept 12 hours), and announced on one pub/sub channel
(``web:outbox``) with the same sealed body. Every worker listens; one holding a browser of that
conversation shows it and deletes the entry. A message for a browser that is not connected
stays in the outbox and is shown when the browser next asks for its session.

The same channel carries the end of a session (sign-out), so every worker closes the
connections of that conversation. Nothing on the channel or in the stream is readable
without the keys, and neither key names more than the conversation's pseudonym.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence, Tuple

import redis.asyncio as aioredis

from bot.storage.crypto import DecryptionError, KeyRing
from bot.storage.redis_client import as_text

KEEP_SECONDS = 12 * 3600
MAX_KEPT = 200  # per conversation: a runaway sender cannot grow one outbox without bound

Choices = Tuple[Tuple[str, str], ...]  # (title, payload): the buttons offered with a message


@dataclass(frozen=True)
class WebMessage:
    """One message for a web conversation: its text and the choices offered with it."""
    text: str
    choices: Choices = ()
    kind: str = "staff"  # who it is from: "staff" | "bot"


@dataclass(frozen=True)
class OutboxEvent:
    """What the channel announced: a message (``entry`` and ``message``) or the end of a session."""
    conversation: str
    entry: str = ""
    message: Optional[WebMessage] = None
    ended: bool = False


@dataclass
class WebOutbox:
    redis: aioredis.Redis
    keys: KeyRing
    prefix: str
    keep_seconds: int = KEEP_SECONDS

    @property
    def channel(self) -> str:
        """The pub/sub channel every gateway worker listens to."""
        return f"{self.prefix}web:outbox"

    def key(self, conversation: str) -> str:
        return f"{self.prefix}web:outbox:{conversation}"

    def _seal(self, conversation: str, message: WebMessage) -> str:
        body = {"text": message.text, "choices": [list(c) for c in message.choices], "kind": message.kind}
        return self.keys.encrypt_text(json.dumps(body), self.key(conversation))

    def _open(self, conversation: str, sealed: Any) -> WebMessage:
        body = json.loads(self.keys.decrypt_text(as_text(sealed), self.key(conversation)))
        choices = tuple((str(t), str(p)) for t, p in body.get("choices", []))
        return WebMessage(str(body["text"]), choices, str(body.get("kind", "staff")))

    async def send(self, conversation: str, messages: Sequence[WebMessage]) -> List[str]:
        """Keep each message (sealed) for the conversation and announce it to every worker;
        the entry ids, in order. Messages older than ``keep_seconds`` are dropped on the way."""
        key = self.key(conversation)
        oldest = int((time.time() - self.keep_seconds) * 1000)
        sealed = [self._seal(conversation, m) for m in messages]
        async with self.redis.pipeline(transaction=True) as pipe:
            for body in sealed:
                pipe.xadd(key, {"m": body}, minid=oldest, approximate=False)
            pipe.xtrim(key, maxlen=MAX_KEPT, approximate=False)
            pipe.expire(key, self.keep_seconds)
            results = await pipe.execute()
        entries = [as_text(entry) for entry in results[:len(sealed)]]
        async with self.redis.pipeline(transaction=False) as pipe:
            for entry, body in zip(entries, sealed):
                pipe.publish(self.channel, json.dumps({"c": conversation, "e": entry, "m": body}))
            await pipe.execute()
        return entries

    async def pending(self, conversation: str) -> List[Tuple[str, WebMessage]]:
        """The messages kept for the conversation (not yet shown, at most 12 hours old), oldest first.
        One that no longer opens (its key retired) is dropped, never shown half."""
        key = self.key(conversation)
        oldest = int((time.time() - self.keep_seconds) * 1000)
        out, unreadable = [], []
        for entry, fields in await self.redis.xrange(key, min=f"{oldest}-0", max="+"):
            try:
                out.append((as_text(entry), self._open(conversation, fields.get(b"m", fields.get("m")))))
            except (DecryptionError, ValueError, KeyError, TypeError):
                unreadable.append(entry)
        if unreadable:
            await self.redis.xdel(key, *unreadable)
        return out

    async def delivered(self, conversation: str, entries: Sequence[str]) -> int:
        """Forget messages a browser was given; how many were still kept (0: another did it)."""
        if not entries:
            return 0
        return int(await self.redis.xdel(self.key(conversation), *entries))

    async def end(self, conversation: str) -> None:
        """Announce that the conversation's web session ended (signed out): every worker closes
        its connections of it, and what was kept for it is dropped."""
        await self.redis.delete(self.key(conversation))
        await self.redis.publish(self.channel, json.dumps({"c": conversation, "end": True}))

    def read(self, data: Any, wanted: Callable[[str], bool] = lambda conversation: True) -> Optional[OutboxEvent]:
        """An announcement from the channel, opened if its conversation is ``wanted`` (a worker
        opens only those of the browsers it holds); None if not, or if it does not open."""
        try:
            raw = json.loads(as_text(data))
            conversation = str(raw["c"])
            if not wanted(conversation):
                return None
            if raw.get("end") is True:
                return OutboxEvent(conversation, ended=True)
            return OutboxEvent(conversation, str(raw["e"]), self._open(conversation, raw["m"]))
        except (DecryptionError, ValueError, KeyError, TypeError):
            return None
