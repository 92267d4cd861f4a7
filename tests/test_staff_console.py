"""The staff console in the gateway, in process, with a stand-in Rasa and the SMS provider
stand-in: every route with no session, an agent and an admin; sign-in with password and TOTP
(wrong code, lockout), idle sessions, CSRF, security headers; and the hand-off itself: the bot
silent from escalation on, claim (one owner), reply through the outbound gate (refused after
STOP), internal notes, live events, and resolve handing back to the bot."""
from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
import redis

from bot.storage.audit import AuditLog
from bot.storage.crypto import conversation_id, keyring
from bot.records.handoff import HandoffQueue
from bot.records.staff_accounts import StaffAccounts, current_code
from channels.gateway.app import create_app
from channels.staff.auth import CSP, LOGIN_COOKIE, ROUTES, SESSION_COOKIE
from tests.conftest import TEST_REDIS_URL, redis_dump
from tests.gateway_helpers import SENDER, messages, post, sms
from tests.test_sms_outbound import stack  # noqa: F401 - the gateway + stand-in Rasa + provider stand-in

PASSWORD = "correct horse battery staple"  # synthetic
PATIENT_TEXT = "my knee still hurts after the visit"  # synthetic


@pytest.fixture(autouse=True)
def _plain_http_cookies(monkeypatch):
    """The in-process gateway is plain http: the console's cookies may not be Secure here."""
    monkeypatch.setenv("STAFF_COOKIE_SECURE", "false")


class Console:
    """One signed-in (or not) browser: its own cookie jar and the CSRF token of its session."""

    def __init__(self, aiohttp_client, app, cfg):
        self.aiohttp_client = aiohttp_client
        self.app = app
        self.cfg = cfg
        self.client = None
        self.csrf = ""

    async def open(self, server):
        self.client = await self.aiohttp_client(server)
        return self

    async def login(self, username, secret, password=PASSWORD, code=None, at=None):
        page = await self.client.get("/staff/login")
        token = re.search(r'name="csrf" value="([^"]+)"', await page.text()).group(1)
        code = code if code is not None else current_code(secret, at if at is not None else time.time())
        return await self.client.post("/staff/login", data={"csrf": token, "username": username, "password": password,
                                                            "code": code}, allow_redirects=False)

    async def signed_in(self, username, secret, at=None):
        resp = await self.login(username, secret, at=at)
        assert resp.status == 303 and resp.headers["Location"] == "/staff/queue", await resp.text()
        page = await self.client.get("/staff/queue")
        self.csrf = re.search(r'name="csrf" value="([^"]+)"', await page.text()).group(1)
        return self

    async def post(self, path, data=None, csrf=True):
        data = dict(data or {})
        if csrf:
            data["csrf"] = self.csrf
        return await self.client.post(path, data=data, allow_redirects=False)

    async def page(self, path):
        resp = await self.client.get(path, allow_redirects=False)
        return resp, await resp.text()


@pytest.fixture
async def console(stack, aiohttp_client):
    """(make a browser, staff {name: (enrolment)}, conversation, helpers) on the running gateway."""
    client, stub, provider, cfg, app = stack
    rc = redis.asyncio.Redis.from_url(TEST_REDIS_URL)
    keys = keyring(cfg)
    accounts = StaffAccounts(rc, keys, cfg.redis_prefix)
    staff = {name: await accounts.add(name, role, PASSWORD)
             for name, role in (("alice", "agent"), ("bruno", "agent"), ("ada", "admin"), ("target", "agent"))}
    conv = conversation_id(keys, "sms", SENDER)
    queue = HandoffQueue(rc, keys, cfg.redis_prefix)
    server = client.server

    async def browser():
        return await Console(aiohttp_client, app, cfg).open(server)

    # Codes are single use: each sign-in of the same account uses the next 30-second step.
    steps = {}

    async def sign_in(name):
        steps[name] = steps.get(name, -1) + 1
        return await (await browser()).signed_in(name, staff[name].totp_secret, at=time.time() + 30 * steps[name])

    yield {"browser": browser, "sign_in": sign_in, "staff": staff, "conv": conv, "queue": queue, "rc": rc,
           "keys": keys, "stack": stack, "accounts": accounts}
    await rc.close()


