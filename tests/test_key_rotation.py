"""Envelope keys and data-key rotation against real Redis (bot/storage/crypto.py, bot/storage/rekey.py).

Records are written by the real stores (consent, audit, identity, hand-off inbox, legal holds,
a tracker-like string with an expiry), the data key is rotated, and then: every value opens
and reads the same with a freshly loaded key ring, none is still sealed by the old key, the
old key is gone (what it sealed opens nowhere), expiries are kept, and the audit chain and a
head exported before the rotation still verify. All data is synthetic.
"""
from __future__ import annotations

import base64
import os
import subprocess
import sys
import threading

import pytest
import redis

from bot.storage import crypto
from bot.storage.audit import AuditLog
from bot.config import load_settings
from bot.records.consent import ConsentRegistry
from bot.storage.crypto import DecryptionError, KeyStore, KeyStoreError, LocalKeyProvider, key_id_of, keyring, phone_index
from bot.records.handoff import HandoffQueue
from bot.storage.rekey import Rekeyer
from bot.storage.retention import LegalHolds

NUMBER = "+15550100151"  # synthetic


def _load_fresh(cfg) -> crypto.KeyRing:
    return KeyStore(redis.Redis.from_url(cfg.redis_url), crypto.key_provider(cfg), cfg.redis_prefix).load()


async def _populate(cfg):
    client = redis.asyncio.Redis.from_url(cfg.redis_url)
    keys = keyring(cfg)
    idx = phone_index(keys, NUMBER)
    consent = ConsentRegistry(client, keys, cfg.redis_prefix)
    await consent.record_opt_out(idx, "keyword", "STOP")
    await consent.record_opt_in(idx, "keyword", "START")
    audit = AuditLog(client, keys, cfg.redis_prefix)
    for i in range(5):
        await audit.record("system:test", "message_received", f"sms-{idx}", "ok", {"body": f"synthetic body {i}"})
    queue = HandoffQueue(client, None, cfg.redis_prefix)
    conv = f"sms-{idx}"
    await queue.post_to_inbox(conv, keys.encrypt_text("synthetic inbox text", queue.inbox_key(conv)))
    await LegalHolds(client, keys, cfg.redis_prefix).place(idx, "synthetic matter 1", "admin:test")
    tracker_key = f"{cfg.redis_prefix}tracker:{conv}"
    await client.set(tracker_key, keys.encrypt_text('{"events": ["synthetic"]}', tracker_key), ex=3600)
    exported = await audit.head_record()
    await client.close()
    return idx, conv, tracker_key, exported


async def _read_everything(cfg, keys, idx, conv, tracker_key):
    client = redis.asyncio.Redis.from_url(cfg.redis_url)
    try:
        state = await ConsentRegistry(client, keys, cfg.redis_prefix).state(idx)
        history = await ConsentRegistry(client, keys, cfg.redis_prefix).history(idx)
        audit = AuditLog(client, keys, cfg.redis_prefix)
        events = await audit.events()
        queue = HandoffQueue(client, None, cfg.redis_prefix)
        [inbox] = await queue.inbox(conv)
        holds = await LegalHolds(client, keys, cfg.redis_prefix).held()
        return {
            "consent": (state.status, [h["text"] for h in history]),
            "audit": [e.details.get("body") for e in events if e.action == "message_received"],
            "inbox": keys.decrypt_text(inbox, queue.inbox_key(conv)),
            "hold": holds[idx]["reason"],
            "tracker": keys.decrypt_text(await client.get(tracker_key), tracker_key),
            "audit_verify": await audit.verify(),
        }
    finally:
        await client.close()


def _all_values(client: redis.Redis, prefix: str):
    for key in client.scan_iter(match=f"{prefix}*"):
        kind = client.type(key)
        if kind == b"string":
            yield key, client.get(key)
        elif kind == b"hash":
            yield from ((key, v) for v in client.hvals(key))
        elif kind == b"stream":
            yield from ((key, v) for _, f in client.xrange(key) for v in f.values())


