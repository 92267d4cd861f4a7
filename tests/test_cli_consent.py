"""`patientbot consent show` and `consent export`: the compliance view of the consent record,
run as the real command against the real Redis, and audited."""
from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from datetime import datetime, timezone

import redis

from bot.storage.audit import AuditLog
from bot.config import load_settings
from bot.records.consent import ConsentRegistry
from bot.storage.crypto import keyring, phone_index

NUMBER = "+15550100131"  # synthetic


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=60)


async def record_history(cfg_env):
    cfg = load_settings()
    client = redis.asyncio.Redis.from_url(cfg.redis_url)
    keys = keyring(cfg)
    registry = ConsentRegistry(client, keys, cfg_env["REDIS_PREFIX"])
    idx = phone_index(keys, NUMBER)
    await registry.record_opt_in(idx, "web_form", "I agree to texts",
                                 at=datetime(2030, 1, 2, 15, 0, tzinfo=timezone.utc))
    await registry.record_opt_out(idx, "keyword", "STOP", at=datetime(2030, 1, 3, 9, 0, tzinfo=timezone.utc))
    return client, keys, idx


async def test_show_and_export_the_full_history(settings_env):
    client, keys, idx = await record_history(settings_env)

    shown = run_cli("consent", "show", "(555) 010-0131")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == f"number index {idx}: opted_out"
    assert "opted_in" in lines[1] and "web_form" in lines[1] and "'I agree to texts'" in lines[1]
    assert "opted_out" in lines[2] and "'STOP'" in lines[2]

    exported = run_cli("consent", "export", "--format", "csv")
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert [(r["status"], r["source"], r["text"], r["number_index"]) for r in rows] == [
        ("opted_in", "web_form", "I agree to texts", idx), ("opted_out", "keyword", "STOP", idx)]
    assert rows[0]["scopes"] == "appointment_reminders care_messages"

    jsonl = run_cli("consent", "export")
    assert [json.loads(line)["status"] for line in jsonl.stdout.splitlines()] == ["opted_in", "opted_out"]
    assert NUMBER[2:] not in exported.stdout + jsonl.stdout  # the record holds an index, not the number

    actions = [(e.action, e.actor.startswith("admin:cli:")) for e in
               await AuditLog(client, keys, settings_env["REDIS_PREFIX"]).events()]
    assert actions == [("consent_viewed", True), ("consent_exported", True), ("consent_exported", True)]
    await client.close()


def test_show_rejects_a_non_number(settings_env):
    result = run_cli("consent", "show", "not-a-number")
    assert result.returncode != 0 and "not a phone number" in (result.stderr + result.stdout)


async def test_identity_unlock_lifts_a_staff_lock(settings_env):
    from datetime import date

    from bot.storage.crypto import conversation_id
    from bot.records.identity import IdentityRegistry

    cfg = load_settings()
    client = redis.asyncio.Redis.from_url(cfg.redis_url)
    keys = keyring(cfg)
    registry = IdentityRegistry(client, keys, cfg.redis_prefix)
    conv = conversation_id(keys, "sms", NUMBER)
    start = datetime(2030, 1, 2, 0, 0, tzinfo=timezone.utc)
    from datetime import timedelta

    for i in range(10):
        await registry.check_dob(conv, "sms", date(1999, 9, 9), [("p", date(1970, 1, 1))], start + timedelta(minutes=31 * i))
    assert await registry.lock_state(conv, start + timedelta(hours=6)) == "staff"
    result = run_cli("identity", "unlock", NUMBER)
    assert result.returncode == 0, result.stderr
    assert await registry.lock_state(conv, start + timedelta(hours=6)) is None
    events = await AuditLog(client, keys, cfg.redis_prefix).events()
    assert [(e.action, e.subject) for e in events] == [("verification_unlocked", conv)]
    await client.close()


