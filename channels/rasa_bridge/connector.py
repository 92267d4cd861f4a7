"""The Rasa-side end of the gateway connection (loaded by Rasa from credentials.yml).

Rasa listens on loopback only and this is its only input channel. Every request must carry
the shared secret (``X-Patientbot-Secret``); anything else gets 403 and is not processed.
Replies go back with their PHI class, which the gateway's egress guard checks.

It also refuses to work on a silently degraded Rasa: if the tracker store in use is not the
encrypted Redis store (Rasa falls back to memory when a custom store fails to load), both the
health check and every message answer 503, and Rasa's fail-safe wrapper is made to re-raise
store errors so an unreadable tracker is never replaced by a fresh conversation.

Message text is never logged here, at any level.
"""
from __future__ import annotations

import hmac
import logging
import os
import time
from typing import Any, Awaitable, Callable, Dict, List, Optional, Text, Tuple, Union

from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from rasa.shared.core.events import BotUttered, UserUttered

from bot.logging_setup import guard_all_handlers
from bot.storage.tracker_store import is_secure_store, make_failures_loud, underlying_store
from channels.rasa_bridge import model_endpoint, speedups as rasa_speedups
from channels.rasa_bridge import clarify_choice
from channels.rasa_bridge.nlu_capture import capture_clarified, capture_latest_turn
from bot.safety.screen import RISK_KEY
from bot.conversation.rasa_client import SECRET_HEADER, choices_of

logger = logging.getLogger(__name__)
guard_all_handlers()  # Rasa has configured its logging by the time it loads this channel
rasa_speedups.install()

DEFAULT_CLASS = "public"


class GatewayOutput(OutputChannel):
    """Collects the bot's replies, each with the PHI class the action gave it."""

    @classmethod
    def name(cls) -> Text:
        return "patientbot"

    def __init__(self) -> None:
        self.messages: List[Dict[str, str]] = []

    async def send_response(self, recipient_id: Text, message: Dict[Text, Any]) -> None:
        text = message.get("text")
        if not text:
            return  # images, buttons without text etc. are not sent over SMS
        custom = message.get("custom") if isinstance(message.get("custom"), dict) else {}
        reply = {"text": str(text), "phi_class": str(custom.get("phi_class", DEFAULT_CLASS)),
                 "safety": str(custom.get("safety", ""))}
        buttons = typed_buttons(message.get("buttons"))
        if buttons:  # shown by the web chat; SMS sends the text alone, which numbers the choices
            reply["buttons"] = buttons
        self.messages.append(reply)

    async def send_text_message(self, recipient_id: Text, text: Text, **kwargs: Any) -> None:
        self.messages.append({"text": text, "phi_class": DEFAULT_CLASS})


