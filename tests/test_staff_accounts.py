"""Staff accounts and console sessions against the real Redis: Argon2id hashes, TOTP (with
replay refused), lockout, disable and reset, idle and absolute session limits, and what is
(not) stored; plus the ``patientbot staff`` command."""
from __future__ import annotations

import io
import re
import time
from datetime import datetime, timedelta, timezone

import pytest
import redis

from bot.config import load_settings
from bot.storage.crypto import DecryptionError, keyring
from bot.records.staff_accounts import StaffAccounts, StaffError, current_code
from bot.records.staff_sessions import StaffSessions
from tests.conftest import TEST_REDIS_URL

PASSWORD = "correct horse battery staple"  # synthetic
T0 = datetime(2030, 1, 14, 15, 0, tzinfo=timezone.utc)


@pytest.fixture
async def accounts(settings_env):
    cfg = load_settings()
    client = redis.asyncio.Redis.from_url(TEST_REDIS_URL)
    yield StaffAccounts(client, keyring(cfg), cfg.redis_prefix, max_failures=5, lockout_minutes=15)
    await client.close()


@pytest.fixture
async def sessions(settings_env):
    client = redis.asyncio.Redis.from_url(TEST_REDIS_URL)
    yield StaffSessions(client, settings_env["REDIS_PREFIX"], idle_minutes=15, max_hours=12)
    await client.close()


def _code(secret: str, at: datetime) -> str:
    return current_code(secret, at.timestamp())


async def _raw_dump(prefix: str) -> str:
    client = redis.Redis.from_url(TEST_REDIS_URL)
    out = []
    for key in client.scan_iter(match=f"{prefix}*"):
        out.append(key.decode())
        if client.type(key) == b"hash":
            out += [f"{k.decode()}={v.decode(errors='replace')}" for k, v in client.hgetall(key).items()]
        elif client.type(key) == b"string":
            out.append(client.get(key).decode(errors="replace"))
        elif client.type(key) == b"set":
            out += [m.decode() for m in client.smembers(key)]
    return "\n".join(out)


async def test_password_is_an_argon2id_hash_and_the_totp_secret_is_sealed_to_its_record(accounts, settings_env):
    alice = await accounts.add("alice", "agent", PASSWORD)
    bob = await accounts.add("bob", "admin", PASSWORD)
    dump = await _raw_dump(settings_env["REDIS_PREFIX"])
    assert PASSWORD not in dump and alice.totp_secret not in dump and bob.totp_secret not in dump
    assert "alice" not in "\n".join(line for line in dump.splitlines() if line.startswith(settings_env["REDIS_PREFIX"]))
    raw = redis.Redis.from_url(TEST_REDIS_URL)
    a_key = f"{settings_env['REDIS_PREFIX']}staff:user:{alice.member.id}"
    b_key = f"{settings_env['REDIS_PREFIX']}staff:user:{bob.member.id}"
    assert raw.hget(a_key, "password_hash").startswith(b"$argon2id$")
    # A sealed secret copied onto another account does not open there.
    token = raw.hget(a_key, "totp_secret").decode()
    assert accounts.keys.decrypt_text(token, f"{a_key}#totp_secret") == alice.totp_secret
    with pytest.raises(DecryptionError):
        accounts.keys.decrypt_text(token, f"{b_key}#totp_secret")
    assert alice.provisioning_uri.startswith("otpauth://totp/") and "secret=" + alice.totp_secret in alice.provisioning_uri


@pytest.mark.parametrize("username,role,password,message", [
    ("Alice Smith", "agent", PASSWORD, "a username is"),
    ("carol", "owner", PASSWORD, "role must be"),
    ("carol", "agent", "short", "at least 12"),
])
async def test_bad_accounts_are_refused(accounts, username, role, password, message):
    with pytest.raises(StaffError, match=message):
        await accounts.add(username, role, password)


async def test_a_username_is_taken_once(accounts):
    await accounts.add("alice", "agent", PASSWORD)
    with pytest.raises(StaffError, match="exists already"):
        await accounts.add("ALICE", "admin", PASSWORD)