async def _escalate(console, text=PATIENT_TEXT, sid="SM" + "e" * 32):
    """Queue the synthetic patient's conversation as the bot would, then the patient texts again."""
    client, stub, provider, cfg, app = console["stack"]
    await console["queue"].escalate(console["conv"], "sms", "patient_request")
    return messages(await (await post(client, cfg, sms(text, sid))).text())


async def _audit(console):
    cfg = console["stack"][3]
    return await AuditLog(console["rc"], console["keys"], cfg.redis_prefix).events()


# -- every route x {no session, agent, admin} --------------------------------------------------------
def _path(spec, conv, target_id):
    return spec.path.replace("{conversation}", conv).replace("{staff_id}", target_id)


def _form(spec):
    return {"text": "Synthetic reply from the office."} if spec.path.endswith(("/reply", "/note")) else {}


PROTECTED = [r for r in ROUTES if r.role is not None]


def test_every_console_route_declares_a_role_and_the_public_ones_are_sign_in_only():
    assert {(r.method, r.path) for r in ROUTES if r.role is None} == {("GET", "/login"), ("POST", "/login")}
    assert {r.path for r in ROUTES if r.role == "admin"} >= {"/admin/users", "/admin/users/{staff_id}/disable"}
    assert len(PROTECTED) >= 14


@pytest.mark.parametrize("who", ["nobody", "agent", "admin"])
async def test_every_route_with_each_role_and_none(console, who):
    await _escalate(console)
    target_id = console["staff"]["target"].member.id
    browser = await console["browser"]() if who == "nobody" else \
        await console["sign_in"]({"agent": "alice", "admin": "ada"}[who])
    # Sign-out last: it ends the session the other requests use.
    ordered = sorted(PROTECTED, key=lambda r: (r.path == "/logout", r.path.endswith("/resolve")))
    outcomes = {}
    for spec in ordered:
        path = "/staff" + _path(spec, console["conv"], target_id)
        if spec.kind == "stream":
            resp = await browser.client.get(path, allow_redirects=False)
            if resp.status == 200:
                assert resp.headers["Content-Type"].startswith("text/event-stream")
                assert (await resp.content.readline()).startswith(b"event: ready")
            resp.close()
        elif spec.method == "GET":
            resp, body = await browser.page(path)
            if who == "nobody":
                assert console["conv"] not in body and "Synthetic" not in body  # nothing leaks to the unauthenticated
        else:
            resp = await browser.post(path, _form(spec), csrf=who != "nobody")
        outcomes[(spec.method, spec.path)] = resp.status
        if who == "nobody":
            expected = 303 if (spec.kind == "page" and spec.method == "GET") else 401
            if expected == 303:
                assert resp.headers["Location"].startswith("/staff/login"), spec
        elif who == "agent" and spec.role == "admin":
            expected = 403
        elif spec.method == "POST" or spec.path == "/":
            expected = 303
        else:
            expected = 200
        assert resp.status == expected, (who, spec.method, spec.path, resp.status)
    assert len(outcomes) == len(PROTECTED)
    if who == "agent":
        forbidden = [e for e in await _audit(console) if e.action == "staff_forbidden"]
        assert forbidden and all(e.actor == f"staff:{console['staff']['alice'].member.id}" for e in forbidden)


