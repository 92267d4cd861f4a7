"""SMS webhook: ``POST /sms/inbound``, Twilio-compatible, signed.

Before anything is read or stored, the signature is checked against the configured public URL
(never the Host header); a missing or wrong signature gets 403 and an audit event. Then the
sender is normalised to E.164 (400 if impossible) and rate-limited (429 beyond the limit,
audited; an emergency is redirected even then, the detector costs nothing). Media is never
processed: the patient is told attachments can't be accepted here. Replies are TwiML built by
the twilio library, so bodies are always XML-escaped; a reply longer than one concatenated SMS
is split at sentence or word boundaries.
"""
from __future__ import annotations

import logging
import time
from typing import List

from aiohttp import web
from redis.exceptions import RedisError
from twilio.twiml.messaging_response import MessagingResponse

from bot.storage.audit import SYSTEM
from bot.storage.crypto import phone_index
from bot.core.phone import InvalidPhoneNumber, to_e164
from bot.conversation.inbound import Inbound, RateLimited, RetryLater, clean_text
from bot.core.sms_text import split_for_sms
from bot.services import Services
from channels.gateway.app_keys import PIPELINE, SERVICES, SETTINGS, SMS_SENDER
from channels.gateway.rate_limit import RateLimiter
from bot.records.outbound import SendFailed
from channels.sms.sender import STATUS_PATH, SmsSender
from channels.sms.signature import is_valid_signature

logger = logging.getLogger(__name__)

INBOUND_PATH = "/sms/inbound"
SIGNATURE_HEADER = "X-Twilio-Signature"
def twiml(messages: List[str]) -> web.Response:
    response = MessagingResponse()
    for text in messages:
        for part in split_for_sms(text):
            response.message(part)
    return web.Response(text=str(response), content_type="application/xml")


async def _audit(request: web.Request, action: str, outcome: str, subject: str = "", **details) -> None:
    try:
        await request.app[SERVICES].audit.record(SYSTEM, action, subject, outcome,
                                                 {"remote": request.remote or "", **details})
    except RedisError:
        logger.error("could not audit %s (%s): Redis unavailable", action, outcome)


async def inbound(request: web.Request) -> web.Response:
    """``POST /sms/inbound``. The answer carries ``Server-Timing: app;dur=<ms>``, the time spent
    in this handler, so a load test can tell the gateway's time from its own (bench/)."""
    started = time.perf_counter()
    response = await _inbound(request)
    response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.2f}"
    return response


async def _inbound(request: web.Request) -> web.Response:
    cfg = request.app[SETTINGS]
    pipeline = request.app[PIPELINE]
    try:
        form = await request.post()
    except (ValueError, UnicodeDecodeError):
        await _audit(request, "webhook_refused", "malformed_body", path=INBOUND_PATH)
        return web.Response(status=400, text="malformed form body")
    params = [(k, v) for k, v in form.items() if isinstance(v, str)]
    url = cfg.public_base_url + INBOUND_PATH
    if not is_valid_signature(cfg.sms_auth_token, url, params, request.headers.get(SIGNATURE_HEADER, "")):
        logger.warning("refused an SMS webhook with a missing or wrong signature")
        await _audit(request, "webhook_refused", "bad_signature", path=INBOUND_PATH)
        return web.Response(status=403, text="invalid signature")
    try:
        sender = to_e164(form.get("From", ""), cfg.default_region)
    except InvalidPhoneNumber:
        await _audit(request, "webhook_refused", "bad_sender", path=INBOUND_PATH)
        return web.Response(status=400, text="From is not a valid phone number")
    body = str(form.get("Body", ""))
    try:  # the blind index needs the keys, which live in Redis too
        sender_idx = phone_index(pipeline.services.keys, sender)
    except RedisError:
        sender_idx = ""  # the pipeline fails closed on the same outage; don't add a second answer
    limiter = RateLimiter(cfg.redis_prefix, cfg.sms_rate_limit_per_minute)

    message = Inbound(channel="sms", sender=sender, text=body, message_id=str(form.get("MessageSid", "")),
                      media=_media_count(form.get("NumMedia", "0")))
    try:
        replies = await pipeline.handle(message, admit=(lambda pipe: limiter.count(pipe, sender_idx))
                                        if sender_idx else None)
    except RetryLater:
        return web.Response(status=503, text="temporarily unavailable, retry", headers={"Retry-After": "5"})
    except RateLimited:
        screening = pipeline.screen(clean_text(body))
        emergency = screening.emergency
        await _audit(request, "rate_limited", "emergency_redirected" if emergency else "refused", sender_idx)
        if emergency:
            return twiml([pipeline.safety.redirect(emergency, screening.language)])
        return web.Response(status=429, text="too many messages, slow down", headers={"Retry-After": "60"})
    return twiml(replies)


async def status_callback(request: web.Request) -> web.Response:
    """``POST /sms/status``: the provider reports a delivery status; signed like inbound."""
    cfg = request.app[SETTINGS]
    try:
        form = await request.post()
    except (ValueError, UnicodeDecodeError):
        return web.Response(status=400, text="malformed form body")
    params = [(k, v) for k, v in form.items() if isinstance(v, str)]
    if not is_valid_signature(cfg.sms_auth_token, cfg.public_base_url + STATUS_PATH, params,
                              request.headers.get(SIGNATURE_HEADER, "")):
        await _audit(request, "webhook_refused", "bad_signature", path=STATUS_PATH)
        return web.Response(status=403, text="invalid signature")
    try:
        await request.app[SMS_SENDER].record_status(str(form.get("MessageSid", "")),
                                                    str(form.get("MessageStatus", "")),
                                                    str(form.get("ErrorCode", "")))
    except ValueError:
        return web.Response(status=400, text="unknown MessageStatus")
    return web.Response(status=204)


def late_delivery(sender: SmsSender, services: Services):
    """Send a bot answer that came after the holding message, through the outbound gate."""
    gate = services.outbound

    async def deliver(msg: Inbound, conversation: str, texts: List[str]) -> None:
        idx = phone_index(services.keys, msg.sender)
        for text in texts:
            if not (await gate.check(idx, conversation, "reply", SYSTEM)).allowed:
                return
            for part in split_for_sms(text):
                try:
                    await sender.send(msg.sender, part, conversation)
                except SendFailed:
                    logger.error("late answer for conversation %s could not be delivered", conversation)
                    return

    return deliver


def code_delivery(sender: SmsSender, services: Services):
    """Send a one-time verification code to a number on file (bot.conversation.verification.
    SendCode): an SMS sender's own number, or the number a web chat is bound to, as the
    patient records hold it. Through the outbound gate: an opted-out number gets no code."""
    gate = services.outbound

    async def deliver(to: str, conversation: str, text: str) -> bool:
        if not (await gate.check(phone_index(services.keys, to), conversation, "reply", SYSTEM)).allowed:
            return False
        try:
            await sender.send(to, text, conversation)
        except SendFailed:
            return False
        return True

    return deliver


def _media_count(raw) -> int:
    try:
        return max(0, int(str(raw)))
    except ValueError:
        return 0


def add_routes(app: web.Application) -> None:
    app.router.add_post(INBOUND_PATH, inbound)
    app.router.add_post(STATUS_PATH, status_callback)