async def test_sign_in_needs_password_and_current_code(accounts):
    alice = await accounts.add("alice", "agent", PASSWORD)
    assert (await accounts.authenticate("alice", PASSWORD, _code(alice.totp_secret, T0), now=T0)).ok
    later = T0 + timedelta(minutes=2)
    assert (await accounts.authenticate("alice", "wrong password!!", _code(alice.totp_secret, later), now=later)).reason == "bad_password"
    assert (await accounts.authenticate("alice", PASSWORD, "000000" if _code(alice.totp_secret, later) != "000000" else "111111",
                                        now=later)).reason == "bad_code"
    assert (await accounts.authenticate("alice", PASSWORD, "", now=later)).reason == "bad_code"
    stale = T0 - timedelta(minutes=5)  # a code from five minutes ago
    assert (await accounts.authenticate("alice", PASSWORD, _code(alice.totp_secret, stale), now=later)).reason == "bad_code"
    assert (await accounts.authenticate("nobody", PASSWORD, "123456", now=later)).reason == "unknown_user"


async def test_a_code_is_accepted_once(accounts):
    alice = await accounts.add("alice", "agent", PASSWORD)
    code = _code(alice.totp_secret, T0)
    assert (await accounts.authenticate("alice", PASSWORD, code, now=T0)).ok
    replay = await accounts.authenticate("alice", PASSWORD, code, now=T0 + timedelta(seconds=5))
    assert not replay.ok and replay.reason == "bad_code"
    nxt = T0 + timedelta(seconds=30)
    assert (await accounts.authenticate("alice", PASSWORD, _code(alice.totp_secret, nxt), now=nxt)).ok


async def test_lockout_after_repeated_failures_then_time_or_unlock(accounts):
    alice = await accounts.add("alice", "agent", PASSWORD)
    reasons = [(await accounts.authenticate("alice", "wrong password!!", "123456", now=T0)).reason for _ in range(5)]
    assert reasons == ["bad_password"] * 4 + ["locked_now"]
    right = await accounts.authenticate("alice", PASSWORD, _code(alice.totp_secret, T0), now=T0 + timedelta(minutes=1))
    assert not right.ok and right.reason == "locked"  # even the right password and code
    after = T0 + timedelta(minutes=16)
    assert (await accounts.authenticate("alice", PASSWORD, _code(alice.totp_secret, after), now=after)).ok
    for _ in range(5):
        await accounts.authenticate("alice", "wrong password!!", "123456", now=after)
    assert (await accounts.by_username("alice")).locked(after)
    await accounts.unlock("alice")
    again = after + timedelta(seconds=60)
    assert (await accounts.authenticate("alice", PASSWORD, _code(alice.totp_secret, again), now=again)).ok


async def test_a_success_resets_the_failure_count(accounts):
    alice = await accounts.add("alice", "agent", PASSWORD)
    for _ in range(4):
        await accounts.authenticate("alice", "wrong password!!", "123456", now=T0)
    assert (await accounts.authenticate("alice", PASSWORD, _code(alice.totp_secret, T0), now=T0)).ok
    later = T0 + timedelta(minutes=1)
    assert (await accounts.authenticate("alice", "wrong password!!", "1", now=later)).reason == "bad_password"
    assert (await accounts.get(alice.member.id)).failures == 1


async def test_disabled_and_reset_accounts(accounts):
    alice = await accounts.add("alice", "agent", PASSWORD)
    await accounts.set_disabled("alice", True)
    assert (await accounts.authenticate("alice", PASSWORD, _code(alice.totp_secret, T0), now=T0)).reason == "disabled"
    await accounts.set_disabled("alice", False)
    fresh = await accounts.reset("alice", "a brand new passphrase")
    later = T0 + timedelta(minutes=1)
    assert fresh.totp_secret != alice.totp_secret
    assert (await accounts.authenticate("alice", PASSWORD, _code(fresh.totp_secret, later), now=later)).reason == "bad_password"
    assert (await accounts.authenticate("alice", "a brand new passphrase", _code(alice.totp_secret, later),
                                        now=later)).reason == "bad_code"
    assert (await accounts.authenticate("alice", "a brand new passphrase", _code(fresh.totp_secret, later), now=later)).ok
    with pytest.raises(StaffError, match="no staff member"):
        await accounts.reset("nobody")


