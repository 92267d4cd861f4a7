"""The whole stack for end-to-end tests: started as ``make up`` starts it (``scale`` instances),
on free ports and its own Redis prefix, the synthetic demo bundle loaded (its dates are in 2030,
so the appointments are upcoming); and a patient texting it through signed webhooks."""
from __future__ import annotations

import asyncio
import secrets
import socket
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional

import redis
from twilio.request_validator import RequestValidator

from bot.records.appointments import AppointmentStore
from bot.ops.chat import parse_twiml
from bot.config import ROOT
from bot.storage.crypto import keyring
from bot.records.fhir import load_bundle_file
from bot.ops.stack import Stack
from tests.conftest import TEST_REDIS_URL, make_test_env, purge

DEMO_NUMBER = "+15550100101"  # synthetic demo patient (shares the number with a second one)
BUNDLE = ROOT / "data" / "demo" / "synthetic_bundle.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def whole_stack(run_dir: Path, scale: int = 1, timeout: float = 300, **overrides: str) -> Iterator[Stack]:
    """The stack up (every gateway healthy), then down and its Redis keys deleted."""
    prefix = f"pbe2e{secrets.token_hex(3)}:"
    ports = {"GATEWAY_PORT": str(free_port()), "RASA_PORT": str(free_port()), "ACTION_PORT": str(free_port())}
    for n in range(2, scale + 1):  # explicit: base port + n - 1 may be taken on a test machine
        ports.update({f"{name}_{n}": str(free_port()) for name in ("GATEWAY_PORT", "RASA_PORT", "ACTION_PORT")})
    env = make_test_env(
        prefix, **ports,
        SMS_API_BASE=f"http://127.0.0.1:{free_port()}",
        SMS_RATE_LIMIT_PER_MINUTE="100000",  # scripted conversations text faster than people; limits are tested elsewhere
        PATIENTBOT_RUN_DIR=str(run_dir),
    )
    env["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{env['GATEWAY_PORT']}"
    env.update(overrides)
    s = Stack.from_env(env, scale=scale)
    store_client = redis.asyncio.Redis.from_url(TEST_REDIS_URL)
    asyncio.run(AppointmentStore(store_client, keyring(s.cfg), prefix).import_bundle(load_bundle_file(BUNDLE), "test"))
    try:
        s.up(timeout=timeout, train=False)
        yield s
    finally:
        s.down(say=lambda *_: None)
        purge(redis.Redis.from_url(TEST_REDIS_URL), prefix)


def signed_sms(cfg, sender: str, body: str, message_sid: Optional[str] = None):
    """A provider-signed inbound SMS, signed by the official twilio package (an independent peer)."""
    params = {"From": sender, "To": cfg.sms_from_number, "Body": body,
              "MessageSid": message_sid or "SM" + secrets.token_hex(16),
              "AccountSid": cfg.sms_account_sid, "NumMedia": "0"}
    signature = RequestValidator(cfg.sms_auth_token).compute_signature(cfg.public_base_url + "/sms/inbound", params)
    headers = {"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}
    return urllib.parse.urlencode(params).encode(), headers


def text(stack: Stack, body: str, sender: str = DEMO_NUMBER, instance: int = 1) -> List[str]:
    """Text ``body`` from ``sender`` to gateway ``instance``; the replies in its TwiML answer."""
    data, headers = signed_sms(stack.cfg, sender, body)
    req = urllib.request.Request(f"{stack.gateway_url(instance)}/sms/inbound", data=data, headers=headers)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return parse_twiml(resp.read().decode())


def grant_phi_by_text(stack: Stack, number: str) -> None:
    """Record a (synthetic) written authorization for PHI by text for ``number`` in the stack's
    Redis, as staff would from a signed form: its PHI answers then come by text after verification
    (without it, a secure link: tests/test_phi_by_text_e2e.py)."""
    from bot.records.consent import PHI_BY_TEXT, ConsentRegistry
    from bot.storage.crypto import phone_index

    async def grant() -> None:
        client = redis.asyncio.Redis.from_url(TEST_REDIS_URL)
        try:
            keys = keyring(stack.cfg)
            await ConsentRegistry(client, keys, stack.cfg.redis_prefix).grant_scope(
                phone_index(keys, number), PHI_BY_TEXT, "signed_form", "(synthetic) authorization on file")
        finally:
            await client.close()

    asyncio.run(grant())
