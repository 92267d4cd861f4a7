"""End to end, through the whole stack (gateway, Rasa, action server) with the synthetic demo
patient: a PHI question by text gets a one-time secure link and no PHI; after staff record the
patient's written authorization (``patientbot consent grant ... phi_by_text``), the date of
birth and then the details, as before; after it is withdrawn, a link again, verified or not."""
from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys

import pytest
import redis

from bot.config import ROOT
from bot.records.secure_links import LinkGrant, SecureLinks
from bot.storage.audit import AuditLog
from bot.storage.crypto import conversation_id, keyring, phone_index
from tests.conftest import TEST_REDIS_URL, redis_dump
from tests.test_adversarial_phi import PHI_RE
from tests.test_e2e import stack, text  # noqa: F401 - the running-stack fixture

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROBIN = "+15550100102"  # demo patient 3, born 11/30/1975 (synthetic)
ASK = "what should I bring to my appointment"
LINK_RE = re.compile(r"^For your privacy, read this in our secure chat: (\S+)/chat/s/([A-Za-z0-9_-]{32})$")
WORDS = ("(synthetic) I authorize Maple Street to text me my health information. I was told texts "
         "are not encrypted and others may read them.")


def _cli(stack, *args: str) -> subprocess.CompletedProcess:
    run = subprocess.run([sys.executable, "-m", "bot.cli", *args], cwd=ROOT, env={**os.environ, **stack.env},
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    return run


def _link(stack, reply) -> str:
    assert len(reply) == 1, reply
    match = LINK_RE.match(reply[0])
    assert match and match.group(1) == stack.cfg.public_base_url, reply
    assert not PHI_RE.search(reply[0].replace(match.group(2), "")), reply
    return match.group(2)


def _with_redis(stack, fn):
    async def run():
        client = redis.asyncio.Redis.from_url(TEST_REDIS_URL)
        try:
            return await fn(client, keyring(stack.cfg))
        finally:
            await client.close()
    return asyncio.run(run())


def test_a_phi_question_by_text_gets_a_link_until_the_patient_authorizes_phi_by_text(stack):
    conv = conversation_id(keyring(stack.cfg), "sms", ROBIN)
    token = _link(stack, text(stack, ASK, ROBIN))  # no date-of-birth question, no PHI
    assert token.encode() not in redis_dump(stack.cfg.redis_prefix)  # only its keyed hash is stored

    async def open_link(client, keys):
        links = SecureLinks(client, keys, stack.cfg.redis_prefix, AuditLog(client, keys, stack.cfg.redis_prefix))
        return await links.open(token), await links.open(token)

    first, second = _with_redis(stack, open_link)
    assert first.status == "ok" and second.status == "used"
    assert first.grant == LinkGrant(conv, phone_index(keyring(stack.cfg), ROBIN), "ask_appointment_specifics")

    granted = _cli(stack, "consent", "grant", ROBIN, "phi_by_text", "--source", "signed_form", "--text", WORDS)
    assert "phi_by_text" in granted.stdout
    [ask] = text(stack, ASK, ROBIN)
    assert "date of birth" in ask and "secure chat" not in ask
    [details] = text(stack, "11/30/1975", ROBIN)
    assert "blood pressure log" in details.lower()  # the details by text, as before

    _cli(stack, "consent", "revoke", ROBIN, "phi_by_text", "--source", "staff", "--text", "(synthetic) by phone")
    _link(stack, text(stack, ASK, ROBIN))  # still verified, no longer authorized: the link, no PHI

    async def audit_actions(client, keys):
        return [(e.action, e.subject) for e in await AuditLog(client, keys, stack.cfg.redis_prefix).events()]

    actions = _with_redis(stack, audit_actions)
    assert actions.count(("secure_link_issued", conv)) == 2 and ("secure_link_opened", conv) in actions
    assert [a for a, _ in actions if a.startswith("consent_scope")] == ["consent_scope_granted", "consent_scope_revoked"]
    assert ("phi_reply_blocked", conv) not in actions  # the action itself offered the link