async def test_sessions_end_when_idle_or_too_old_and_do_not_store_the_token(sessions, settings_env):
    token, session = await sessions.create("staff-1", now=T0)
    dump = await _raw_dump(settings_env["REDIS_PREFIX"])
    assert token not in dump
    loaded, why, _ = await sessions.load(token, now=T0 + timedelta(minutes=10))
    assert why == "ok" and loaded.csrf == session.csrf and loaded.csrf_ok(session.csrf)
    assert not loaded.csrf_ok("") and not loaded.csrf_ok(None) and not loaded.csrf_ok(session.csrf + "x")
    # Background requests (touch=False) do not keep a session alive.
    assert (await sessions.load(token, now=T0 + timedelta(minutes=24), touch=False))[1] == "ok"
    assert (await sessions.load(token, now=T0 + timedelta(minutes=25, seconds=1)))[1:] == ("idle", "staff-1")
    assert (await sessions.load(token, now=T0 + timedelta(minutes=25, seconds=2)))[1] == "missing"
    # Activity every 10 minutes still ends at the absolute limit.
    token, _ = await sessions.create("staff-1", now=T0)
    when = T0
    for _ in range(71):
        when += timedelta(minutes=10)
        assert (await sessions.load(token, now=when))[1] == "ok"
    assert (await sessions.load(token, now=when + timedelta(minutes=11)))[1] == "expired"
    assert (await sessions.load("not-a-token"))[1] == "missing" and (await sessions.load(None))[1] == "missing"


async def test_ending_every_session_of_a_staff_member(sessions):
    mine = [(await sessions.create("staff-1"))[0] for _ in range(2)]
    other, _ = await sessions.create("staff-2")
    assert await sessions.end_all("staff-1") == 2
    assert [(await sessions.load(t))[1] for t in mine] == ["missing", "missing"]
    assert (await sessions.load(other))[1] == "ok"


def _run_cli(capsys, monkeypatch, *argv, stdin=None):
    from bot.cli import main

    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_staff_command(settings_env, capsys, monkeypatch):
    from bot.storage.audit import AuditLog

    code, out, _ = _run_cli(capsys, monkeypatch, "staff", "add", "dana", "--role", "admin")
    assert code == 0 and "staff member added: dana (admin)" in out
    password = re.search(r"^password: (\S+)$", out, re.M).group(1)
    secret = re.search(r"^TOTP secret: ([A-Z2-7]+)$", out, re.M).group(1)
    assert re.search(r"^provisioning URI: otpauth://totp/patientbot:dana\?secret=" + secret, out, re.M)
    staff_id = re.search(r"id (staff:[0-9a-f-]{36})", out).group(1)

    code, out, err = _run_cli(capsys, monkeypatch, "staff", "add", "dana")
    assert code == 1 and "exists already" in err
    code, out, _ = _run_cli(capsys, monkeypatch, "staff", "add", "eve", "--password-stdin",
                            stdin="a passphrase from stdin\n")
    assert code == 0 and "password:" not in out

    cfg = load_settings()

    async def sign_in(user, pw, sec, at):
        client = redis.asyncio.Redis.from_url(TEST_REDIS_URL)
        try:
            return await StaffAccounts(client, keyring(cfg), cfg.redis_prefix).authenticate(
                user, pw, current_code(sec, at), now=datetime.fromtimestamp(at, timezone.utc))
        finally:
            await client.close()

    import asyncio

    now = time.time()
    assert asyncio.run(sign_in("dana", password, secret, now)).ok
    assert _run_cli(capsys, monkeypatch, "staff", "disable", "dana")[1].startswith("dana: disabled")
    assert asyncio.run(sign_in("dana", password, secret, now + 30)).reason == "disabled"
    code, out, _ = _run_cli(capsys, monkeypatch, "staff", "list")
    assert re.search(r"^dana\s+admin\s+disabled\s+" + staff_id, out, re.M) and re.search(r"^eve\s+agent\s+active", out, re.M)
    _run_cli(capsys, monkeypatch, "staff", "enable", "dana")
    code, out, _ = _run_cli(capsys, monkeypatch, "staff", "reset", "dana")
    new_password = re.search(r"^password: (\S+)$", out, re.M).group(1)
    new_secret = re.search(r"^TOTP secret: ([A-Z2-7]+)$", out, re.M).group(1)
    assert asyncio.run(sign_in("dana", password, new_secret, now + 60)).reason == "bad_password"
    assert asyncio.run(sign_in("dana", new_password, new_secret, now + 90)).ok
    assert _run_cli(capsys, monkeypatch, "staff", "unlock", "nobody")[0] == 1

    async def audited():
        client = redis.asyncio.Redis.from_url(TEST_REDIS_URL)
        try:
            return [(e.actor.startswith("admin:cli:"), e.action, e.subject)
                    for e in await AuditLog(client, keyring(cfg), cfg.redis_prefix).events()]
        finally:
            await client.close()

    events = asyncio.run(audited())
    assert (True, "staff_added", staff_id) in events and (True, "staff_disabled", staff_id) in events
    assert (True, "staff_reset", staff_id) in events and (True, "staff_list_viewed", "") in events