# -- signing in ---------------------------------------------------------------------------------------
async def test_wrong_totp_code_is_refused_and_audited(console):
    browser = await console["browser"]()
    alice = console["staff"]["alice"]
    now = time.time()
    right = current_code(alice.totp_secret, now)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    resp = await browser.login("alice", alice.totp_secret, code=wrong)
    assert resp.status == 401 and "Sign-in failed" in await resp.text()
    assert SESSION_COOKIE not in {c.key for c in browser.client.session.cookie_jar}
    assert (await browser.page("/staff/queue"))[0].status == 303
    resp = await browser.login("alice", alice.totp_secret, password="not the password!", code=right)
    assert resp.status == 401
    failures = [(e.actor, e.outcome, e.details["reason"]) for e in await _audit(console) if e.action == "staff_login"]
    actor = f"staff:{alice.member.id}"
    assert failures == [(actor, "failed", "bad_code"), (actor, "failed", "bad_password")]


async def test_repeated_failures_lock_the_account_until_an_admin_unlocks_it(console):
    alice = console["staff"]["alice"]
    browser = await console["browser"]()
    for _ in range(5):
        assert (await browser.login("alice", alice.totp_secret, password="not the password!")).status == 401
    resp = await browser.login("alice", alice.totp_secret)  # right password and code, but locked
    assert resp.status == 401 and "Sign-in failed" in await resp.text()  # same answer: nothing learned
    admin = await console["sign_in"]("ada")
    resp, body = await admin.page("/staff/admin/users")
    assert re.search(r'data-username="alice">\s*<td>alice</td>\s*<td>agent</td>\s*<td>locked</td>', body)
    assert (await admin.post(f"/staff/admin/users/{alice.member.id}/unlock")).status == 303
    assert (await browser.login("alice", alice.totp_secret, at=time.time() + 30)).status == 303


async def test_sign_in_form_without_its_csrf_token_is_refused(console):
    browser = await console["browser"]()
    alice = console["staff"]["alice"]
    resp = await browser.client.post("/staff/login", data={"username": "alice", "password": PASSWORD,
                                                           "code": current_code(alice.totp_secret)},
                                     allow_redirects=False)
    assert resp.status == 403
    assert [e.outcome for e in await _audit(console) if e.action == "staff_login"] == ["csrf_refused"]


async def test_expired_session_is_signed_out_and_audited(console):
    browser = await console["sign_in"]("alice")
    cfg = console["stack"][3]
    raw = redis.Redis.from_url(TEST_REDIS_URL)
    [key] = [k for k in raw.scan_iter(match=f"{cfg.redis_prefix}staff:session:*") if not k.endswith(b":flash")]
    raw.hset(key, "last_seen", (datetime.now(timezone.utc) - timedelta(minutes=16)).isoformat())
    resp, _ = await browser.page("/staff/queue")
    assert resp.status == 303 and resp.headers["Location"] == "/staff/login?reason=idle"
    assert not raw.exists(key)
    assert (await browser.client.get("/staff/api/queue")).status == 401
    ended = [e for e in await _audit(console) if e.action == "staff_signed_out"]
    assert [(e.actor, e.outcome) for e in ended] == [(f"staff:{console['staff']['alice'].member.id}", "idle")]
    resp, body = await browser.page("/staff/login?reason=idle")
    assert "signed out after a period without activity" in body


async def test_disabled_staff_member_is_signed_out_at_once(console):
    agent = await console["sign_in"]("bruno")
    admin = await console["sign_in"]("ada")
    assert (await admin.post(f"/staff/admin/users/{console['staff']['bruno'].member.id}/disable")).status == 303
    assert (await agent.page("/staff/queue"))[0].status == 303
    assert (await agent.login("bruno", console["staff"]["bruno"].totp_secret, at=time.time() + 30)).status == 401
    resp, body = await admin.page("/staff/admin/users")
    assert "bruno is disabled and signed out (1 session(s) ended)" in body


