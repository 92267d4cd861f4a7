"""The gateway's client for the Rasa-side connector (channels.rasa_bridge.connector).

One pooled aiohttp session per gateway process; every call carries the shared secret and a
timeout, and every failure becomes :class:`RasaUnavailable` so the gateway can answer the
patient with a clear holding reply instead of a traceback.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import aiohttp

from bot.safety.screen import RISK_KEY


# The shared-secret header the Rasa-side connector requires (channels.rasa_bridge.connector).
SECRET_HEADER = "X-Patientbot-Secret"
WEBHOOK_PATH = "/webhooks/patientbot/webhook"
HEALTH_PATH = "/webhooks/patientbot/health"


class RasaUnavailable(Exception):
    """Rasa did not answer in time, refused, or answered with an error."""


Choices = Tuple[Tuple[str, str], ...]  # (title, payload) of each button offered with a reply
MAX_CHOICES = 10


@dataclass(frozen=True)
class BotReply:
    text: str
    phi_class: str
    safety: str = ""  # "redirect" | "check" on the NLU's safety answers (bot.safety.screen), else ""
    choices: Choices = ()


class Reply(str):
    """A reply's text that also carries the choices the bot offered with it. Everything that
    handles replies as text (SMS, the audit, the answer kept for a replay) sees the text; the
    web chat shows the choices as buttons. SMS needs nothing more: the text numbers them."""

    choices: Choices

    def __new__(cls, text: str, choices: Sequence[Tuple[str, str]] = ()) -> "Reply":
        reply = super().__new__(cls, text)
        reply.choices = tuple(choices)
        return reply


def choices_of(raw: Any) -> Choices:
    """Buttons from the connector as (title, payload), keeping only those whose payload is text
    a patient could type: never a "/" command (the gateway strips a leading "/" from what
    patients send, so such a button would send something else than it says)."""
    found = []
    for button in raw if isinstance(raw, list) else []:
        if not isinstance(button, dict):
            continue
        title, payload = button.get("title"), button.get("payload")
        if isinstance(title, str) and isinstance(payload, str) and title.strip() and payload.strip() \
                and not payload.lstrip().startswith("/"):
            found.append((title.strip(), payload.strip()))
    return tuple(found[:MAX_CHOICES])


class RasaClient:
    def __init__(self, base_url: str, secret: str, timeout: float, max_connections: int = 16) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {SECRET_HEADER: secret}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        # A small pool of kept-alive connections, with requests waiting their turn here (first
        # come, first served). With one connection per waiting patient instead, a busy Rasa
        # accepted new connections only between bursts of CPU work: conversations that needed
        # a new connection waited up to 30 s behind those reusing one (bench/compare.py, 100
        # patients: p99 30.6 s before, 5.9 s after; stock Rasa 6.3 s).
        self._session = aiohttp.ClientSession(
            headers=self._headers,
            connector=aiohttp.TCPConnector(limit=self._max_connections, keepalive_timeout=60),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(self, conversation: str, text: str, channel: str, message_id: str,
                   risk: Optional[float] = None) -> List[BotReply]:
        """Hand one patient message to Rasa and return the bot's replies. ``risk``: the safety
        classifier's probability, which the NLU's safety layer weighs (bot.safety.screen)."""
        assert self._session is not None, "RasaClient.start() was not awaited"
        payload = {"sender": conversation, "text": text, "channel": channel, "message_id": message_id}
        if risk is not None:
            payload[RISK_KEY] = round(risk, 4)
        try:
            async with self._session.post(self.base_url + WEBHOOK_PATH, json=payload, timeout=self._timeout) as resp:
                if resp.status != 200:
                    raise RasaUnavailable(f"Rasa answered HTTP {resp.status}")
                body: Dict[str, Any] = await resp.json()
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise RasaUnavailable(exc.__class__.__name__) from None
        return [
            BotReply(str(m.get("text", "")), str(m.get("phi_class", "")), str(m.get("safety", "")),
                     choices_of(m.get("buttons")))
            for m in body.get("messages", [])
            if isinstance(m, dict) and m.get("text")
        ]

    async def health(self) -> Dict[str, Any]:
        assert self._session is not None
        try:
            async with self._session.get(self.base_url + HEALTH_PATH, timeout=aiohttp.ClientTimeout(total=3)) as resp:
                body = await resp.json(content_type=None)
                return {"ok": resp.status == 200, **(body if isinstance(body, dict) else {})}
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            return {"ok": False, "reason": exc.__class__.__name__}
