"""Each web chat connection served by the gateway worker that holds it.

The gateway runs ``GATEWAY_WORKERS`` processes on one port and the kernel picks the process
for each new TCP connection (SO_REUSEPORT). An engine.io session (socket.io's transport) lives
in the memory of the process that opened it, and the widget's socket.io client 3.x starts with
HTTP long polling: each poll and each post is a new HTTP request, often on a new connection,
so it may reach any worker; so may the later WebSocket upgrade.

So the engine.io session id names its worker (``w<NN>`` then engine.io's own random id; see
:meth:`WorkerRoutes.session_id`), every worker also listens on a private loopback port (bound
before the fork, channels/gateway/workers.py), and a request carrying a session id of another
worker is passed on to that worker's private port, as HTTP or as a WebSocket, headers and body
unchanged: the owner makes every check itself (origin, cookie) as if the browser had reached it.
A request that came in on the private port is never passed on again.
"""
from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from typing import Optional, Sequence

import aiohttp
from aiohttp import WSMsgType, web
from multidict import CIMultiDict

logger = logging.getLogger(__name__)

_OWNER = re.compile(r"w([0-9]{2})")
# What a browser's engine.io request carries that the owner needs; nothing else is passed on.
FORWARDED_REQUEST = ("Cookie", "Origin", "Sec-Fetch-Site", "Content-Type", "User-Agent", "Accept",
                     "Accept-Language")
FORWARDED_RESPONSE = {"content-type", "content-encoding", "set-cookie", "access-control-allow-origin",
                      "access-control-allow-credentials", "access-control-allow-methods",
                      "access-control-allow-headers", "retry-after"}
# A long poll is held for up to engine.io's ping interval (25 s) before it answers.
POLL_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=90)


@dataclass
class WorkerRoutes:
    """Which worker this is and where every worker's private port is."""

    number: int
    ports: Sequence[int]
    _session: Optional[aiohttp.ClientSession] = field(default=None, repr=False)

    def session_id(self, engine_id: str) -> str:
        """An engine.io session id that names this worker."""
        return f"w{self.number:02d}{engine_id}"

    def owner(self, sid: str) -> Optional[int]:
        """The worker a session id names, or None if it names none of them."""
        match = _OWNER.match(sid)
        number = int(match.group(1)) if match else -1
        return number if 0 <= number < len(self.ports) else None

    def came_in_privately(self, request: web.Request) -> bool:
        """True for a request another worker passed on (it arrived on this worker's private port)."""
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        return bool(sockname) and sockname[1] == self.ports[self.number]

    def elsewhere(self, request: web.Request, sid: Optional[str]) -> Optional[int]:
        """The other worker that must answer this request, or None if this one answers it."""
        if not sid or self.came_in_privately(request):
            return None
        owner = self.owner(sid)
        return owner if owner is not None and owner != self.number else None

    async def start(self) -> None:
        # Its own pool, unbounded: each browser keeps up to one long poll open through it.
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30),
                                              auto_decompress=False)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def forward(self, request: web.Request, worker: int) -> web.StreamResponse:
        """Pass ``request`` on to ``worker`` and its answer back."""
        url = f"http://127.0.0.1:{self.ports[worker]}{request.path_qs}"
        headers = {name: request.headers[name] for name in FORWARDED_REQUEST if name in request.headers}
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._forward_websocket(request, url, headers)
        assert self._session is not None, "WorkerRoutes.start() was not awaited"
        try:
            async with self._session.request(request.method, url, data=await request.read(), headers=headers,
                                             timeout=POLL_TIMEOUT, allow_redirects=False) as answer:
                body = await answer.read()
                kept = CIMultiDict((name, value) for name, value in answer.headers.items()
                                   if name.lower() in FORWARDED_RESPONSE)
                return web.Response(status=answer.status, body=body, headers=kept)  # compressed or not, as it came
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            logger.warning("web chat: worker %d did not answer a passed-on request (%s)", worker,
                           exc.__class__.__name__)
            return web.Response(status=502, text="web chat connection lost, reconnecting")

    async def _forward_websocket(self, request: web.Request, url: str, headers: dict) -> web.StreamResponse:
        assert self._session is not None, "WorkerRoutes.start() was not awaited"
        try:
            upstream = await self._session.ws_connect(url, headers=headers, autoping=True, max_msg_size=0,
                                                      timeout=10.0)
        except aiohttp.WSServerHandshakeError as exc:  # the owner refused it: say so as it did
            return web.Response(status=exc.status, text="refused")
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return web.Response(status=502, text="web chat connection lost, reconnecting")
        browser = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await browser.prepare(request)
        try:
            await _pump(browser, upstream)
        finally:
            await upstream.close()
            await browser.close()
        return browser


async def _relay(source, target) -> None:
    """Copy text and binary messages from ``source`` to ``target`` until either closes."""
    async for message in source:
        if message.type == WSMsgType.TEXT:
            await target.send_str(message.data)
        elif message.type == WSMsgType.BINARY:
            await target.send_bytes(message.data)
        else:
            break


async def _pump(browser: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse) -> None:
    """Both directions at once; when one side ends, so does the other."""
    tasks = [asyncio.ensure_future(_relay(browser, upstream)), asyncio.ensure_future(_relay(upstream, browser))]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