async def test_post_without_csrf_token_is_refused_and_does_nothing(console):
    client, stub, provider, cfg, app = console["stack"]
    await _escalate(console)
    agent = await console["sign_in"]("alice")
    conv = console["conv"]
    assert (await agent.post(f"/staff/conversations/{conv}/claim", csrf=False)).status == 403
    assert (await console["queue"].entry(conv))["status"] == "waiting"
    assert (await agent.post(f"/staff/conversations/{conv}/claim", {"csrf": "forged"}, csrf=False)).status == 403
    assert (await agent.post(f"/staff/conversations/{conv}/claim")).status == 303
    resp = await agent.post(f"/staff/conversations/{conv}/reply", {"text": "Synthetic reply."}, csrf=False)
    assert resp.status == 403 and provider.sent == []
    refusals = [e for e in await _audit(console) if e.action == "staff_csrf_refused"]
    assert len(refusals) == 3 and {e.actor for e in refusals} == {f"staff:{console['staff']['alice'].member.id}"}


async def test_security_headers_and_cookie_flags(console, aiohttp_client):
    await _escalate(console)
    agent = await console["sign_in"]("alice")
    resp, body = await agent.page(f"/staff/conversations/{console['conv']}")
    assert resp.status == 200 and PATIENT_TEXT in body
    assert resp.headers["Content-Security-Policy"] == CSP and "frame-ancestors 'none'" in CSP
    assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP
    assert resp.headers["X-Frame-Options"] == "DENY" and resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["Referrer-Policy"] == "no-referrer" and "<script>" not in body.replace("<script src", "")
    # With the default settings (https deployment) every console cookie is Secure.
    cfg = replace(console["stack"][3], staff_cookie_secure=True)
    secure = await aiohttp_client(create_app(cfg))
    page = await secure.get("/staff/login")
    cookie = page.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" in cookie and "Path=/staff/" in cookie
    alice = console["staff"]["alice"]
    token = re.search(r'name="csrf" value="([^"]+)"', await page.text()).group(1)
    # (The client rightly keeps a Secure cookie off plain http, so it is sent by hand here.)
    resp = await secure.post("/staff/login", data={"csrf": token, "username": "alice", "password": PASSWORD,
                                                   "code": current_code(alice.totp_secret, time.time() + 30)},
                             headers={"Cookie": f"{LOGIN_COOKIE}={token}"}, allow_redirects=False)
    assert resp.status == 303
    session_cookie = [c for c in resp.headers.getall("Set-Cookie") if c.startswith(SESSION_COOKIE + "=")][0]
    assert "HttpOnly" in session_cookie and "SameSite=Strict" in session_cookie and "Secure" in session_cookie


# -- the hand-off -------------------------------------------------------------------------------------
async def test_waiting_conversation_is_silent_and_goes_to_the_inbox_but_emergencies_still_redirect(console):
    client, stub, provider, cfg, app = console["stack"]
    assert await _escalate(console) == []
    assert stub.calls == []
    [redirect] = messages(await (await post(client, cfg, sms("i want to end my life", "SM" + "f" * 32))).text())
    assert "988" in redirect and stub.calls == []
    log = await console["queue"].log(console["conv"])
    assert [(e["kind"], e["text"]) for e in log] == [("patient", PATIENT_TEXT), ("patient", "i want to end my life"),
                                                     ("bot", redirect)]
    assert (await console["queue"].entry(console["conv"]))["priority"] == "emergency"  # raised by the emergency


