"""Shared fixtures. Redis is real everywhere: tests use DB 15 of the server at REDIS_URL
(default 127.0.0.1:6379) under a per-test key prefix, and delete what they wrote."""
from __future__ import annotations

import base64
import os
import secrets
from typing import Dict, Iterator

import pytest
import redis

TEST_REDIS_URL = os.environ.get("PATIENTBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def make_test_env(prefix: str, **overrides: str) -> Dict[str, str]:
    """A complete, valid settings environment with fresh secrets (nothing shared with .env)."""
    env = {
        "PATIENTBOT_DATA_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("="),
        "SMS_AUTH_TOKEN": secrets.token_hex(16),
        "RASA_GATEWAY_SECRET": secrets.token_urlsafe(24),
        "RASA_API_TOKEN": secrets.token_urlsafe(24),
        "ACTION_SERVER_SECRET": secrets.token_urlsafe(24),
        "REDIS_URL": TEST_REDIS_URL,
        "REDIS_PREFIX": prefix,
        "PATIENTBOT_ENV_FILE": "/nonexistent/.env",  # never read the developer's .env in tests
    }
    env.update(overrides)
    return env


def purge(client: redis.Redis, prefix: str) -> None:
    keys = list(client.scan_iter(match=f"{prefix}*", count=500))
    if keys:
        client.delete(*keys)


def redis_dump(prefix: str) -> bytes:
    """Every key and value under ``prefix`` as stored, one per line, to search for plain text;
    a key of a type this does not read shows as "unexpected type"."""
    client = redis.Redis.from_url(TEST_REDIS_URL)
    out = []
    for key in client.scan_iter(match=f"{prefix}*"):
        out.append(key)
        kind = client.type(key)
        if kind == b"string":
            out.append(client.get(key))
        elif kind == b"set":
            out.extend(client.smembers(key))
        elif kind == b"zset":
            out.extend(client.zrange(key, 0, -1))
        elif kind == b"hash":
            out += [b for kv in client.hgetall(key).items() for b in kv]
        elif kind == b"stream":
            out += [b for entry_id, fields in client.xrange(key) for b in (entry_id, *fields.keys(), *fields.values())]
        else:
            out.append(f"unexpected type {kind!r}".encode())
    return b"\n".join(out)


@pytest.fixture(scope="session")
def redis_sync() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(TEST_REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail(f"no Redis at {TEST_REDIS_URL}: run scripts/setup.sh (it starts one)")
    yield client
    client.close()


@pytest.fixture
def prefix(redis_sync: redis.Redis) -> Iterator[str]:
    p = f"pbt{secrets.token_hex(4)}:"
    yield p
    purge(redis_sync, p)


@pytest.fixture
def settings_env(prefix: str, monkeypatch: pytest.MonkeyPatch) -> Dict[str, str]:
    """Process settings pointing at the test Redis prefix, caches reset around the test."""
    from bot import config
    from bot.storage import crypto

    env = make_test_env(prefix)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    config.reset_cache()
    crypto.reset_keyrings()
    try:
        from actions import common

        common.reset_services()
    except ImportError:
        pass
    yield env
    config.reset_cache()
    crypto.reset_keyrings()


@pytest.fixture(scope="session")
def trained_model():
    """The model in models/, trained once if its inputs changed (reproducible: fixed seeds)."""
    from bot.nlu import training

    took = training.train_if_needed(quiet=True)
    if took is not None:
        print(f"\ntrained the model in {took:.0f} s")
    return training.model_path()


@pytest.fixture
async def gateway(settings_env, aiohttp_server, aiohttp_client, monkeypatch):
    """(client, stub Rasa, settings): the gateway app in-process, Rasa replaced by a recorder."""
    from tests.gateway_helpers import make_gateway

    return await make_gateway(settings_env, aiohttp_server, aiohttp_client, monkeypatch)
