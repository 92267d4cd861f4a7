"""The chat page and what it serves: the pinned widget (fetched and verified by the setup,
refused by the gateway when its hash differs), the page's strict CSP and framing rules, the
session cookie's attributes, and signing out."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import re
import tarfile
from pathlib import Path

import aiohttp
import pytest

from bot.storage.crypto import conversation_id, keyring
from channels.web import widget_bundle
from channels.web.session_cookie import COOKIE, session_of
from channels.web.widget_bundle import WidgetError, WidgetPin, fetch, read_pin, sri, verified_bundle
from tests.gateway_helpers import StubRasa
from tests.web_chat_helpers import Browser, chat_cookie, web_gateway

PIN = read_pin()


async def _gateway(settings_env, aiohttp_server, monkeypatch, **env):
    stub = StubRasa(settings_env["RASA_GATEWAY_SECRET"])
    return await web_gateway(stub, aiohttp_server, monkeypatch, **env)


async def _get(url, **headers):
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        async with http.get(url, headers=headers, allow_redirects=False) as resp:
            return resp, await resp.read()


# -- the page -------------------------------------------------------------------------------------
async def test_the_page_loads_only_the_gateways_scripts_under_a_strict_policy(settings_env, aiohttp_server, monkeypatch):
    base, cfg, app = await _gateway(settings_env, aiohttp_server, monkeypatch)
    resp, body = await _get(base + "/chat")
    html = body.decode()
    csp = dict(part.strip().split(" ", 1) for part in resp.headers["Content-Security-Policy"].split(";"))
    assert csp["script-src"] == "'self'" and csp["default-src"] == "'none'"
    assert csp["connect-src"].split() == ["'self'", base.replace("http://", "ws://")]
    assert csp["frame-ancestors"] == "'none'" and resp.headers["X-Frame-Options"] == "DENY"
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert scripts and all(inline.strip() == "" and 'src="/chat/static/' in attrs for attrs, inline in scripts)
    assert f'integrity="{PIN.file_sha384}"' in html  # the browser checks the bundle too
    assert "on" + "click" not in html.lower() and 'style="' not in html  # no inline handlers or styles
    widget, data = await _get(base + f"/chat/static/{PIN.served_name}")
    assert widget.status == 200 and sri(data, "sha384") == PIN.file_sha384
    assert widget.headers["Content-Type"].startswith("application/javascript")
    for name in ("chat.js", "chat.css"):
        static, _ = await _get(base + "/chat/static/" + name)
        assert static.status == 200


async def test_allowed_sites_may_frame_the_page_and_no_other(settings_env, aiohttp_server, monkeypatch):
    base, cfg, app = await _gateway(settings_env, aiohttp_server, monkeypatch,
                                    WEBCHAT_ALLOWED_ORIGINS="https://www.office.example, https://clinic.example:8443/")
    resp, _ = await _get(base + "/chat")
    csp = resp.headers["Content-Security-Policy"]
    assert "frame-ancestors https://www.office.example https://clinic.example:8443" in csp
    assert "X-Frame-Options" not in resp.headers
    other, _ = await _get(base + "/healthz")  # every other response still may not be framed
    assert other.headers["X-Frame-Options"] == "DENY"


async def test_the_cookie_is_http_only_same_site_and_secure_on_https(settings_env, aiohttp_server, monkeypatch):
    base, cfg, app = await _gateway(settings_env, aiohttp_server, monkeypatch)
    resp, _ = await _get(base + "/chat")
    cookie = resp.cookies[COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and not cookie["secure"] and cookie["path"] == "/"
    assert not cookie["max-age"] and not cookie["expires"]  # ends with the browser
    sid, _, signature = cookie.value.partition(".")
    assert len(sid) == 32 and session_of(keyring(cfg), cookie.value) == ("valid", sid)
    again, _ = await _get(base + "/chat", Cookie=f"{COOKIE}={cookie.value}")
    assert COOKIE not in again.cookies  # a valid session is kept
    forged, _ = await _get(base + "/chat", Cookie=f"{COOKIE}={sid}.{'0' * 64}")
    assert forged.cookies[COOKIE].value.split(".")[0] != sid  # a forged one is replaced


async def test_on_https_the_cookie_is_secure(settings_env, aiohttp_server, monkeypatch):
    from channels.web.session_cookie import set_cookie
    from aiohttp import web
    from bot.config import load_settings

    monkeypatch.setenv("PUBLIC_BASE_URL", "https://chat.office.example")
    response = web.Response()
    set_cookie(response, "a" * 32, load_settings())
    assert response.cookies[COOKIE]["secure"] and response.cookies[COOKIE]["httponly"]


async def test_signing_out_ends_the_identity_session_the_connections_and_the_cookie(
        settings_env, aiohttp_server, monkeypatch, redis_sync, prefix):
    base, cfg, app = await _gateway(settings_env, aiohttp_server, monkeypatch)
    from channels.gateway.app_keys import SERVICES

    services = app[SERVICES]
    cookie = await chat_cookie(base)
    conversation = conversation_id(keyring(cfg), "web", session_of(keyring(cfg), cookie)[1])
    await services.identity._store_session(conversation, _session())
    browser = Browser(base, cookie)
    try:
        await browser.open()
        ended = asyncio.Event()
        browser.sio.on("disconnect", lambda *a: ended.set())
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
            async with http.post(base + "/chat/sign-out", allow_redirects=False,
                                 headers={"Cookie": f"{COOKIE}={cookie}", "Origin": "https://attacker.example"}) as resp:
                assert resp.status == 403
            assert await services.identity.session(conversation, "web") is not None
            async with http.post(base + "/chat/sign-out", allow_redirects=False,
                                 headers={"Cookie": f"{COOKIE}={cookie}", "Origin": base}) as resp:
                assert resp.status == 303 and resp.headers["Location"] == "/chat"
                assert resp.cookies[COOKIE].value == "" and resp.cookies[COOKIE]["httponly"]
        assert await services.identity.session(conversation, "web") is None
        await asyncio.wait_for(ended.wait(), 10)  # the open chat is closed too
    finally:
        await browser.close()
    outcomes = [f[b"action"] for _, f in redis_sync.xrange(f"{prefix}audit")]
    assert b"web_signed_out" in outcomes


def _session():
    from datetime import datetime, timezone

    from bot.records.identity import Session

    now = datetime.now(timezone.utc)
    return Session("patient-ref-synthetic", "web", now, now)


# -- the widget's pin -----------------------------------------------------------------------------
def _tarball(member: bytes, name: str = "package/lib/index.js") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo(name)
        info.size = len(member)
        archive.addfile(info, io.BytesIO(member))
        readme = tarfile.TarInfo("package/README.md")
        readme.size = 2
        archive.addfile(readme, io.BytesIO(b"hi"))
    return buffer.getvalue()


def _fake_npm(tmp_path: Path, tarball: bytes) -> str:
    """An ``npm`` that, like ``npm pack``, writes the tarball into --pack-destination."""
    (tmp_path / "pack.tgz.src").write_bytes(tarball)
    script = tmp_path / "npm"
    script.write_text(f"#!/bin/sh\n[ \"$1\" = pack ] || exit 2\nwhile [ \"$1\" != --pack-destination ]; do shift; done\n"
                      f"cp {tmp_path / 'pack.tgz.src'} \"$2/rasa-webchat-1.0.1.tgz\"\n")
    script.chmod(0o755)
    (tmp_path / "calls").write_text("")
    return str(script)


def _pin_for(tarball: bytes, member: bytes) -> WidgetPin:
    return WidgetPin("rasa-webchat", "1.0.1", sri(tarball, "sha512"), "package/lib/index.js", sri(member, "sha384"))


def test_the_pin_is_the_one_the_issue_fixed():
    assert PIN.spec == "rasa-webchat@1.0.1"
    assert PIN.integrity == ("sha512-Ld1zVJvTAaTrs6A5p8t70agNNrKYRyXlvqXZRgBoDvKKUXbA0jhJKECi5bdPGlaR6jsmqWtVylHS+"
                             "YqIqo0x8w==")


def test_fetch_installs_only_the_pinned_file_from_a_verified_tarball(tmp_path):
    member = b"window.WebChat = {};"
    tarball = _tarball(member)
    dest = tmp_path / "out" / "widget.js"
    assert fetch(_pin_for(tarball, member), dest, npm=_fake_npm(tmp_path, tarball)) == dest
    assert dest.read_bytes() == member and sorted(p.name for p in dest.parent.iterdir()) == ["widget.js"]
    assert fetch(_pin_for(tarball, member), dest, npm="/nonexistent/npm") == dest  # verified: npm not run again


def test_fetch_refuses_a_tarball_whose_hash_differs_and_leaves_nothing(tmp_path):
    member = b"window.WebChat = {};"
    pinned = _pin_for(_tarball(member), member)
    tampered = _tarball(member + b" /* and more */")
    dest = tmp_path / "out" / "widget.js"
    with pytest.raises(WidgetError, match="sha512"):
        fetch(pinned, dest, npm=_fake_npm(tmp_path, tampered))
    assert not dest.exists() and not dest.parent.exists()


def test_fetch_refuses_a_member_whose_hash_differs(tmp_path):
    member = b"window.WebChat = {};"
    tarball = _tarball(member)
    pin = WidgetPin("rasa-webchat", "1.0.1", sri(tarball, "sha512"), "package/lib/index.js",
                    sri(b"something else", "sha384"))
    with pytest.raises(WidgetError, match="sha384"):
        fetch(pin, tmp_path / "widget.js", npm=_fake_npm(tmp_path, tarball))
    assert not (tmp_path / "widget.js").exists()


def test_the_gateway_refuses_a_bundle_whose_hash_differs(tmp_path):
    (tmp_path / PIN.served_name).write_bytes(b"alert('not the widget')")
    with pytest.raises(WidgetError, match="hash differs"):
        verified_bundle(PIN, tmp_path / PIN.served_name)
    with pytest.raises(WidgetError, match="not installed"):
        verified_bundle(PIN, tmp_path / "missing.js")


async def test_a_gateway_with_a_tampered_bundle_serves_none(settings_env, aiohttp_server, monkeypatch, tmp_path):
    (tmp_path / PIN.served_name).write_bytes(b"alert('not the widget')")
    monkeypatch.setattr(widget_bundle, "BUNDLE_DIR", tmp_path)
    base, cfg, app = await _gateway(settings_env, aiohttp_server, monkeypatch)
    resp, body = await _get(base + f"/chat/static/{PIN.served_name}")
    assert resp.status == 503 and b"alert" not in body
    (tmp_path / PIN.served_name).write_bytes(b"changed later")  # served from memory: never read again
    resp, _ = await _get(base + "/healthz")
    assert resp.status in (200, 503)  # the rest of the gateway runs on


def test_the_installed_bundle_is_the_pinned_one():
    """The setup's fetch left the pinned widget where the gateway serves it from."""
    data = verified_bundle(PIN)  # WidgetError "not installed": run scripts/setup.sh
    assert base64.b64encode(hashlib.sha384(data).digest()).decode() == PIN.file_sha384.split("-", 1)[1]


async def test_the_page_names_its_session_so_a_conversation_kept_for_another_is_dropped(
        settings_env, aiohttp_server, monkeypatch):
    """chat.js compares this label with the one the widget kept (static/chat.js)."""
    from channels.web.session_cookie import public_label

    base, cfg, app = await _gateway(settings_env, aiohttp_server, monkeypatch)
    cookie = await chat_cookie(base)
    resp, body = await _get(base + "/chat", Cookie=f"{COOKIE}={cookie}")
    label = public_label(keyring(cfg), session_of(keyring(cfg), cookie)[1])
    assert f'data-session="{label}"' in body.decode()
    fresh, body = await _get(base + "/chat")
    new_label = public_label(keyring(cfg), session_of(keyring(cfg), fresh.cookies[COOKIE].value)[1])
    assert f'data-session="{new_label}"' in body.decode() and new_label != label