async def test_claim_reply_note_and_resolve(console):
    client, stub, provider, cfg, app = console["stack"]
    conv = console["conv"]
    stub.transcript = [{"kind": "patient", "text": "can I talk to someone", "timestamp": time.time() - 60},
                       {"kind": "bot", "text": "I've passed your message to our staff.", "timestamp": time.time() - 59}]
    await _escalate(console)
    alice, bruno = await console["sign_in"]("alice"), await console["sign_in"]("bruno")

    resp, body = await alice.page("/staff/queue")
    assert conv[:16] in body and "Asked for a person" in body and "waiting" in body
    resp, body = await alice.page(f"/staff/conversations/{conv}")
    assert PATIENT_TEXT in body and "can I talk to someone" in body and 'id="claim"' in body

    assert (await alice.post(f"/staff/conversations/{conv}/claim")).status == 303
    assert (await bruno.post(f"/staff/conversations/{conv}/claim")).status == 303
    resp, body = await bruno.page(f"/staff/conversations/{conv}")
    assert "Not claimed: alice holds this conversation." in body and "held by alice" in body
    assert (await bruno.post(f"/staff/conversations/{conv}/reply", {"text": "Not mine to send."})).status == 303
    assert provider.sent == []  # only the owner replies
    rows = (await (await bruno.client.get("/staff/api/queue")).json())["rows"]
    assert [(r["conversation"], r["status"], r["owner"], r["mine"]) for r in rows] == [(conv, "held", "alice", False)]

    reply = "Hi, this is Maple Street Family Medicine. A nurse will call you today."  # synthetic
    assert (await alice.post(f"/staff/conversations/{conv}/reply", {"text": reply})).status == 303
    [sent] = provider.sent
    assert sent["To"] == SENDER and sent["Body"] == reply
    resp, body = await alice.page(f"/staff/conversations/{conv}")
    assert "Reply sent." in body and reply in body
    note = "Synthetic note: patient prefers a morning call."
    assert (await alice.post(f"/staff/conversations/{conv}/note", {"text": note})).status == 303

    # The patient answers: silent bot, message in the log, visible to the live view.
    assert messages(await (await post(client, cfg, sms("ok thanks, mornings are best", "SM" + "a" * 32))).text()) == []
    items = (await (await alice.client.get(f"/staff/api/conversations/{conv}/log")).json())["items"]
    assert [(i["kind"], i["who"], i["text"]) for i in items] == [
        ("patient", "Patient", PATIENT_TEXT), ("staff", "alice", reply), ("note", "alice", note),
        ("patient", "Patient", "ok thanks, mornings are best")]
    newer = (await (await alice.client.get(f"/staff/api/conversations/{conv}/log?after={items[2]['id']}")).json())
    assert [i["text"] for i in newer["items"]] == ["ok thanks, mornings are best"]

    # Nothing readable in Redis: not the reply, the note, the patient's words or the number.
    blob = redis_dump(cfg.redis_prefix)
    for needle in (reply, note, PATIENT_TEXT, "mornings", SENDER, SENDER[2:]):
        assert needle.encode() not in blob, needle

    assert (await bruno.post(f"/staff/conversations/{conv}/resolve")).status == 303  # not the owner: refused
    assert await console["queue"].is_active(conv)
    assert (await alice.post(f"/staff/conversations/{conv}/resolve")).status == 303
    assert not await console["queue"].is_active(conv)
    [recorded] = stub.staff_messages
    assert recorded["sender"] == conv
    assert [(m["author"], m["text"]) for m in recorded["messages"]][0] == ("staff", reply)
    assert recorded["messages"][-1]["author"] == "bot" and "automated assistant" in recorded["messages"][-1]["text"]
    assert [m["Body"] for m in provider.sent][-1] == recorded["messages"][-1]["text"]  # the patient is told

    # The bot answers again.
    [answer] = messages(await (await post(client, cfg, sms("what are your hours", "SM" + "b" * 32))).text())
    assert answer == "hello from the bot" and [c["text"] for c in stub.calls] == ["what are your hours"]

    actor = f"staff:{console['staff']['alice'].member.id}"
    done = [(e.action, e.outcome) for e in await _audit(console) if e.actor == actor and e.subject == conv]
    for expected in [("phi_viewed", "ok"), ("handoff_claimed", "ok"), ("sms_sent", "queued"), ("staff_reply", "sent"),
                     ("staff_note", "ok"), ("handoff_resolved", "ok")]:
        assert expected in done, expected
    bruno_actor = f"staff:{console['staff']['bruno'].member.id}"
    refused = [(e.action, e.outcome) for e in await _audit(console) if e.actor == bruno_actor]
    assert ("handoff_claimed", "held_by_other") in refused and ("staff_reply", "not_owner") in refused
    assert ("handoff_resolved", "not_owner") in refused


