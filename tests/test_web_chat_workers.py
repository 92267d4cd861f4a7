"""The web chat with ``GATEWAY_WORKERS=2``, the gateway run as it is deployed
(``python -m channels.gateway.app``) in front of a stand-in Rasa: the widget's socket.io client
starts with long polling, each request may reach either worker, and every one must reach the
worker that holds its engine.io session (channels/web/worker_routing.py)."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import aiohttp
import pytest
import redis.asyncio as aioredis

from bot.config import ROOT, load_settings
from bot.conversation.web_outbox import WebMessage, WebOutbox
from bot.storage.crypto import conversation_id, keyring
from channels.web.session_cookie import session_of
from tests.conftest import TEST_REDIS_URL, make_test_env
from tests.gateway_helpers import StubRasa
from tests.stack_helpers import free_port
from tests.web_chat_helpers import Browser, WebSocketBrowser, chat_cookie, texts

SESSIONS = 40


def echo(call):
    return [{"text": f"echo {call['text']} for {call['sender']}", "phi_class": "public"}]


@pytest.fixture
async def two_workers(prefix, aiohttp_server):
    """(base URL, settings, stand-in Rasa): a gateway of two workers on one port."""
    env = make_test_env(prefix, GATEWAY_WORKERS="2", LOG_LEVEL="WARNING", WEBCHAT_RATE_LIMIT_PER_MINUTE="1000")
    stub = StubRasa(env["RASA_GATEWAY_SECRET"])
    stub.answer = echo
    rasa = await aiohttp_server(stub.app())
    port = free_port()
    env.update(GATEWAY_PORT=str(port), PUBLIC_BASE_URL=f"http://127.0.0.1:{port}", RASA_PORT=str(rasa.port),
               ACTION_PORT=str(rasa.port))
    proc = subprocess.Popen([sys.executable, "-m", "channels.gateway.app"], cwd=ROOT, env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        await _both_workers_up(base)
        yield base, load_settings(env), stub
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


async def _both_workers_up(base: str) -> None:
    """Until handshakes on fresh connections have come from both workers (the sid names its worker)."""
    seen = set()
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        while seen != {"w00", "w01"}:
            assert time.monotonic() < deadline, f"workers answering: {seen}"
            try:
                async with http.get(base + "/chat") as page:
                    cookie = page.cookies["pb_chat"].value
                async with http.get(base + "/socket.io/?EIO=4&transport=polling",
                                    headers={"Cookie": f"pb_chat={cookie}"}) as resp:
                    seen.add((await resp.text())[1:].split('"sid":"')[1][:3])
            except (aiohttp.ClientError, OSError, IndexError, KeyError):
                await asyncio.sleep(0.2)


def _fresh_connections() -> aiohttp.TCPConnector:
    # One TCP connection per request: the kernel chooses a worker for each, as for a browser
    # whose requests arrive on new connections.
    return aiohttp.TCPConnector(force_close=True)


async def test_many_polling_sessions_each_served_by_its_worker(two_workers):
    base, cfg, stub = two_workers
    browsers = [Browser(base, await chat_cookie(base), connector=_fresh_connections()) for _ in range(SESSIONS)]
    try:
        await asyncio.gather(*(b.open() for b in browsers))
        owners = {b.sio.eio.sid[:3] for b in browsers}
        assert owners == {"w00", "w01"}, owners

        async def talk(n, browser):
            return [texts(await browser.say(f"message {n}.{k}"))[0] for k in range(3)]

        answers = await asyncio.gather(*(talk(n, b) for n, b in enumerate(browsers)))
        keys = keyring(cfg)
        for n, (browser, got) in enumerate(zip(browsers, answers)):
            conversation = conversation_id(keys, "web", session_of(keys, browser.cookie)[1])
            assert got == [f"echo message {n}.{k} for {conversation}" for k in range(3)]
        assert len(stub.calls) == 3 * SESSIONS
    finally:
        await asyncio.gather(*(b.close() for b in browsers))


async def test_a_websocket_upgrade_reaches_the_worker_that_holds_the_session(two_workers):
    base, cfg, stub = two_workers
    for n in range(8):  # each upgrade is a new connection: about half land on the other worker
        cookie = await chat_cookie(base)
        async with aiohttp.ClientSession(connector=_fresh_connections()) as http:
            async with http.get(base + "/socket.io/?EIO=4&transport=polling",
                                headers={"Cookie": f"pb_chat={cookie}"}) as resp:
                eio_sid = (await resp.text()).split('"sid":"')[1].split('"')[0]
            async with http.post(f"{base}/socket.io/?EIO=4&transport=polling&sid={eio_sid}", data="40",
                                 headers={"Cookie": f"pb_chat={cookie}"}) as resp:
                assert resp.status == 200
        upgraded = WebSocketBrowser(base, cookie)
        try:
            await upgraded.open(eio_sid)
            assert (await upgraded.session())
            reply = await upgraded.say(f"over the websocket {n}")
            assert reply["text"].startswith(f"echo over the websocket {n} for web-")
        finally:
            await upgraded.close()


async def test_an_office_message_reaches_a_browser_on_either_worker(two_workers):
    base, cfg, stub = two_workers
    browsers = [Browser(base, await chat_cookie(base), connector=_fresh_connections()) for _ in range(6)]
    client = aioredis.Redis.from_url(TEST_REDIS_URL)
    outbox = WebOutbox(client, keyring(cfg), cfg.redis_prefix)
    try:
        await asyncio.gather(*(b.open() for b in browsers))
        assert {b.sio.eio.sid[:3] for b in browsers} == {"w00", "w01"}
        keys = keyring(cfg)
        for n, browser in enumerate(browsers):
            conversation = conversation_id(keys, "web", session_of(keys, browser.cookie)[1])
            await outbox.send(conversation, [WebMessage(f"from the office to {n}")])
        for n, browser in enumerate(browsers):
            assert texts(await browser.next_replies()) == [f"from the office to {n}"]
    finally:
        await asyncio.gather(*(b.close() for b in browsers))
        await client.close()


def test_private_listeners_are_bound_before_the_fork_one_kept_by_each_worker():
    from channels.gateway.workers import keep_own_listener, private_listeners

    listeners = private_listeners(2)
    try:
        assert all(s.getsockname()[0] == "127.0.0.1" for s in listeners)
        assert len({s.getsockname()[1] for s in listeners}) == 2
        own = keep_own_listener(listeners)  # this process is worker 0
        assert own is listeners[0] and listeners[1].fileno() == -1
    finally:
        for sock in listeners:
            sock.close()


async def test_a_private_port_serves_only_the_web_chat_and_never_passes_a_request_on(
        settings_env, aiohttp_server, monkeypatch):
    """Worker 0 whose private port is the one the test reaches: the console and the page are not
    there, and a request naming worker 1 is answered here (engine.io: unknown session), not
    passed on again (which could loop between workers)."""
    from channels.gateway.app import create_app
    from channels.web import route_between_workers

    stub = StubRasa(settings_env["RASA_GATEWAY_SECRET"])
    rasa = await aiohttp_server(stub.app())
    port = free_port()
    for key, value in {"RASA_PORT": str(rasa.port), "ACTION_PORT": str(rasa.port),
                       "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}.items():
        monkeypatch.setenv(key, value)
    app = create_app(load_settings())
    route_between_workers(app, 0, [port, free_port()])  # worker 1's port: nothing listens there
    await aiohttp_server(app, port=port)
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        for path in ("/chat", "/staff/login", "/healthz", "/sms/inbound"):
            async with http.get(base + path) as resp:
                assert resp.status == 404, path
        async with http.get(base + "/socket.io/?EIO=4&transport=polling&sid=w01AAAAAAAAAAAAAAAAAAAA") as resp:
            assert resp.status == 400  # answered here: no such session
        async with http.get(base + "/socket.io/?EIO=4&transport=polling") as resp:
            assert resp.status == 200 and '"sid":"w00' in await resp.text()  # its sessions name it
