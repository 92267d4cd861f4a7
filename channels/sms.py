"""SMS webhook: ``POST /sms/inbound``, Twilio-compatible, signed.

The signature is checked against the configured public URL before anything else is read or
stored; a missing or wrong signature gets 403. Replies are TwiML built by the twilio library
(so bodies are always XML-escaped).
"""
from __future__ import annotations

import logging

from aiohttp import web
from twilio.twiml.messaging_response import MessagingResponse

from bot.phone import InvalidPhoneNumber, to_e164
from channels.pipeline import Inbound, RetryLater
from channels.twilio_signature import is_valid_signature

logger = logging.getLogger(__name__)

INBOUND_PATH = "/sms/inbound"
SIGNATURE_HEADER = "X-Twilio-Signature"


def twiml(messages: list) -> web.Response:
    response = MessagingResponse()
    for text in messages:
        response.message(text)
    return web.Response(text=str(response), content_type="application/xml")


async def inbound(request: web.Request) -> web.Response:
    cfg = request.app["settings"]
    try:
        form = await request.post()
    except (ValueError, UnicodeDecodeError):
        return web.Response(status=400, text="malformed form body")
    params = [(k, v) for k, v in form.items() if isinstance(v, str)]
    url = cfg.public_base_url + INBOUND_PATH
    if not is_valid_signature(cfg.sms_auth_token, url, params, request.headers.get(SIGNATURE_HEADER, "")):
        logger.warning("refused an SMS webhook with a missing or wrong signature")
        return web.Response(status=403, text="invalid signature")
    try:
        sender = to_e164(form.get("From", ""), cfg.default_region)
    except InvalidPhoneNumber:
        return web.Response(status=400, text="From is not a valid phone number")
    message = Inbound(channel="sms", sender=sender, text=str(form.get("Body", "")),
                      message_id=str(form.get("MessageSid", "")))
    try:
        replies = await request.app["pipeline"].handle(message)
    except RetryLater:
        return web.Response(status=503, text="temporarily unavailable, retry", headers={"Retry-After": "5"})
    return twiml(replies)


def add_routes(app: web.Application) -> None:
    app.router.add_post(INBOUND_PATH, inbound)