async def test_rotation_reencrypts_everything_and_destroys_the_old_key(settings_env, redis_sync, prefix):
    cfg = load_settings()
    idx, conv, tracker_key, exported = await _populate(cfg)
    before_ring = _load_fresh(cfg)
    old_key = before_ring.key_id
    before = await _read_everything(cfg, before_ring, idx, conv, tracker_key)
    sample = redis_sync.get(tracker_key)
    assert key_id_of(sample) == old_key

    store = crypto.key_store(cfg)
    report = Rekeyer(redis_sync, store, prefix).rotate(grace=0)
    assert report.complete and report.retired == [old_key] and report.new_key != old_key
    assert report.values_reencrypted == 11  # 2 consent log entries + state, 5 audit, inbox, hold, tracker

    after_ring = _load_fresh(cfg)
    assert after_ring.key_ids == [report.new_key]
    assert await _read_everything(cfg, after_ring, idx, conv, tracker_key) == before
    assert before["audit_verify"] is None
    stale = [(k, v) for k, v in _all_values(redis_sync, prefix) if key_id_of(v) == old_key]
    assert stale == []
    assert 0 < redis_sync.ttl(tracker_key) <= 3600  # expiry kept
    # The retired key opens nothing any more, not even a ciphertext kept from before.
    with pytest.raises(DecryptionError, match="does not hold"):
        after_ring.decrypt(sample, tracker_key)
    assert f"dek:{old_key}".encode() not in redis_sync.hkeys(f"{prefix}keys")
    # The audit chain is unchanged: the head exported before the rotation still matches.
    client = redis.asyncio.Redis.from_url(cfg.redis_url)
    assert await AuditLog(client, after_ring, prefix).verify(exported) is None
    await client.close()


async def test_a_running_process_picks_up_the_new_key(settings_env, redis_sync, prefix, monkeypatch):
    cfg = load_settings()
    running = keyring(cfg)  # as the gateway holds it
    first = running.key_id
    new = crypto.key_store(cfg).add_key()
    monkeypatch.setattr(crypto, "REFRESH_SECONDS", 0.0)
    token = running.encrypt_text("synthetic", f"{prefix}x")
    assert key_id_of(token) == new != first
    # ... and it opens values sealed by the other process's newer key at once.
    other = crypto.key_store(cfg).add_key()
    fresh_token = _load_fresh(cfg).encrypt_text("synthetic 2", f"{prefix}y")
    assert key_id_of(fresh_token) == other and running.decrypt_text(fresh_token, f"{prefix}y") == "synthetic 2"


async def test_a_value_that_does_not_open_keeps_the_old_key(settings_env, redis_sync, prefix):
    """Rotation never makes data unreadable: a misplaced ciphertext stops the old key's destruction."""
    cfg = load_settings()
    ring = keyring(cfg)
    old_key = ring.key_id
    redis_sync.set(f"{prefix}good", ring.encrypt_text("synthetic", f"{prefix}good"))
    redis_sync.set(f"{prefix}moved", ring.encrypt_text("synthetic", f"{prefix}elsewhere"))
    report = Rekeyer(redis_sync, crypto.key_store(cfg), prefix).rotate(grace=0)
    assert not report.complete and report.unreadable == [f"{prefix}moved"] and report.retired == []
    fresh = _load_fresh(cfg)
    assert old_key in fresh.key_ids  # kept
    assert key_id_of(redis_sync.get(f"{prefix}good")) == report.new_key


