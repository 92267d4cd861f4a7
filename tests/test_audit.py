"""The audit trail against the real Redis: each kind of tampering is detected, truncation and
rewrites against an exported head, exports (JSONL and FHIR AuditEvent) are themselves audited,
and an acknowledged event survives kill -9 of a durable Redis."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
import redis

from bot.storage.audit import AuditLog, _digest
from bot.config import load_settings
from bot.storage.crypto import keyring, conversation_id
from tests.test_safety_gate import _free_port, _start_durable_redis

T0 = datetime(2030, 1, 2, 12, 0, tzinfo=timezone.utc)
NUMBER = "+15550100141"  # synthetic


@pytest.fixture
async def log(settings_env):
    cfg = load_settings()
    client = redis.asyncio.Redis.from_url(cfg.redis_url)
    audit = AuditLog(client, keyring(cfg), cfg.redis_prefix)
    conv = conversation_id(audit.keys, "sms", NUMBER)
    for i in range(6):
        await audit.record("system:test", "message_received", conv, "ok", {"body": f"synthetic {i}"},
                           at=T0 + timedelta(minutes=i))
    yield audit
    await client.close()


def _entries(redis_sync, audit):
    return redis_sync.xrange(audit.stream)


def _rebuild(redis_sync, audit, entries):
    """Rewrite the stream with these entries (what someone with write access to Redis could do)."""
    redis_sync.delete(audit.stream)
    for n, (_, fields) in enumerate(entries, 1):
        redis_sync.xadd(audit.stream, fields, id=f"{n}-0")


async def test_intact_log_verifies_and_details_are_sealed(log, redis_sync):
    assert await log.verify() is None
    assert await log.verify(await log.head_record()) is None
    raw = b"".join(v for _, f in _entries(redis_sync, log) for v in f.values())
    assert b"synthetic" not in raw and NUMBER[2:].encode() not in raw


async def test_a_changed_byte_is_found(log, redis_sync):
    entries = _entries(redis_sync, log)
    fields = dict(entries[3][1])
    fields[b"outcome"] = b"ol"  # one byte changed
    _rebuild(redis_sync, log, entries[:3] + [(None, fields)] + entries[4:])
    assert await log.verify() == "4-0"


async def test_a_deleted_entry_is_found(log, redis_sync):
    entries = _entries(redis_sync, log)
    redis_sync.xdel(log.stream, entries[2][0])
    assert await log.verify() == entries[3][0].decode()


async def test_reordered_entries_are_found(log, redis_sync):
    entries = _entries(redis_sync, log)
    _rebuild(redis_sync, log, entries[:2] + [entries[3], entries[2]] + entries[4:])
    assert await log.verify() == "3-0"


async def test_an_inserted_entry_is_found_even_if_the_chain_is_recomputed(log, redis_sync):
    exported = await log.head_record()
    entries = _entries(redis_sync, log)
    forged = dict(entries[1][1])
    forged[b"action"] = b"consent_opt_in"
    naive = entries[:2] + [(None, forged)] + entries[2:]
    _rebuild(redis_sync, log, naive)
    assert await log.verify() == "3-0"
    # A careful forger recomputes every hash after the insertion and moves the head key ...
    prev, rebuilt = "0" * 64, []
    for _, fields in naive:
        f = {k.decode(): v.decode() for k, v in fields.items()}
        public = {k: f[k] for k in ("at", "actor", "action", "subject", "outcome", "digest")}
        digest = _digest(prev, public)
        rebuilt.append((None, {**f, "prev": prev, "hash": digest}))
        prev = digest
    _rebuild(redis_sync, log, rebuilt)
    redis_sync.set(log.head, prev)
    assert await log.verify() is None  # ... which a chain alone cannot tell,
    assert "diverged" in await log.verify(exported)  # but the head exported earlier can.


async def test_truncation_is_found_against_an_exported_head(log, redis_sync):
    exported = await log.head_record()
    entries = _entries(redis_sync, log)
    for entry_id, _ in entries[-2:]:
        redis_sync.xdel(log.stream, entry_id)
    assert await log.verify() == "head"  # the head key no longer matches ...
    redis_sync.set(log.head, entries[-3][1][b"hash"])  # ... until it is moved back too
    assert await log.verify() is None
    assert "diverged" in await log.verify(exported)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=60)


async def test_cli_head_verify_and_exports_are_audited(log, redis_sync, tmp_path):
    head = _cli("audit", "head")
    assert head.returncode == 0 and json.loads(head.stdout)["entries"] == 6
    (tmp_path / "head.json").write_text(head.stdout)
    verified = _cli("audit", "verify", "--head", str(tmp_path / "head.json"))
    assert verified.returncode == 0 and "intact" in verified.stdout

    window = ["--since", (T0 + timedelta(minutes=1)).isoformat(), "--until", (T0 + timedelta(minutes=4)).isoformat()]
    jsonl = _cli("audit", "export", *window, "--number", NUMBER)
    rows = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert [r["details"]["body"] for r in rows] == ["synthetic 1", "synthetic 2", "synthetic 3"]
    fhir = _cli("audit", "export", "--format", "fhir", *window)
    resources = [json.loads(line) for line in fhir.stdout.splitlines()]
    assert {r["resourceType"] for r in resources} == {"AuditEvent"} and len(resources) == 3
    first = resources[0]
    assert first["type"]["code"] == "message_received" and first["action"] == "C" and first["outcome"] == "0"
    assert first["agent"][0]["who"]["identifier"]["value"] == "system:test"
    assert first["entity"][0]["what"]["identifier"]["value"] == conversation_id(log.keys, "sms", NUMBER)
    exports = [e for e in await log.events() if e.action == "audit_exported"]
    assert [(e.details["format"], e.details["events"]) for e in exports] == [("jsonl", 3), ("fhir", 3)]
    assert all(e.actor.startswith("admin:cli:") for e in exports)
    # The exports extended the chain; an old head still checks out (nothing was cut).
    assert _cli("audit", "verify", "--head", str(tmp_path / "head.json")).returncode == 0
    redis_sync.xdel(log.stream, _entries(redis_sync, log)[1][0])
    broken = _cli("audit", "verify")
    assert broken.returncode == 1 and "BROKEN" in broken.stderr


async def test_an_acknowledged_event_survives_kill_9(settings_env, tmp_path, monkeypatch):
    port = _free_port()
    proc = _start_durable_redis(port, tmp_path)
    try:
        cfg = load_settings()
        client = redis.asyncio.Redis(port=port)
        audit = AuditLog(client, keyring(cfg), cfg.redis_prefix)
        digest = await audit.record("system:test", "consent_opt_out", "sms-x", "recorded", {})
        await client.close()
        os.kill(proc.pid, signal.SIGKILL)  # right after the acknowledgement
        proc.wait()
        proc = _start_durable_redis(port, tmp_path)
        client = redis.asyncio.Redis(port=port)
        audit = AuditLog(client, keyring(cfg), cfg.redis_prefix)
        [event] = await audit.events()
        assert event.hash == digest and await audit.verify() is None
        await client.close()
    finally:
        proc.kill()
        proc.wait()


async def test_swapped_or_damaged_details_are_found(log, redis_sync):
    """The chain covers the digest of the details; a ciphertext moved between entries, or
    damaged, no longer matches it (the chain fields alone would still look intact)."""
    entries = _entries(redis_sync, log)
    swapped = [dict(f) for _, f in entries]
    swapped[1][b"details"], swapped[2][b"details"] = swapped[2][b"details"], swapped[1][b"details"]
    _rebuild(redis_sync, log, [(None, f) for f in swapped])
    assert await log.verify() == "2-0"
    damaged = [dict(f) for _, f in entries]
    damaged[4][b"details"] = damaged[4][b"details"][:-2] + (b"AA" if not damaged[4][b"details"].endswith(b"AA") else b"BB")
    _rebuild(redis_sync, log, [(None, f) for f in damaged])
    assert await log.verify() == "5-0"


async def test_retention_trims_the_oldest_entries_and_the_rest_still_verifies(log, redis_sync):
    exported_early = await log.head_record()
    held = conversation_id(log.keys, "sms", "+15550100142")  # synthetic, under legal hold
    await log.record("system:test", "message_received", held, "ok", {}, at=T0 + timedelta(minutes=6, seconds=30))
    await log.record("system:test", "message_received", "sms-x", "ok", {}, at=T0 + timedelta(minutes=7))
    exported = await log.head_record()
    # Due: everything before minute 10, but the held subject's entry stops the trim there.
    assert await log.trim_before(T0 + timedelta(minutes=10), frozenset({held})) == 6
    assert [e.subject for e in await log.events()] == [held, "sms-x"]
    assert await log.verify() is None
    assert await log.verify(exported) is None  # positions count the trimmed entries
    assert await log.verify(exported_early) is None  # a head inside the trimmed part: nothing to compare
    assert (await log.head_record())["entries"] == 8
    # A forger who deletes the first kept entry is still caught.
    redis_sync.xdel(log.stream, redis_sync.xrange(log.stream)[0][0])
    assert await log.verify() is not None


async def test_concurrent_appends_from_two_writers_keep_one_intact_chain(log):
    """Many appends at once, from two writers (as two processes would be): none lost, chain intact."""
    import asyncio

    from tests.conftest import TEST_REDIS_URL

    other = AuditLog(redis.asyncio.Redis.from_url(TEST_REDIS_URL), log.keys, log.stream[: -len("audit")])
    await asyncio.gather(*(w.record("system:test", "message_received", "sms-c", "ok", {"n": i})
                           for i in range(40) for w in ((log, other)[i % 2],)))
    events = [e for e in await log.events() if e.subject == "sms-c"]
    assert sorted(e.details["n"] for e in events) == list(range(40))
    assert await log.verify() is None
    await other.redis.close()


async def test_appends_in_flight_together_are_committed_in_groups_in_order(log):
    """A busy process's appends share round trips (group commit): 60 at once take far fewer
    than 60 script calls, keep the order they were recorded in, and the chain verifies."""
    import asyncio

    calls = []
    script = log._append

    async def counted(**kwargs):
        calls.append(int(kwargs["args"][3]) and (len(kwargs["args"]) - 4) // int(kwargs["args"][3]))
        return await script(**kwargs)

    log._append = counted
    await log.record("system:test", "message_received", "sms-g", "ok", {"n": -1})
    calls.clear()
    hashes = await asyncio.gather(*(log.record("system:test", "message_received", "sms-g", "ok", {"n": i})
                                    for i in range(60)))
    events = [e for e in await log.events() if e.subject == "sms-g"][1:]
    assert [e.details["n"] for e in events] == list(range(60))
    assert [e.hash for e in events] == list(hashes)
    assert sum(calls) == 60 and len(calls) <= 3, calls  # the first alone, then the rest together
    assert await log.verify() is None


async def test_a_cancelled_caller_does_not_lose_the_events_queued_behind_it(log):
    import asyncio

    first = asyncio.ensure_future(log.record("system:test", "message_received", "sms-k", "ok", {"n": 0}))
    rest = [asyncio.ensure_future(log.record("system:test", "message_received", "sms-k", "ok", {"n": i}))
            for i in range(1, 6)]
    await asyncio.sleep(0)  # the first one's commit is in flight; the rest are queued behind it
    first.cancel()
    await asyncio.gather(*rest)
    await asyncio.sleep(0.05)
    events = [e for e in await log.events() if e.subject == "sms-k"]
    assert [e.details["n"] for e in events] == [0, 1, 2, 3, 4, 5]  # the cancelled caller's event too
    assert await log.verify() is None