async def test_reply_to_an_opted_out_number_is_refused_with_a_clear_message(console):
    client, stub, provider, cfg, app = console["stack"]
    conv = console["conv"]
    await _escalate(console)
    [stopped] = messages(await (await post(client, cfg, sms("STOP", "SM" + "c" * 32))).text())
    assert "unsubscribed" in stopped
    agent = await console["sign_in"]("alice")
    await agent.post(f"/staff/conversations/{conv}/claim")
    resp, body = await agent.page(f"/staff/conversations/{conv}")
    assert "This number has opted out of texts (STOP)" in body
    assert (await agent.post(f"/staff/conversations/{conv}/reply", {"text": "Synthetic follow-up."})).status == 303
    resp, body = await agent.page(f"/staff/conversations/{conv}")
    assert "Not sent: this number has opted out of texts" in body and "call the patient instead" in body
    assert provider.sent == []
    actor = f"staff:{console['staff']['alice'].member.id}"
    events = [(e.actor, e.action, e.outcome) for e in await _audit(console)]
    assert (actor, "outbound_refused", "opted_out") in events and (actor, "staff_reply", "opted_out") in events
    # Resolving still hands back, and texts nothing to the opted-out number.
    assert (await agent.post(f"/staff/conversations/{conv}/resolve")).status == 303
    assert provider.sent == [] and not await console["queue"].is_active(conv)


async def test_resolve_refuses_when_the_bot_cannot_record_it(console):
    client, stub, provider, cfg, app = console["stack"]
    conv = console["conv"]
    await _escalate(console)
    agent = await console["sign_in"]("alice")
    await agent.post(f"/staff/conversations/{conv}/claim")
    stub.status = 503
    assert (await agent.post(f"/staff/conversations/{conv}/resolve")).status == 303
    resp, body = await agent.page(f"/staff/conversations/{conv}")
    assert "Not handed back" in body and "unavailable right now" in body
    assert await console["queue"].is_held(conv) and provider.sent == []


async def test_live_events_carry_pseudonyms_only(console):
    client, stub, provider, cfg, app = console["stack"]
    agent = await console["sign_in"]("alice")
    stream = await agent.client.get("/staff/events")
    assert (await stream.content.readline()).startswith(b"event: ready")
    await stream.content.readline()
    await _escalate(console)
    seen = []
    while len(seen) < 2:
        line = (await asyncio.wait_for(stream.content.readline(), 10)).decode()
        if line.startswith("data: "):
            seen.append(json.loads(line[6:]))
    stream.close()
    assert seen == [{"type": "queue", "conversation": console["conv"]},
                    {"type": "message", "conversation": console["conv"]}]


async def test_unclaimed_conversations_past_the_sla_are_highlighted(console):
    queue = console["queue"]
    now = datetime.now(timezone.utc)
    await queue.escalate("sms-" + "1" * 40, "sms", "reschedule", at=now - timedelta(minutes=11))
    await queue.escalate("sms-" + "2" * 40, "sms", "patient_request", at=now - timedelta(minutes=3))
    await queue.escalate("sms-" + "3" * 40, "sms", "emergency_follow_up", "emergency", at=now - timedelta(minutes=30))
    await queue.claim("sms-" + "3" * 40, f"staff:{console['staff']['bruno'].member.id}")
    agent = await console["sign_in"]("alice")
    rows = (await (await agent.client.get("/staff/api/queue")).json())["rows"]
    assert [(r["conversation"][4:6], r["priority"], r["over_sla"], r["owner"]) for r in rows] == [
        ("33", "emergency", False, "bruno"),  # emergencies first; claimed, so not over the SLA
        ("11", "normal", True, ""), ("22", "normal", False, "")]
    assert rows[1]["waiting_seconds"] >= 660
    resp, body = await agent.page("/staff/queue")
    over = re.findall(r'<tr class="prio-(\w+)( over-sla)?" data-conversation="sms-(\d)', body)
    assert over == [("emergency", "", "3"), ("normal", " over-sla", "1"), ("normal", "", "2")]
    assert body.count('<span class="badge over">over SLA</span>') == 2  # the legend and the one late row
