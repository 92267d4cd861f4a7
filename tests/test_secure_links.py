"""One-time links to the secure web chat, against the real Redis: unguessable, stored only as a
keyed hash, spent once even by two racing opens, expired after 15 minutes, told apart when
used, expired or unknown, and audited (issue, open, refusal, expiry) without the token."""
from __future__ import annotations

import asyncio
import base64
import re
from datetime import datetime, timedelta, timezone

import pytest

from bot.records.secure_links import (LINK_PATH, LinkGrant, SecureLinks, carries_link, link_url, new_token,
                                      redact)
from bot.services import build_services
from tests.conftest import redis_dump

T0 = datetime(2030, 1, 14, 15, 0, tzinfo=timezone.utc)
CONV = "sms-" + "a1" * 20  # a synthetic conversation pseudonym
PHONE_IDX = "a1" * 20


@pytest.fixture
async def svc(settings_env):
    services = build_services()
    yield services
    await services.close()


async def _events(svc, prefix: str = "secure_link_"):
    return [e for e in await svc.audit.events() if e.action.startswith(prefix)]


def test_tokens_are_long_random_and_url_safe():
    tokens = {new_token() for _ in range(2000)}
    assert len(tokens) == 2000
    for token in list(tokens)[:50]:
        assert re.fullmatch(r"[A-Za-z0-9_-]{32}", token)
        assert len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) * 8 >= 128  # 192 bits
    assert link_url("https://clinic.example/", "T0KEN") == "https://clinic.example/chat/s/T0KEN"


def test_a_link_in_a_text_is_recognised_and_redacted():
    text = f"For your privacy, read this in our secure chat: https://x.example{LINK_PATH}{new_token()}"
    assert carries_link(text) and not carries_link("what are your hours")
    assert redact(text) == "For your privacy, read this in our secure chat: https://x.example/chat/s/[link]"


async def test_a_link_opens_once_with_its_grant(svc):
    token = await svc.secure_links.issue(CONV, PHONE_IDX, "ask_appointment_specifics", now=T0)
    first = await svc.secure_links.open(token, now=T0 + timedelta(minutes=1))
    assert first.status == "ok" and first.grant == LinkGrant(CONV, PHONE_IDX, "ask_appointment_specifics")
    again = await svc.secure_links.open(token, now=T0 + timedelta(minutes=2))
    assert again.status == "used" and again.grant is None


async def test_redis_holds_only_the_keyed_hash_never_the_token(svc, settings_env):
    tokens = [await svc.secure_links.issue(CONV, PHONE_IDX, "ask_appointment_specifics", now=T0) for _ in range(3)]
    await svc.secure_links.open(tokens[0], now=T0)
    await svc.secure_links.open(tokens[1], now=T0 + timedelta(minutes=20))  # expired
    dump = redis_dump(settings_env["REDIS_PREFIX"])
    for token in tokens:
        assert token.encode() not in dump
        for part in (token[:12], token[-12:]):  # nor a recognisable piece of it
            assert part.encode() not in dump
    assert b"ask_appointment_specifics" not in dump  # the grant is sealed (the audit too)
    # The keyed hash is what names the record: without the key ring a token is no way in.
    other_ring = SecureLinks(svc.redis, type(svc.keys).from_root(b"\x01" * 32), svc.cfg.redis_prefix, svc.audit)
    assert (await other_ring.open(tokens[2], now=T0)).status == "unknown"
    assert (await svc.secure_links.open(tokens[2], now=T0)).status == "ok"


async def test_two_racing_opens_get_exactly_one_ok(svc, monkeypatch):
    """Both opens are held just before the spend until both have arrived (no sleeps): one wins."""
    links = svc.secure_links
    token = await links.issue(CONV, PHONE_IDX, "ask_appointment_specifics", now=T0)
    real_spend, arrived, both_here = links._spend, [], asyncio.Event()

    async def held_spend(*args, **kwargs):
        arrived.append(1)
        if len(arrived) == 2:
            both_here.set()
        await both_here.wait()
        return await real_spend(*args, **kwargs)

    monkeypatch.setattr(links, "_spend", held_spend)
    results = await asyncio.wait_for(asyncio.gather(links.open(token, now=T0), links.open(token, now=T0)), 10)
    assert sorted(r.status for r in results) == ["ok", "used"]
    assert [r.grant for r in results if r.status == "ok"] == [LinkGrant(CONV, PHONE_IDX, "ask_appointment_specifics")]
    opened = [e for e in await _events(svc) if e.action == "secure_link_opened"]
    assert len(opened) == 1


async def test_a_link_expires_fifteen_minutes_after_it_was_issued(svc):
    links = svc.secure_links
    early = await links.issue(CONV, PHONE_IDX, "ask_appointment_specifics", now=T0)
    late = await links.issue(CONV, PHONE_IDX, "ask_appointment_specifics", now=T0)
    assert (await links.open(early, now=T0 + timedelta(minutes=14, seconds=59))).status == "ok"
    assert (await links.open(late, now=T0 + timedelta(minutes=15))).status == "expired"
    assert (await links.open(late, now=T0 + timedelta(minutes=16))).status == "expired"  # stays expired, not unknown


