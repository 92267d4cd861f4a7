"""Configuration changes are audited at gateway start-up (bot/storage/config_audit.py), by name only."""
from __future__ import annotations

import dataclasses

import redis

from bot.storage.audit import AuditLog
from bot.config import load_settings
from bot.storage.config_audit import audit_configuration
from bot.storage.crypto import keyring


async def test_first_configuration_then_each_change_is_audited_by_name(settings_env, redis_sync, prefix, tmp_path):
    cfg = load_settings()
    client = redis.asyncio.Redis.from_url(cfg.redis_url)
    keys = keyring(cfg)
    audit = AuditLog(client, keys, prefix)
    try:
        assert await audit_configuration(client, keys, audit, cfg, "system:test") == []
        assert await audit_configuration(client, keys, audit, cfg, "system:test") == []  # unchanged: nothing
        office = tmp_path / "office.yml"
        office.write_text(cfg.office_config.read_text().replace("Maple Street", "Maple Avenue"))
        changed = dataclasses.replace(cfg, sms_rate_limit_per_minute=7, office_config=office,
                                      sms_auth_token="synthetic-new-token")
        names = await audit_configuration(client, keys, audit, changed, "system:test")
        assert names == ["office.yml", "office_config", "sms_auth_token", "sms_rate_limit_per_minute"]
        events = await audit.events()
        assert [e.action for e in events] == ["configuration_recorded", "configuration_changed"]
        assert events[1].details == {"changed": names}
        # Nothing about the values is kept in clear: no token, no numbers, no office name.
        stored = b"".join(k + v for k, v in redis_sync.hgetall(f"{prefix}config:seen").items())
        assert b"synthetic-new-token" not in stored and b"Maple" not in stored and b"redis://" not in stored
    finally:
        await client.close()


async def test_the_gateway_audits_its_configuration_at_start_up(gateway):
    client, stub, cfg = gateway
    rc = redis.asyncio.Redis.from_url(cfg.redis_url)
    try:
        actions = [e.action for e in await AuditLog(rc, keyring(cfg), cfg.redis_prefix).events()]
    finally:
        await rc.close()
    assert actions == ["configuration_recorded"]
