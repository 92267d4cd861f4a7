"""Retention runs and legal holds against real Redis (bot/storage/retention.py, ``patientbot retention``).

Synthetic data from the demo bundle (visits in January 2030) and synthetic numbers; the run is
made "eight years later", so everything is due except what a legal hold keeps.
"""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
import redis

from bot.records.appointments import AppointmentStore
from bot.storage.audit import AuditLog
from bot.config import ROOT, load_settings
from bot.records.consent import ConsentRegistry
from bot.storage.crypto import keyring, phone_index
from bot.records.fhir import load_bundle_file
from bot.records.handoff import HandoffQueue
from bot.storage.retention import AUDIT_MINIMUM_DAYS, Policy, Retention, policy_from

FAMILY = "+15550100101"  # synthetic: demo patients 1 and 2
HELD = "+15550100102"  # synthetic: demo patient 3, under legal hold
LATER = datetime.now(timezone.utc) + timedelta(days=8 * 365)


@pytest.fixture
async def world(settings_env, redis_sync, prefix):
    cfg = load_settings()
    client = redis.asyncio.Redis.from_url(cfg.redis_url)
    keys = keyring(cfg)
    store = AppointmentStore(client, keys, prefix)
    await store.import_bundle(load_bundle_file(ROOT / "data" / "demo" / "synthetic_bundle.json"), "test")
    audit = AuditLog(client, keys, prefix)
    queue = HandoffQueue(client, None, prefix)
    consent = ConsentRegistry(client, keys, prefix)
    idx = {n: phone_index(keys, n) for n in (FAMILY, HELD)}
    for number in (FAMILY, HELD):
        conv = f"sms-{idx[number]}"
        await consent.record_opt_out(idx[number], "keyword", "STOP")
        await consent.record_opt_in(idx[number], "keyword", "START")
        await queue.post_to_inbox(conv, keys.encrypt_text("synthetic", queue.inbox_key(conv)))
        await audit.record("system:test", "message_received", conv, "ok", {})
        redis_sync.set(f"{prefix}tracker:{conv}", keys.encrypt_text("{}", f"{prefix}tracker:{conv}"))  # no expiry
    await audit.record("system:test", "message_received", "sms-other", "ok", {})
    retention = Retention(client, keys, prefix, policy_from(cfg), audit)
    await retention.holds.place(idx[HELD], "synthetic litigation hold", "admin:test")
    yield retention, store, idx
    await client.close()


async def test_a_run_purges_what_is_due_and_keeps_what_is_held(world, redis_sync, prefix):
    retention, store, idx = world
    family_conv, held_conv = f"sms-{idx[FAMILY]}", f"sms-{idx[HELD]}"
    redis_sync.expire(f"{prefix}tracker:{held_conv}", 3600)
    counts = await retention.run("admin:test", now=LATER)
    assert counts == {"trackers_expiry_set": 1, "message_entries": 1, "appointments": 2,
                      "consent_entries": 1, "audit_entries": 1}
    # Appointments of the family number are gone, and with them the patients; the held one stays.
    assert await store.next_appointment(idx[FAMILY], now=datetime(2030, 1, 1, tzinfo=timezone.utc)) is None
    assert await store.patients_at(idx[FAMILY]) == []
    assert len(await store.patients_at(idx[HELD])) == 1
    assert await store.next_appointment(idx[HELD], now=datetime(2030, 1, 1, tzinfo=timezone.utc)) is not None
    # Consent: the family keeps its state and latest change only; the held number keeps all.
    consent = ConsentRegistry(retention.redis, retention.keys, prefix)
    assert [h["text"] for h in await consent.history(idx[FAMILY])] == ["START"]
    assert (await consent.state(idx[FAMILY])).status == "opted_in"
    assert [h["text"] for h in await consent.history(idx[HELD])] == ["STOP", "START"]
    # Staff-conversation logs: the family's trimmed, the held one kept.
    queue = HandoffQueue(retention.redis, None, prefix)
    assert await queue.inbox(family_conv) == [] and len(await queue.inbox(held_conv)) == 1
    # Trackers: an expiry again for the family, none for the held conversation.
    assert 0 < redis_sync.ttl(f"{prefix}tracker:{family_conv}") <= 90 * 86400
    assert redis_sync.ttl(f"{prefix}tracker:{held_conv}") == -1
    # Audit: trimmed up to the first event about the held number; the rest still verifies.
    events = await retention.audit.events()
    assert [e.subject for e in events[:2]] == [held_conv, "sms-other"]
    assert events[-1].action == "retention_run" and events[-1].actor == "admin:test"
    assert events[-1].details["appointments"] == 2 and events[-1].details["legal_holds"] == 1
    assert await retention.audit.verify() is None


async def test_releasing_the_hold_lets_the_next_run_purge(world, redis_sync, prefix):
    retention, store, idx = world
    await retention.run("admin:test", now=LATER)
    assert await retention.holds.release(idx[HELD])
    counts = await retention.run("admin:test", now=LATER)
    assert counts["appointments"] == 1 and counts["consent_entries"] == 1 and counts["message_entries"] == 1
    assert await store.patients_at(idx[HELD]) == []


async def test_a_dry_run_changes_nothing_but_is_audited(world, redis_sync, prefix):
    retention, store, idx = world
    before = sorted(redis_sync.scan_iter(match=f"{prefix}*"))
    counts = await retention.run("admin:test", now=LATER, dry_run=True)
    assert counts["appointments"] == 2
    assert sorted(redis_sync.scan_iter(match=f"{prefix}*")) == before
    assert (await retention.audit.events())[-1].outcome == "dry_run"


async def test_nothing_is_due_today(world, redis_sync, prefix):
    retention, store, idx = world
    counts = await retention.run("admin:test", now=datetime(2030, 2, 1, tzinfo=timezone.utc))
    assert counts == {"trackers_expiry_set": 1, "message_entries": 0, "appointments": 0,
                      "consent_entries": 0, "audit_entries": 0}


def test_audit_retention_below_six_years_is_refused(settings_env):
    with pytest.raises(ValueError, match="six years"):
        Policy(audit=AUDIT_MINIMUM_DAYS - 1)
    run = subprocess.run([sys.executable, "-m", "bot.cli", "retention", "run"], capture_output=True, text=True,
                         env={**os.environ, **settings_env, "RETENTION_AUDIT_DAYS": "365"}, timeout=60)
    assert run.returncode == 1 and "six years" in run.stderr


def test_hold_and_release_from_the_cli_are_audited(settings_env, redis_sync, prefix):
    env = {**os.environ, **settings_env}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "bot.cli", "retention", *args], capture_output=True,
                              text=True, env=env, timeout=60)

    placed = cli("hold", HELD, "--reason", "synthetic matter 7")
    assert placed.returncode == 0, placed.stderr
    assert HELD[2:] not in placed.stdout  # the number is shown by its blind index only
    listed = cli("holds")
    assert "synthetic matter 7" in listed.stdout
    assert cli("release", HELD).returncode == 0
    assert cli("release", HELD).returncode == 1  # nothing to release
    assert b"synthetic matter" not in b"".join(redis_sync.hvals(f"{prefix}legal-hold") or [b""])
    import asyncio

    async def actions():
        cfg = load_settings()
        client = redis.asyncio.Redis.from_url(cfg.redis_url)
        try:
            return [(e.action, e.outcome) for e in await AuditLog(client, keyring(cfg), prefix).events()]
        finally:
            await client.close()

    assert asyncio.run(actions()) == [("legal_hold_placed", "ok"), ("legal_hold_released", "ok"),
                                      ("legal_hold_released", "not_held")]
