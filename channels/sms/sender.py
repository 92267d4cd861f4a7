"""Outbound SMS through the provider's REST API (Twilio's shape), and delivery status callbacks.

``POST {SMS_API_BASE}/2010-04-01/Accounts/{SMS_ACCOUNT_SID}/Messages.json`` with basic auth
(account SID, auth token) and the form fields To, From, Body, StatusCallback. Only 5xx
answers and network errors are retried, with exponential backoff: a 4xx means the request
itself is wrong (bad number, blocked recipient) and repeating it would not help.

Nothing is sent from here without the caller having asked :class:`bot.records.outbound.OutboundGate`.
Each message the provider accepts is remembered by its SID (``pb:sms-out:<sid index>``, sealed)
so the status callback can record delivery; both are audited by pseudonym.
"""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Optional, Sequence

import aiohttp
import redis.asyncio as aioredis

from bot.storage.audit import SYSTEM, AuditLog
from bot.config import Settings
from bot.records.outbound import SendFailed
from bot.storage.crypto import KeyRing

logger = logging.getLogger(__name__)

STATUS_PATH = "/sms/status"
DELIVERY_STATUSES = ("queued", "accepted", "sending", "sent", "delivered", "undelivered", "failed", "read")
RECORD_TTL_SECONDS = 30 * 24 * 3600


@dataclass(frozen=True)
class Sent:
    sid: str
    status: str
    attempts: int


class SmsSender:
    def __init__(self, http: aiohttp.ClientSession, cfg: Settings, redis: aioredis.Redis, keys: KeyRing,
                 backoff: Sequence[float] = (0.5, 1.0, 2.0), timeout: float = 10.0) -> None:
        self.http = http
        self.cfg = cfg
        self.redis = redis
        self.keys = keys
        self.backoff = tuple(backoff)
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.audit = AuditLog(redis, keys, cfg.redis_prefix)

    @property
    def messages_url(self) -> str:
        return f"{self.cfg.sms_api_base}/2010-04-01/Accounts/{self.cfg.sms_account_sid}/Messages.json"

    def _record_key(self, sid: str) -> str:
        return f"{self.cfg.redis_prefix}sms-out:{self.keys.blind_index(sid, 'message-id')[:40]}"

    async def send(self, to: str, body: str, conversation: str, actor: str = SYSTEM) -> Sent:
        """Send one message; raises :class:`SendFailed`. ``to`` is E.164 and never logged."""
        form = {"To": to, "From": self.cfg.sms_from_number, "Body": body,
                "StatusCallback": self.cfg.public_base_url + STATUS_PATH}
        auth = aiohttp.BasicAuth(self.cfg.sms_account_sid, self.cfg.sms_auth_token)
        attempt, last = 0, "not attempted"
        for delay in (0.0, *self.backoff):
            if delay:
                await asyncio.sleep(delay)
            attempt += 1
            try:
                async with self.http.post(self.messages_url, data=form, auth=auth, timeout=self.timeout) as resp:
                    if resp.status < 300:
                        doc = await resp.json(content_type=None)
                        sent = Sent(str(doc["sid"]), str(doc.get("status", "queued")), attempt)
                        await self._remember(sent, conversation, actor)
                        return sent
                    last = f"HTTP {resp.status}"
                    if resp.status < 500:
                        await self.audit.record(actor, "sms_send_failed", conversation, "rejected", {"reason": last})
                        raise SendFailed(last, retryable=False)
            except (aiohttp.ClientError, asyncio.TimeoutError, KeyError, ValueError) as exc:
                last = exc.__class__.__name__
            logger.warning("outbound SMS attempt %d for conversation %s failed: %s", attempt, conversation, last)
        await self.audit.record(actor, "sms_send_failed", conversation, "gave_up", {"reason": last, "attempts": attempt})
        raise SendFailed(last, retryable=True)

    async def _remember(self, sent: Sent, conversation: str, actor: str) -> None:
        key = self._record_key(sent.sid)
        doc = {"conversation": conversation, "status": sent.status, "history": [
            {"status": sent.status, "at": datetime.now(timezone.utc).isoformat()}]}
        await self.redis.set(key, self.keys.encrypt_text(json.dumps(doc), key), ex=RECORD_TTL_SECONDS)
        await self.audit.record(actor, "sms_sent", conversation, sent.status, {"attempts": sent.attempts})

    async def record_status(self, sid: str, status: str, error_code: str = "") -> Optional[str]:
        """Record a delivery status from the provider's callback; the conversation, or None if unknown."""
        if status not in DELIVERY_STATUSES:
            raise ValueError(f"unknown delivery status {status!r}")
        key = self._record_key(sid)
        token = await self.redis.get(key)
        if token is None:
            await self.audit.record(SYSTEM, "sms_status", "", "unknown_message", {"status": status})
            return None
        doc = json.loads(self.keys.decrypt_text(token.decode() if isinstance(token, bytes) else token, key))
        doc["status"] = status
        doc["history"].append({"status": status, "error_code": error_code,
                               "at": datetime.now(timezone.utc).isoformat()})
        await self.redis.set(key, self.keys.encrypt_text(json.dumps(doc), key), ex=RECORD_TTL_SECONDS)
        await self.audit.record(SYSTEM, "sms_status", doc["conversation"], status, {"error_code": error_code})
        return doc["conversation"]

    async def status_of(self, sid: str) -> Optional[dict]:
        key = self._record_key(sid)
        token = await self.redis.get(key)
        if token is None:
            return None
        return json.loads(self.keys.decrypt_text(token.decode() if isinstance(token, bytes) else token, key))
