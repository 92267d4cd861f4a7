"""The web chat's socket.io server, speaking the rasa-webchat 1.x protocol.

What the widget (``rasa-webchat@1.0.1``, socket.io-client 3.x) and this server say:

* on connecting, the widget emits ``session_request`` ``{"session_id": <what it kept, or null>}``;
  the server answers ``session_confirm`` ``{"session_id": <public label>}`` (the label of the
  session the *cookie* names: what the widget sent is ignored), then shows what was kept for
  the conversation while no browser was connected (staff replies: bot/conversation/web_outbox.py);
* the patient's message is ``user_uttered`` ``{"message": <text>, "customData": ..., "session_id": ...}``;
  it goes through the same pipeline as an SMS (bot/conversation/pipeline.py) as
  ``Inbound("web", <web session id>, text, "<socket id>.<n>")``;
* each reply is ``bot_uttered`` ``{"text": <text>}``, or with the bot's choices
  ``{"text": ..., "quick_replies": [{"content_type": "text", "title": ..., "payload": ...}]}``
  (the widget shows a message only when it has exactly these keys);
* what the server refuses gets ``patientbot_error`` ``{"error": <code>, "message": <text>}``
  (codes: ``malformed``, ``too_long``, ``unavailable``), audited without any text.

Which session a connection belongs to was decided before it got here, by its cookie
(channels/web/handshake.py); a connection without one never reaches these handlers.
"""
from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

import socketio
from aiohttp import web
from socketio.exceptions import ConnectionRefusedError as Refused
from redis.exceptions import RedisError

from bot.config import Settings
from bot.conversation import own_replies
from bot.conversation.inbound import MAX_TEXT_CHARS, Inbound, RateLimited, RetryLater, clean_text
from bot.conversation.pipeline import InboundPipeline
from bot.services import Services
from bot.storage.audit import SYSTEM
from bot.storage.crypto import conversation_id
from channels.gateway.rate_limit import RateLimiter
from channels.web.session_cookie import public_label

logger = logging.getLogger(__name__)

WEB_SESSION = "pb.web_session"  # on the handshake's aiohttp request: the session its cookie names
MAX_MESSAGE_CHARS = MAX_TEXT_CHARS
MAX_PACKET_BYTES = 16 * 1024  # engine.io refuses bigger payloads before any handler sees them
MAX_REFUSALS = 5  # malformed events a connection may send before it is closed
SHOWN_KEPT = 256  # outbox entries remembered per connection, so none is shown twice
SLOW_DOWN = "You're sending messages faster than we can answer. Please wait a minute and try again."
Choices = Sequence[Tuple[str, str]]


def bot_uttered(text: str, choices: Choices = ()) -> Dict[str, Any]:
    """The ``bot_uttered`` payload the widget shows: the text, and its choices as buttons."""
    if not choices:
        return {"text": text}
    return {"text": text, "quick_replies": [{"content_type": "text", "title": title, "payload": payload}
                                            for title, payload in choices]}


@dataclass
class Browser:
    """One socket.io connection of a web session."""
    session: str  # the web session id (from the cookie); never sent anywhere
    conversation: str
    label: str
    joined: bool = False
    sent: int = 0
    refused: int = 0
    shown: "OrderedDict[str, None]" = field(default_factory=OrderedDict)
    turn: asyncio.Lock = field(default_factory=asyncio.Lock)  # one message at a time, answers in order