class GatewayInput(InputChannel):
    """Input channel for the patientbot gateway: ``/webhooks/patientbot/webhook``."""

    @classmethod
    def name(cls) -> Text:
        return "patientbot"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> "GatewayInput":
        env_name = (credentials or {}).get("secret_env", "RASA_GATEWAY_SECRET")
        secret = os.environ.get(env_name, "")
        if len(secret) < 16:
            raise ValueError(f"the gateway connector needs {env_name} (at least 16 characters) in the environment")
        return cls(secret)

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode("utf-8")

    def _authorised(self, request: Request) -> bool:
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8")
        return hmac.compare_digest(given, self._secret)

    @staticmethod
    def _store_problem(request: Request) -> Optional[str]:
        agent = getattr(request.app.ctx, "agent", None)
        if agent is None or not agent.is_ready():
            return "model not loaded"
        if not is_secure_store(agent.tracker_store):
            store = underlying_store(agent.tracker_store).__class__.__name__
            logger.critical("ALERT Rasa is using %s, not the encrypted Redis tracker store; refusing messages", store)
            return f"tracker store is {store}, not the encrypted Redis store"
        make_failures_loud(agent.tracker_store)
        return None

    def _refusal(self, request: Request, check_store: bool = True) -> Optional[HTTPResponse]:
        """403 without the shared secret; 503 if Rasa is not on the encrypted store; else None."""
        if not self._authorised(request):
            logger.warning("refused a request without the gateway secret")
            return response.json({"error": "forbidden"}, status=403)
        problem = self._store_problem(request) if check_store else None
        if problem:
            return response.json({"error": "unavailable", "reason": problem}, status=503)
        return None

    def _posted(self, request: Request, field: str, kind: type) -> Union[HTTPResponse, Tuple[Dict, str, Any]]:
        """A checked request's JSON body with its ``sender`` (a non-empty string) and ``field`` (a
        ``kind``), or the answer refusing it: 403/503 (:meth:`_refusal`), 400 if either is missing."""
        refused = self._refusal(request)
        if refused is not None:
            return refused
        body = request.json if isinstance(request.json, dict) else {}
        sender, value = body.get("sender"), body.get(field)
        if not isinstance(sender, str) or not sender or not isinstance(value, kind):
            return response.json({"error": f"sender and {field} are required"}, status=400)
        return body, sender, value

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        """The channel's routes, under ``/webhooks/patientbot/``."""
        bp = Blueprint("patientbot_gateway", __name__)
        guard_all_handlers()  # again, for handlers the web server added since

        @bp.route("/health", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return await self._health(request)

        @bp.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            return await self._receive(request, on_new_message)

        @bp.route("/model", methods=["GET", "PUT"])
        async def model(request: Request) -> HTTPResponse:
            return await self._model(request)

        @bp.route("/transcript", methods=["GET"])
        async def transcript(request: Request) -> HTTPResponse:
            return await self._transcript(request)

        @bp.route("/staff_messages", methods=["POST"])
        async def staff_messages(request: Request) -> HTTPResponse:
            return await self._staff_messages(request)

        return bp

    async def _health(self, request: Request) -> HTTPResponse:
        """Ready only with the model loaded, the encrypted tracker store in use and its Redis up."""
        if not self._authorised(request):
            return response.json({"error": "forbidden"}, status=403)
        problem = self._store_problem(request)
        if problem:
            return response.json({"status": "unavailable", "reason": problem}, status=503)
        store = underlying_store(request.app.ctx.agent.tracker_store)
        try:
            store.red.ping()
        except Exception as exc:  # noqa: BLE001 - any Redis failure means not healthy
            return response.json({"status": "unavailable", "reason": f"redis: {exc.__class__.__name__}"}, status=503)
        return response.json({"status": "ok", "tracker_store": store.__class__.__name__})

    async def _receive(self, request: Request,
                       on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> HTTPResponse:
        """A patient's message: Rasa's replies, each with its PHI class."""
        posted = self._posted(request, "text", str)
        if isinstance(posted, HTTPResponse):
            return posted
        body, sender, text = posted
        metadata = _metadata(body)
        collector = GatewayOutput()
        try:
            # A reply to the bot's clarifying question is the reading it picks (bot.core.clarify).
            choice = await clarify_choice.resolve(request.app.ctx.agent, sender, text)
            if choice is not None:
                text = "/" + choice.intent
            await on_new_message(
                UserMessage(text, collector, sender, input_channel=self.name(), metadata=metadata)
            )
        except Exception as exc:  # noqa: BLE001 - report, never leak the text
            logger.error("message processing failed for conversation %s: %s", sender, exc.__class__.__name__)
            return response.json({"error": "processing_failed"}, status=500)
        if choice is not None:
            await capture_clarified(choice)  # the question's message, labelled by the patient
        else:
            await capture_latest_turn(request.app.ctx.agent, sender)  # the admins' review inbox
        return response.json({"messages": collector.messages})

    async def _model(self, request: Request) -> HTTPResponse:
        """The model in use (GET) / load another one without downtime (PUT, body
        ``{"model_file": PATH}`` as Rasa's model endpoint takes; channels.rasa_bridge.model_endpoint)."""
        refused = self._refusal(request, check_store=False)
        if refused is not None:
            return refused
        if request.method == "GET":
            return await model_endpoint.current_model(request)
        return await model_endpoint.load_model(request)

    async def _transcript(self, request: Request) -> HTTPResponse:
        """The conversation so far (user and bot texts), for the staff console."""
        refused = self._refusal(request)
        if refused is not None:
            return refused
        sender = request.args.get("sender", "")
        if not sender:
            return response.json({"error": "sender is required"}, status=400)
        tracker = await request.app.ctx.agent.tracker_store.retrieve(sender)
        return response.json({"messages": staff_transcript(tracker.events if tracker else [])})

    async def _staff_messages(self, request: Request) -> HTTPResponse:
        """Record what staff said during a hand-off as bot utterances, so the tracker stays
        whole; like Rasa's append-events API, under the conversation's lock, with no
        prediction run (Rasa's full HTTP API stays off)."""
        posted = self._posted(request, "messages", list)
        if isinstance(posted, HTTPResponse):
            return posted
        _, sender, items = posted
        events = _staff_events(items)
        if events is None:
            return response.json({"error": "each message needs a text"}, status=400)
        agent = request.app.ctx.agent
        async with agent.lock_store.lock(sender):
            tracker = await agent.processor.fetch_tracker_with_initial_session(sender)
            for event in events:
                tracker.update(event, agent.domain)
            await agent.tracker_store.save(tracker)
        return response.json({"recorded": len(events)})


def typed_buttons(raw: Any) -> List[Dict[str, str]]:
    """The buttons a patient may press: a title and a payload that is text they could type.
    A "/intent" payload is dropped (the gateway strips a leading "/" from what patients send,
    so it would arrive as other text than the button promised)."""
    return [{"title": title, "payload": payload} for title, payload in choices_of(raw)]


def _metadata(body: Dict[str, Any]) -> Dict[str, Any]:
    """What Rasa keeps of a gateway message besides its text: channel, message id, risk score."""
    metadata = {"channel": str(body.get("channel", "")), "message_id": str(body.get("message_id", ""))}
    if isinstance(body.get(RISK_KEY), (int, float)):  # the gateway's risk classifier, for the NLU's safety layer
        metadata[RISK_KEY] = float(body[RISK_KEY])
    return metadata


def _staff_events(items: List[Any]) -> Optional[List[BotUttered]]:
    """Staff messages (``{"text", "author", "timestamp"}``) as bot utterances; None if one has no text."""
    events = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            return None
        events.append(BotUttered(item["text"], metadata={"author": str(item.get("author", "staff"))},
                                 timestamp=float(item.get("timestamp") or time.time())))
    return events


def staff_transcript(events: List[Any], limit: int = 200) -> List[Dict[str, Any]]:
    """User and bot texts of a tracker, oldest first (the last ``limit``)."""
    out = []
    for event in events:
        if isinstance(event, (UserUttered, BotUttered)) and event.text:
            author = "patient" if isinstance(event, UserUttered) else (event.metadata or {}).get("author", "bot")
            out.append({"kind": "staff" if author == "staff" else author, "text": event.text,
                        "timestamp": event.timestamp})
    return out[-limit:]
