"""Helpers for gateway tests: a stand-in Rasa connector and signed-webhook builders."""
from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from typing import Any, Callable, Dict, List, Optional

from aiohttp import web
from twilio.request_validator import RequestValidator

from bot.config import load_settings
from channels.gateway.app import create_app
from bot.conversation.rasa_client import SECRET_HEADER
from channels.gateway.app_keys import SMS_SENDER

SENDER = "+15550100121"  # synthetic


class StubRasa:
    """Stands in for the Rasa connector: records each call, answers with ``self.replies``."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.calls: List[Dict[str, Any]] = []
        self.replies: List[Dict[str, str]] = [{"text": "hello from the bot", "phi_class": "public"}]
        # When set, the replies to each call are answer(call) instead (e.g. an echo naming the sender).
        self.answer: Optional[Callable[[Dict[str, Any]], List[Dict[str, Any]]]] = None
        self.status = 200
        self.delay = 0.0  # seconds before answering: a slow Rasa
        # The connector's staff routes: the transcript it serves and the staff messages recorded.
        self.transcript: List[Dict[str, Any]] = []
        self.staff_messages: List[Dict[str, Any]] = []

    def app(self) -> web.Application:
        app = web.Application()

        async def webhook(request: web.Request) -> web.Response:
            assert request.headers.get(SECRET_HEADER) == self.secret
            call = await request.json()
            self.calls.append(call)
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.status != 200:
                return web.json_response({"error": "x"}, status=self.status)
            return web.json_response({"messages": self.answer(call) if self.answer else self.replies})

        async def health(request: web.Request) -> web.Response:
            return web.json_response({"status": "ok"})

        async def transcript(request: web.Request) -> web.Response:
            assert request.headers.get(SECRET_HEADER) == self.secret
            if self.status != 200:
                return web.json_response({"error": "x"}, status=self.status)
            return web.json_response({"messages": self.transcript})

        async def staff_messages(request: web.Request) -> web.Response:
            assert request.headers.get(SECRET_HEADER) == self.secret
            if self.status != 200:
                return web.json_response({"error": "x"}, status=self.status)
            body = await request.json()
            self.staff_messages.append(body)
            return web.json_response({"recorded": len(body["messages"])})

        app.router.add_post("/webhooks/patientbot/webhook", webhook)
        app.router.add_get("/webhooks/patientbot/transcript", transcript)
        app.router.add_post("/webhooks/patientbot/staff_messages", staff_messages)
        app.router.add_get("/webhooks/patientbot/health", health)
        app.router.add_get("/health", health)
        return app


async def gateway_with_provider(stub: "StubRasa", settings_env, aiohttp_server, aiohttp_client, monkeypatch,
                                **env: str):
    """(client, provider stand-in, settings, app): a gateway in front of ``stub`` and the SMS
    provider stand-in, whose PUBLIC_BASE_URL is where it really listens, so the stand-in's
    signed status callbacks reach it; ``env`` adds settings. Send retries are fast."""
    from devtools.sms_provider_standin import SmsProviderStandIn
    from tests.stack_helpers import free_port

    rasa = await aiohttp_server(stub.app())
    provider = SmsProviderStandIn(settings_env.get("SMS_ACCOUNT_SID", "AC00000000000000000000000000000000"),
                                  settings_env["SMS_AUTH_TOKEN"])
    provider_server = await aiohttp_server(provider.app())
    port = free_port()
    for key, value in {"RASA_PORT": str(rasa.port), "ACTION_PORT": str(rasa.port), "RASA_REPLY_TIMEOUT": "5",
                       "SMS_API_BASE": f"http://127.0.0.1:{provider_server.port}",
                       "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", **env}.items():
        monkeypatch.setenv(key, value)
    cfg = load_settings()
    app = create_app(cfg)
    client = await aiohttp_client(await aiohttp_server(app, port=port))
    app[SMS_SENDER].backoff = (0.01, 0.01, 0.01)
    return client, provider, cfg, app


async def make_gateway(settings_env, aiohttp_server, aiohttp_client, monkeypatch):
    stub = StubRasa(settings_env["RASA_GATEWAY_SECRET"])
    rasa_server = await aiohttp_server(stub.app())
    monkeypatch.setenv("RASA_PORT", str(rasa_server.port))
    monkeypatch.setenv("ACTION_PORT", str(rasa_server.port))
    monkeypatch.setenv("RASA_REPLY_TIMEOUT", "2")
    cfg = load_settings()
    client = await aiohttp_client(create_app(cfg))
    return client, stub, cfg


def sign(cfg, params: Dict[str, str], url: str = None) -> str:
    return RequestValidator(cfg.sms_auth_token).compute_signature(url or cfg.public_base_url + "/sms/inbound", params)


def sms(body: str, sid: str = "SM00000000000000000000000000000001", sender: str = SENDER) -> Dict[str, str]:
    return {"From": sender, "To": "+15550100000", "Body": body, "MessageSid": sid,
            "AccountSid": "AC00000000000000000000000000000000", "NumMedia": "0"}


async def post(client, cfg, params, signature=None, headers=None):
    h = {"X-Twilio-Signature": sign(cfg, params) if signature is None else signature, **(headers or {})}
    return await client.post("/sms/inbound", data=params, headers=h)


def messages(xml: str) -> List[str]:
    return [m.text or "" for m in ET.fromstring(xml).iter("Message")]




async def authorize_phi_by_text(cfg, number: str = SENDER) -> None:
    """Record the patient's written authorization for PHI by text for ``number`` (synthetic),
    as staff would from a signed form: its replies may then carry PHI after verification."""
    import redis.asyncio as aioredis

    from bot.records.consent import PHI_BY_TEXT, ConsentRegistry
    from bot.storage.crypto import keyring, phone_index

    client = aioredis.Redis.from_url(cfg.redis_url)
    try:
        keys = keyring(cfg)
        await ConsentRegistry(client, keys, cfg.redis_prefix).grant_scope(
            phone_index(keys, number), PHI_BY_TEXT, "signed_form", "(synthetic) authorization on file")
    finally:
        await client.close()
