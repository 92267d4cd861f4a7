"""The gateway's Redis pool (bot/storage/redis_client.py) against the real Redis: a reused connection
is checked without the zero-timeout read, and still never hands a stale reply to a command."""
from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from bot.storage.redis_client import ReadyConnectionPool, async_redis
from bot.config import load_settings
from tests.conftest import TEST_REDIS_URL
from channels.gateway.app_keys import SERVICES


@pytest.fixture
async def client():
    c = aioredis.Redis(connection_pool=ReadyConnectionPool.from_url(TEST_REDIS_URL))
    yield c
    await c.close()
    await c.connection_pool.disconnect()


async def test_the_gateways_client_uses_the_pool(settings_env):
    c = async_redis(load_settings())
    assert isinstance(c.connection_pool, ReadyConnectionPool)
    assert await c.ping()
    await c.close()
    await c.connection_pool.disconnect()


async def test_commands_do_not_wait_on_a_zero_timeout_read(client, monkeypatch):
    await client.ping()  # a connection in the pool, to be reused

    async def refused(self):
        raise AssertionError("the pool waited on a read to check a connection")

    monkeypatch.setattr(aioredis.Connection, "can_read_destructive", refused)
    assert await client.echo("synthetic") == b"synthetic"
    async with client.pipeline(transaction=True) as pipe:
        assert await pipe.echo("a").echo("b").execute() == [b"a", b"b"]


async def test_a_reply_left_unread_is_never_taken_for_the_next_answer(client):
    conn = await client.connection_pool.get_connection("PING")
    await conn.send_command("ECHO", "stale")  # sent, its reply never read
    for _ in range(100):  # until the loop has read the reply into the connection's buffer
        await asyncio.sleep(0.01)
        if conn._reader._buffer:  # noqa: SLF001
            break
    await client.connection_pool.release(conn)
    assert await client.echo("fresh") == b"fresh"


async def test_a_connection_the_server_closed_is_replaced(client):
    await client.ping()
    [conn] = client.connection_pool._available_connections  # noqa: SLF001
    await conn.send_command("CLIENT", "ID")
    own_id = int(await conn.read_response())
    killer = aioredis.Redis.from_url(TEST_REDIS_URL)
    assert await killer.client_kill_filter(_id=own_id) == 1
    await killer.close()
    for _ in range(100):  # until the loop has seen the server close it
        await asyncio.sleep(0.01)
        if conn._reader.at_eof():  # noqa: SLF001
            break
    assert await client.echo("after") == b"after"


async def test_the_gateway_opens_its_connections_before_traffic_and_closes_them(settings_env, aiohttp_client):
    from channels.gateway.app import create_app

    cfg = load_settings()
    client = await aiohttp_client(create_app(cfg))
    pool = client.server.app[SERVICES].redis.connection_pool
    opened = list(pool._available_connections)  # noqa: SLF001
    assert len(opened) >= cfg.redis_warm_connections and all(c.is_connected for c in opened)
    await client.close()  # the app's clean-up closes its client, and with it the pool
    assert not any(c.is_connected for c in opened)


async def test_opening_connections_keeps_them_in_the_pool(client):
    from bot.storage.redis_client import open_connections

    assert await open_connections(client, 5) == 5
    assert await client.echo("x") == b"x"
    assert len(client.connection_pool._available_connections) == 5  # noqa: SLF001