async def test_writes_during_a_rotation_are_not_lost(settings_env, redis_sync, prefix):
    cfg = load_settings()
    keys = keyring(cfg)
    idx = phone_index(keys, NUMBER)
    for i in range(200):
        key = f"{prefix}filler:{i}"
        redis_sync.set(key, keys.encrypt_text(f"synthetic {i}", key))
    stop = threading.Event()
    written = []

    def writer():
        import asyncio

        async def go():
            client = redis.asyncio.Redis.from_url(cfg.redis_url)
            audit = AuditLog(client, keyring(cfg), prefix)
            n = 0
            while not stop.is_set():
                await audit.record("system:test", "message_received", f"sms-{idx}", "ok", {"n": n})
                written.append(n)
                n += 1
            await client.close()

        asyncio.run(go())

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        report = Rekeyer(redis_sync, crypto.key_store(cfg), prefix).rotate(grace=crypto.REFRESH_SECONDS + 0.5)
    finally:
        stop.set()
        thread.join()
    assert report.complete
    fresh = _load_fresh(cfg)
    client = redis.asyncio.Redis.from_url(cfg.redis_url)
    audit = AuditLog(client, fresh, prefix)
    events = await audit.events()
    assert [e.details["n"] for e in events] == written and len(written) > 10
    assert await audit.verify() is None
    await client.close()
    for i in range(200):
        assert fresh.decrypt_text(redis_sync.get(f"{prefix}filler:{i}"), f"{prefix}filler:{i}") == f"synthetic {i}"


def test_rewrap_under_a_new_kek(settings_env, redis_sync, prefix):
    cfg = load_settings()
    ring = keyring(cfg)
    token = ring.encrypt_text("synthetic", f"{prefix}a")
    store = crypto.key_store(cfg)
    new_kek = os.urandom(32)
    assert store.rewrap(LocalKeyProvider(new_kek)) == 2  # the data key and the index root
    with pytest.raises(KeyStoreError, match="wrapped by key-encryption key"):
        crypto.key_store(cfg).load()  # the old KEK opens nothing now
    reopened = KeyStore(redis_sync, LocalKeyProvider(new_kek), prefix).load()
    assert reopened.decrypt_text(token, f"{prefix}a") == "synthetic"
    assert reopened.blind_index("x", "phone") == ring.blind_index("x", "phone")  # ids and keys unchanged


def test_no_key_is_stored_unwrapped(settings_env, redis_sync, prefix):
    cfg = load_settings()
    ring = keyring(cfg)
    ring.encrypt_text("synthetic", "a")
    stored = redis_sync.hgetall(f"{prefix}keys")
    assert stored[b"active"].decode() == ring.key_id
    for field, value in stored.items():
        if field == b"index" or field.startswith(b"dek:"):
            kek_id, _, body = value.decode().partition(".")
            assert kek_id == LocalKeyProvider(cfg.data_key).kek_id
            assert len(base64.urlsafe_b64decode(body + "==")) == 12 + 32 + 16  # nonce, wrapped key, tag


def test_keys_cli_rotates_and_is_audited(settings_env, redis_sync, prefix):
    cfg = load_settings()
    ring = keyring(cfg)
    redis_sync.set(f"{prefix}v", ring.encrypt_text("synthetic", f"{prefix}v"))
    old = ring.key_id
    env = {**os.environ, **settings_env}
    run = subprocess.run([sys.executable, "-m", "bot.cli", "keys", "rotate", "--grace", "0"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "re-encrypting: " in run.stderr and "rotation complete" in run.stdout
    status = subprocess.run([sys.executable, "-m", "bot.cli", "keys", "status"], capture_output=True, text=True,
                            env=env, timeout=60)
    assert old in status.stdout and '"state": "complete"' in status.stdout
    fresh = _load_fresh(cfg)
    assert old not in fresh.key_ids
    client_events = [e for e in _audit_events(cfg, fresh) if e.action == "keys_rotated"]
    assert client_events and client_events[-1].details["retired"] == [old]
    assert client_events[-1].actor.startswith("admin:cli:")


def _audit_events(cfg, ring):
    import asyncio

    async def go():
        client = redis.asyncio.Redis.from_url(cfg.redis_url)
        try:
            return await AuditLog(client, ring, cfg.redis_prefix).events()
        finally:
            await client.close()

    return asyncio.run(go())
