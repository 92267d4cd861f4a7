"""Helpers for web chat tests: a gateway in-process in front of the stand-in Rasa, and a patient's
browser played by python-socketio's client (an independent implementation of the protocol)."""
from __future__ import annotations

import asyncio
import json
from typing import Any, Dict, List, Optional, Sequence

import aiohttp
import socketio
from yarl import URL

from bot.config import load_settings
from channels.gateway.app import create_app
from channels.web.session_cookie import COOKIE

REPLY_WAIT = 15.0  # seconds a test waits for an answer before failing


async def web_gateway(stub, aiohttp_server, monkeypatch, **env: str):
    """(base URL, settings, app): the gateway on a real port in front of ``stub`` (tests.gateway_helpers.StubRasa),
    its PUBLIC_BASE_URL the address it listens on; ``env`` adds settings."""
    from tests.stack_helpers import free_port

    rasa = await aiohttp_server(stub.app())
    port = free_port()
    for key, value in {"RASA_PORT": str(rasa.port), "ACTION_PORT": str(rasa.port), "RASA_REPLY_TIMEOUT": "5",
                       "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", **env}.items():
        monkeypatch.setenv(key, value)
    cfg = load_settings()
    app = create_app(cfg)
    await aiohttp_server(app, port=port)
    return f"http://127.0.0.1:{port}", cfg, app


async def chat_cookie(base: str) -> str:
    """The ``pb_chat`` cookie value ``GET /chat`` gives a new browser."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        async with http.get(base + "/chat") as resp:
            assert resp.status == 200, resp.status
            return resp.cookies[COOKIE].value


class Browser:
    """One browser tab with the widget: a socket.io client that keeps cookies like a browser
    (its jar sends ``pb_chat`` on every request) and collects what the server emits."""

    def __init__(self, base: str, cookie: Optional[str] = None, origin: Optional[str] = None,
                 keep_cookies: bool = True, transports: Sequence[str] = ("polling",),
                 connector: Optional[aiohttp.BaseConnector] = None) -> None:
        self.base = base
        self.origin = origin
        self.transports = list(transports)
        jar = aiohttp.CookieJar(unsafe=True) if keep_cookies else aiohttp.DummyCookieJar()
        if cookie is not None:
            jar.update_cookies({COOKIE: cookie}, URL(base))
        self.http = aiohttp.ClientSession(cookie_jar=jar, connector=connector)
        self.sio = socketio.AsyncClient(reconnection=False, http_session=self.http)
        self.replies: "asyncio.Queue[Dict[str, Any]]" = asyncio.Queue()
        self.errors: "asyncio.Queue[Dict[str, Any]]" = asyncio.Queue()
        self.confirmed: "asyncio.Queue[Any]" = asyncio.Queue()
        self.sio.on("bot_uttered", self.replies.put)
        self.sio.on("patientbot_error", self.errors.put)
        self.sio.on("session_confirm", self.confirmed.put)

    @property
    def cookie(self) -> Optional[str]:
        morsel = self.http.cookie_jar.filter_cookies(URL(self.base)).get(COOKIE)
        return morsel.value if morsel else None

    async def open(self, kept_label: Optional[str] = None, wait: float = 10) -> str:
        """Connect and ask for the session as the widget does; the label the server confirms."""
        headers = {"Origin": self.origin} if self.origin else {}
        await self.sio.connect(self.base, headers=headers, transports=self.transports, socketio_path="/socket.io/",
                               wait_timeout=wait)
        await self.sio.emit("session_request", {"session_id": kept_label})
        confirmed = await asyncio.wait_for(self.confirmed.get(), REPLY_WAIT)
        return confirmed["session_id"]

    async def say(self, text: str, expect: int = 1) -> List[Dict[str, Any]]:
        """Send ``text`` as the widget does; the next ``expect`` ``bot_uttered`` payloads."""
        await self.sio.emit("user_uttered", {"message": text, "customData": {"language": "en"}, "session_id": "x"})
        return await self.next_replies(expect)

    async def next_replies(self, count: int = 1) -> List[Dict[str, Any]]:
        return [await asyncio.wait_for(self.replies.get(), REPLY_WAIT) for _ in range(count)]

    async def close(self) -> None:
        """Leave as a closed tab does: the server is told (engine.io's close packet) and the open
        long poll is dropped, not waited for (the server would answer it at its next ping)."""
        try:
            if self.sio.eio.state == "connected":
                await self.sio.eio.disconnect(abort=True)
        finally:
            await self.http.close()


def texts(replies: List[Dict[str, Any]]) -> List[str]:
    return [r["text"] for r in replies]


class WebSocketBrowser:
    """A browser on the WebSocket transport, speaking engine.io 4 / socket.io 5 by hand
    (python-engineio's own WebSocket client needs a newer aiohttp than Rasa 3.6 allows)."""

    def __init__(self, base: str, cookie: Optional[str], origin: Optional[str] = None) -> None:
        self.base = base
        self.headers = {"Cookie": f"{COOKIE}={cookie}"} if cookie else {}
        if origin:
            self.headers["Origin"] = origin
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        self.ws: Optional[aiohttp.ClientWebSocketResponse] = None

    async def open(self, eio_sid: Optional[str] = None) -> None:
        """Connect (a new engine.io session, or the upgrade of polling session ``eio_sid``)."""
        url = self.base.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
        self.ws = await self.http.ws_connect(url + (f"&sid={eio_sid}" if eio_sid else ""), headers=self.headers)
        if eio_sid:  # the upgrade handshake of engine.io
            await self.ws.send_str("2probe")
            assert await self._frame() == "3probe"
            await self.ws.send_str("5")
            return
        assert (await self._frame()).startswith("0")
        await self.ws.send_str("40")
        assert (await self._frame()).startswith("40")

    async def _frame(self) -> str:
        assert self.ws is not None
        while True:
            frame = await asyncio.wait_for(self.ws.receive_str(), REPLY_WAIT)
            if frame == "2":  # engine.io ping
                await self.ws.send_str("3")
                continue
            return frame

    async def emit(self, event: str, data: Any) -> None:
        assert self.ws is not None
        await self.ws.send_str("42" + json.dumps([event, data]))

    async def event(self, name: str) -> Any:
        """The data of the next ``name`` event."""
        while True:
            frame = await self._frame()
            if frame.startswith("42"):
                event, *data = json.loads(frame[2:])
                if event == name:
                    return data[0] if data else None

    async def session(self) -> str:
        await self.emit("session_request", {"session_id": None})
        return (await self.event("session_confirm"))["session_id"]

    async def say(self, text: str) -> Dict[str, Any]:
        await self.emit("user_uttered", {"message": text, "customData": {}})
        return await self.event("bot_uttered")

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        await self.http.close()