async def test_used_expired_and_unknown_are_told_apart(svc):
    links = svc.secure_links
    used = await links.issue(CONV, PHONE_IDX, None, now=T0)
    expired = await links.issue(CONV, PHONE_IDX, None, now=T0)
    await links.open(used, now=T0)
    assert (await links.open(used, now=T0)).status == "used"
    assert (await links.open(expired, now=T0 + timedelta(hours=1))).status == "expired"
    assert (await links.open(new_token(), now=T0)).status == "unknown"  # well formed, never issued
    for junk in ("", "x", "../../etc/passwd", "A" * 500, "ä" * 32):
        assert (await links.open(junk, now=T0)).status == "unknown"
    # The marker kept for the page says nothing about the patient: only state, expiry and the link's id.
    for key in await svc.redis.keys(f"{svc.cfg.redis_prefix}link:*"):
        fields = set(await svc.redis.hkeys(key))
        assert fields <= {b"state", b"expires", b"id", b"conversation", b"grant"}
        if (await svc.redis.hget(key, "state")) != b"live":
            assert b"grant" not in fields
            assert 0 < await svc.redis.ttl(key) <= 24 * 3600


async def test_sweep_audits_each_unopened_link_expiry_once(svc):
    links = svc.secure_links
    unopened = [await links.issue(CONV, PHONE_IDX, "ask_appointment_specifics", now=T0) for _ in range(2)]
    opened = await links.issue(CONV, PHONE_IDX, "ask_appointment_specifics", now=T0)
    fresh = await links.issue(CONV, PHONE_IDX, "ask_appointment_specifics", now=T0 + timedelta(minutes=10))
    await links.open(opened, now=T0)
    assert await links.sweep(now=T0 + timedelta(minutes=14)) == 0  # nothing due yet
    assert await links.sweep(now=T0 + timedelta(minutes=16)) == 2  # the two unopened; not the opened one
    assert await links.sweep(now=T0 + timedelta(minutes=17)) == 0  # once only
    assert await asyncio.gather(links.sweep(now=T0 + timedelta(minutes=30)),
                                links.sweep(now=T0 + timedelta(minutes=30))) in ([1, 0], [0, 1])  # two sweepers
    expired = [e for e in await _events(svc) if e.action == "secure_link_expired"]
    assert len(expired) == 3 and {e.subject for e in expired} == {CONV}
    assert len({e.details["link"] for e in expired}) == 3
    assert (await links.open(unopened[0], now=T0 + timedelta(minutes=31))).status == "expired"
    assert (await links.open(fresh, now=T0 + timedelta(minutes=31))).status == "expired"
    assert await svc.redis.zcard(links.live_index) == 0
    assert len([e for e in await _events(svc) if e.action == "secure_link_expired"]) == 3  # opening adds none


async def test_an_open_that_finds_a_link_expired_audits_its_expiry_once(svc):
    links = svc.secure_links
    token = await links.issue(CONV, PHONE_IDX, None, now=T0)
    assert (await links.open(token, now=T0 + timedelta(minutes=20))).status == "expired"
    assert await links.sweep(now=T0 + timedelta(minutes=21)) == 0
    assert [(e.action, e.outcome) for e in await _events(svc)] == [
        ("secure_link_issued", "ok"), ("secure_link_expired", "expired"), ("secure_link_refused", "expired")]


async def test_the_audit_trail_has_issue_open_and_refusal_by_conversation_never_the_token(svc):
    links = svc.secure_links
    token = await links.issue(CONV, PHONE_IDX, "ask_appointment_specifics", now=T0)
    await links.open(token, now=T0)
    await links.open(token, now=T0)
    await links.open(new_token(), now=T0)
    events = await _events(svc)
    assert [(e.action, e.subject, e.outcome) for e in events] == [
        ("secure_link_issued", CONV, "ok"), ("secure_link_opened", CONV, "ok"),
        ("secure_link_refused", CONV, "used"), ("secure_link_refused", "", "unknown")]
    link_ids = {e.details.get("link") for e in events[:3]}
    assert len(link_ids) == 1 and re.fullmatch(r"[0-9a-f]{16}", link_ids.pop())  # ties the events together
    link_hash = links._hash(token)
    for e in events:
        blob = repr(e)
        assert token not in blob and token[:12] not in blob and link_hash not in blob
    assert events[0].details["intent"] == "ask_appointment_specifics"
    assert events[0].details["expires"] == (T0 + timedelta(minutes=15)).isoformat()


async def test_the_sweep_command_expires_unopened_links(svc):
    from tests.test_cli_consent import run_cli

    long_ago = datetime.now(timezone.utc) - timedelta(minutes=20)
    await svc.secure_links.issue(CONV, PHONE_IDX, None, now=long_ago)
    await svc.secure_links.issue(CONV, PHONE_IDX, None)  # still live
    result = run_cli("links", "sweep")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1 secure link(s) expired"
    assert [e.action for e in await _events(svc)].count("secure_link_expired") == 1


async def test_peeking_tells_the_state_and_spends_nothing(svc):
    """The page a GET shows (a phone's link preview fetches it) must leave the link to the patient."""
    token = await svc.secure_links.issue(CONV, PHONE_IDX, None, now=T0)
    for _ in range(3):
        assert await svc.secure_links.peek(token, now=T0 + timedelta(minutes=1)) == "live"
    assert await svc.secure_links.peek(token, now=T0 + timedelta(minutes=15)) == "expired"
    assert (await svc.secure_links.open(token, now=T0 + timedelta(minutes=2))).status == "ok"
    assert await svc.secure_links.peek(token, now=T0 + timedelta(minutes=3)) == "used"
    assert await svc.secure_links.peek(new_token(), now=T0) == "unknown"
    assert await svc.secure_links.peek("not a token", now=T0) == "unknown"
    assert [e.action for e in await _events(svc)] == ["secure_link_issued", "secure_link_opened"]
