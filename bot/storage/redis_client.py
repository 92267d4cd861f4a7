"""Redis connections, built from one URL so TLS (``rediss://``) and ACL users work everywhere.

``REDIS_URL`` may carry ``username:password@`` and ``?ssl_cert_reqs=...``; ``REDIS_USERNAME``
and ``REDIS_PASSWORD`` override the URL's credentials so a password need not sit in the URL.
Each process keeps one pool: connections are reused, never set up per message.
"""
from __future__ import annotations

from typing import Dict, Optional

import redis
import redis.asyncio as aioredis

from bot.config import Settings, settings as current_settings


def _options(cfg: Settings) -> Dict[str, object]:
    options: Dict[str, object] = {"socket_timeout": 5, "socket_connect_timeout": 3, "health_check_interval": 30}
    username = cfg.extra.get("REDIS_USERNAME")
    password = cfg.extra.get("REDIS_PASSWORD")
    if username:
        options["username"] = username
    if password:
        options["password"] = password
    return options


_sync: Dict[str, redis.Redis] = {}


def as_text(value) -> Optional[str]:
    """A Redis reply as a string: the clients here return bytes; None (no such key) stays None."""
    return value.decode() if isinstance(value, bytes) else value


def sync_redis(cfg: Optional[Settings] = None) -> redis.Redis:
    """A shared synchronous client (CLI, Rasa tracker store)."""
    cfg = cfg or current_settings()
    client = _sync.get(cfg.redis_url)
    if client is None:
        client = _sync[cfg.redis_url] = redis.Redis.from_url(cfg.redis_url, **_options(cfg))
    return client


class ReadyConnectionPool(aioredis.ConnectionPool):
    """redis-py's asyncio pool, with its check of a reused connection made without waiting.

    Before handing out a connection, redis-py makes sure nothing unread is left on it, by a read
    with a zero timeout: that costs two turns of the event loop on every command, and on a busy
    gateway each turn waits for everything else that is ready (the safety gate's answers wait
    on a few commands each). Whatever the server has sent is already in the connection's buffer
    once the loop has read it, so looking there says the same thing at once. A connection with
    data left on it, or that the server closed, is reconnected, as redis-py would.
    """

    async def get_connection(self, command_name, *keys, **options):
        self._checkpid()
        async with self._lock:  # never waits: nothing inside it awaits
            try:
                connection = self._available_connections.pop()
            except IndexError:
                connection = self.make_connection()
            self._in_use_connections.add(connection)
        try:
            await connection.connect()  # returns at once when connected
            if _unread_or_closed(connection):
                await connection.disconnect()
                await connection.connect()
        except BaseException:
            await self.release(connection)
            raise
        return connection


def _unread_or_closed(connection) -> bool:
    """Whether a connection has bytes no command has read, or the server has closed it
    (redis 4.6's asyncio connection: its stream reader, and the parser's own buffer)."""
    parser, reader = connection._parser, connection._reader
    if getattr(parser, "_buffer", b"") or getattr(parser, "_chunks", None):
        return True
    return reader is None or len(reader._buffer) > 0 or reader.at_eof()


def async_redis(cfg: Optional[Settings] = None) -> aioredis.Redis:
    """A new asyncio client with its own pool; the caller keeps it for the process's life.
    Closing the client closes its pool's connections too."""
    cfg = cfg or current_settings()
    client = aioredis.Redis(connection_pool=ReadyConnectionPool.from_url(cfg.redis_url, **_options(cfg)))
    client.auto_close_connection_pool = True  # its own pool: redis-py leaves a given pool open
    return client


async def open_connections(client: aioredis.Redis, count: int) -> int:
    """Open up to ``count`` connections of ``client``'s pool now and leave them in the pool, so
    the first burst of traffic does not open them all at once (at 100 first messages at once,
    opening them took about 60 ms each, make bench). Returns how many are open."""
    pool = client.connection_pool
    held = []
    try:
        for _ in range(count):  # the pool's open connections first, then new ones
            held.append(await pool.get_connection("PING"))
    finally:
        for connection in held:
            await pool.release(connection)
    return len(pool._available_connections)  # noqa: SLF001