class WebChat:
    """The socket.io server and the browsers this worker holds."""

    def __init__(self, cfg: Settings, allowed_origins: List[str]) -> None:
        self.cfg = cfg
        self.allowed = allowed_origins
        self.sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins=allowed_origins,
                                        cors_credentials=True, max_http_buffer_size=MAX_PACKET_BYTES,
                                        logger=False, engineio_logger=False)
        self.browsers: Dict[str, Browser] = {}  # socket.io sid -> the browser
        self.rooms: Dict[str, Set[str]] = {}  # conversation -> the sids this worker holds
        self.limiter = RateLimiter(cfg.redis_prefix, cfg.webchat_rate_limit_per_minute)
        self.services: Optional[Services] = None
        self.pipeline: Optional[InboundPipeline] = None
        self.delivery = None  # channels.web.delivery.Delivery, set at start
        self.sio.on("connect", self._connect)
        self.sio.on("disconnect", self._disconnect)
        self.sio.on("session_request", self._session_request)
        self.sio.on("user_uttered", self._user_uttered)
        self.sio.on("*", self._unknown_event)

    def start(self, services: Services, pipeline: InboundPipeline) -> None:
        self.services, self.pipeline = services, pipeline

    def name_sessions_by(self, routes: Any) -> None:
        """Engine.io session ids that name this worker (channels/web/worker_routing.py)."""
        make = self.sio.eio.generate_id
        self.sio.eio.generate_id = lambda: routes.session_id(make())

    # -- connections -----------------------------------------------------------------------------
    async def _connect(self, sid: str, environ: dict, auth: Any = None) -> bool:
        request: Optional[web.Request] = environ.get("aiohttp.request")
        session = request.get(WEB_SESSION) if request is not None else None
        if not session or self.services is None:
            raise Refused("unauthorized")
        keys = self.services.keys
        try:
            self.browsers[sid] = Browser(session, conversation_id(keys, "web", session), public_label(keys, session))
        except RedisError:  # the key ring lives in Redis: the widget retries the connection
            raise Refused("unavailable") from None
        return True

    async def _disconnect(self, sid: str, *reason: Any) -> None:
        browser = self.browsers.pop(sid, None)
        if browser is not None:
            held = self.rooms.get(browser.conversation)
            if held is not None:
                held.discard(sid)
                if not held:
                    del self.rooms[browser.conversation]

    async def _session_request(self, sid: str, data: Any = None) -> None:
        """Confirm the cookie's session (what the widget sent is only a label it kept), join the
        conversation, and show what was kept for it."""
        browser = self.browsers.get(sid)
        if browser is None:
            return
        await self.sio.emit("session_confirm", {"session_id": browser.label}, to=sid)
        if not browser.joined:
            browser.joined = True
            self.rooms.setdefault(browser.conversation, set()).add(sid)
        if self.delivery is not None:
            await self.delivery.show_kept(browser.conversation)

    async def close_conversation(self, conversation: str) -> None:
        """End every connection this worker holds of ``conversation`` (its session was signed out)."""
        for sid in list(self.rooms.get(conversation, ())):
            await self.sio.disconnect(sid)

    # -- messages --------------------------------------------------------------------------------
    async def _user_uttered(self, sid: str, data: Any = None) -> None:
        browser = self.browsers.get(sid)
        if browser is None:
            return
        if isinstance(data, dict) and "message" not in data:
            return  # the widget's start when no initPayload is set: nothing was said
        text = data.get("message") if isinstance(data, dict) else None
        if not isinstance(text, str):
            await self.refuse(sid, browser, "malformed", "user_uttered needs a text message.")
            return
        if len(text) > MAX_MESSAGE_CHARS:
            await self.refuse(sid, browser, "too_long", f"Messages can be at most {MAX_MESSAGE_CHARS} characters.")
            return
        async with browser.turn:
            browser.sent += 1
            message = Inbound("web", browser.session, text, f"{sid}.{browser.sent}")
            for reply in await self._answer(sid, browser, message):
                await self.emit_reply(sid, reply, getattr(reply, "choices", ()))

    async def _answer(self, sid: str, browser: Browser, message: Inbound) -> List[str]:
        """The pipeline's replies; a refusal (rate limit, an outage) as the reply the patient reads."""
        assert self.pipeline is not None and self.services is not None
        pipeline = self.pipeline
        try:
            return await pipeline.handle(message, admit=lambda pipe: self.limiter.count(pipe, browser.conversation))
        except RateLimited:
            screening = pipeline.screen(clean_text(message.text))
            await self._audit("rate_limited", browser.conversation,
                              "emergency_redirected" if screening.emergency else "refused")
            if screening.emergency:  # the redirect costs nothing and is never held back
                return [pipeline.safety.redirect(screening.emergency, screening.language)]
            return [SLOW_DOWN]
        except RetryLater:
            return [own_replies.unavailable(self.services.office)]
        except Exception as exc:  # noqa: BLE001 - the connection lives on; the class is logged, never text
            logger.error("web chat message failed for conversation %s: %s", browser.conversation,
                         exc.__class__.__name__)
            await self.sio.emit("patientbot_error", {"error": "unavailable",
                                                     "message": "Something went wrong; please try again."}, to=sid)
            return [own_replies.unavailable(self.services.office)]

    async def emit_reply(self, sid: str, text: str, choices: Choices = ()) -> None:
        await self.sio.emit("bot_uttered", bot_uttered(str(text), choices), to=sid)

    async def _unknown_event(self, event: str, sid: str, *data: Any) -> None:
        browser = self.browsers.get(sid)
        if browser is not None:
            await self.refuse(sid, browser, "malformed", "Unknown event.")

    async def refuse(self, sid: str, browser: Browser, code: str, explanation: str) -> None:
        """Tell the browser what was refused and audit it (no text); after MAX_REFUSALS, hang up."""
        browser.refused += 1
        await self.sio.emit("patientbot_error", {"error": code, "message": explanation}, to=sid)
        await self._audit("web_chat_event_refused", browser.conversation, code)
        if browser.refused >= MAX_REFUSALS:
            await self.sio.disconnect(sid)

    async def _audit(self, action: str, subject: str, outcome: str, **details: Any) -> None:
        assert self.services is not None
        try:
            await self.services.audit.record(SYSTEM, action, subject, outcome, {"channel": "web", **details})
        except RedisError:
            logger.error("could not audit %s (%s): Redis unavailable", action, outcome)