async def test_consent_recorded_by_staff_with_scopes(settings_env):
    result = run_cli("consent", "record", "555-010-0132", "opted_in", "--source", "web_form",
                     "--scope", "appointment_reminders", "--text", "I agree to appointment texts (synthetic form)")
    assert result.returncode == 0, result.stderr
    assert "opted_in (scopes: appointment_reminders)" in result.stdout
    cfg = load_settings()
    client = redis.asyncio.Redis.from_url(cfg.redis_url)
    keys = keyring(cfg)
    idx = phone_index(keys, "+15550100132")
    state = await ConsentRegistry(client, keys, cfg.redis_prefix).state(idx)
    assert state.allows("appointment_reminders") and not state.allows("care_messages")
    revoked = run_cli("consent", "record", "+15550100132", "opted_out", "--source", "staff", "--text", "asked by phone")
    assert revoked.returncode == 0 and "opted_out" in revoked.stdout
    history = await ConsentRegistry(client, keys, cfg.redis_prefix).history(idx)
    assert [(h["status"], h["source"]) for h in history] == [("opted_in", "web_form"), ("opted_out", "staff")]
    actions = [e.action for e in await AuditLog(client, keys, cfg.redis_prefix).events()]
    assert actions == ["consent_opt_in", "consent_opt_out"]
    await client.close()


async def test_phi_by_text_granted_and_revoked_by_scope_with_its_source_and_words(settings_env):
    words = "(synthetic) I authorize health information by text; I was told texts are not secure."
    refused = run_cli("consent", "grant", "555-010-0133", "phi_by_text", "--source", "staff", "--text", words)
    assert refused.returncode == 1 and "written authorization" in refused.stderr
    started = run_cli("consent", "record", "555-010-0133", "opted_in", "--source", "web_form",
                      "--text", "I agree to texts (synthetic form)")
    assert started.returncode == 0, started.stderr
    granted = run_cli("consent", "grant", "555-010-0133", "phi_by_text", "--source", "signed_form", "--text", words)
    assert granted.returncode == 0, granted.stderr
    assert "opted_in (scopes: appointment_reminders, care_messages, phi_by_text)" in granted.stdout
    cfg = load_settings()
    client = redis.asyncio.Redis.from_url(cfg.redis_url)
    keys = keyring(cfg)
    idx = phone_index(keys, "+15550100133")
    registry = ConsentRegistry(client, keys, cfg.redis_prefix)
    assert (await registry.state(idx)).phi_by_text
    assert (await registry.history(idx))[-1]["text"] == words

    shown = run_cli("consent", "show", "+15550100133").stdout.splitlines()
    assert re.fullmatch(rf"number index {idx}: opted_in \(scopes: appointment_reminders \[web_form, [^]]+\], "
                        r"care_messages \[web_form, [^]]+\], phi_by_text \[signed_form, [^]]+\]\)", shown[0]), shown[0]
    assert "source=signed_form" in shown[2] and "scopes=appointment_reminders,care_messages,phi_by_text" in shown[2]

    revoked = run_cli("consent", "revoke", "+15550100133", "phi_by_text", "--source", "staff",
                      "--text", "(synthetic) asked by phone to stop")
    assert revoked.returncode == 0, revoked.stderr
    state = await registry.state(idx)
    assert not state.phi_by_text and state.allows("appointment_reminders")  # the other scopes stay
    # The old form takes the scope too (and still refuses it from a source that is not written).
    recorded = run_cli("consent", "record", "555-010-0133", "opted_in", "--source", "signed_form",
                       "--scope", "appointment_reminders", "--scope", "phi_by_text", "--text", words)
    assert recorded.returncode == 0 and (await registry.state(idx)).phi_by_text
    assert run_cli("consent", "record", "555-010-0133", "opted_in", "--source", "staff",
                   "--scope", "phi_by_text", "--text", words).returncode == 1

    events = [(e.action, e.outcome, e.details) for e in await AuditLog(client, keys, cfg.redis_prefix).events()]
    assert events == [
        ("consent_opt_in", "ok", {"source": "web_form"}),
        ("consent_scope_granted", "ok", {"scope": "phi_by_text", "source": "signed_form"}),
        ("consent_viewed", "ok", {}),
        ("consent_scope_revoked", "ok", {"scope": "phi_by_text", "source": "staff"}),
        ("consent_opt_in", "ok", {"source": "signed_form"})]
    await client.close()
