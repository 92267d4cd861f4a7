"""Identity verification state against the real Redis: DOB formats, identical failures,
lockouts, session limits, one-time codes, shared phones, nothing typed kept in the clear."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
import redis

from bot.config import load_settings
from bot.storage.crypto import keyring
from bot.core.dates import InvalidDate, parse_dob
from bot.records.identity import IdentityRegistry

TODAY = date(2026, 11, 25)
T0 = datetime(2030, 1, 14, 15, 0, tzinfo=timezone.utc)
CONV = "sms-test-identity"
ALEX, SAM = ("patient-ref-alex", date(1980, 1, 1)), ("patient-ref-sam", date(2012, 6, 15))  # synthetic


@pytest.mark.parametrize("text", ["03/14/1962", "3-14-62", "March 14 1962", "1962-03-14", "mar 14, 1962",
                                  "14 March 1962", "my dob is 3/14/1962", "3.14.1962", "March 14th, 1962"])
def test_common_formats(text):
    assert parse_dob(text, TODAY) == date(1962, 3, 14)


@pytest.mark.parametrize("text,why", [("02/31/1990", "doesn't exist"), ("13/01/1990", "doesn't exist"),
                                       ("01/01/2030", "future"), ("01/01/1850", "too long ago")])
def test_impossible_dates_are_refused_clearly(text, why):
    with pytest.raises(InvalidDate, match=why):
        parse_dob(text, TODAY)


@pytest.mark.parametrize("text", ["when is my appointment", "yes", "12", "call me at 5", "/provide_dob{\"dob\":1}"])
def test_no_date_is_none(text):
    assert parse_dob(text, TODAY) is None


def test_two_digit_years_take_the_latest_past_century():
    assert parse_dob("6/15/12", TODAY) == date(2012, 6, 15)
    assert parse_dob("6/15/62", TODAY) == date(1962, 6, 15)


@pytest.fixture
async def registry(settings_env):
    cfg = load_settings()
    client = redis.asyncio.Redis.from_url(cfg.redis_url)
    yield IdentityRegistry(client, keyring(cfg), cfg.redis_prefix)
    await client.close()


async def test_shared_phone_is_told_apart_by_the_dob(registry):
    ok = await registry.check_dob(CONV, "sms", date(2012, 6, 15), [ALEX, SAM], T0)
    assert ok.verified and ok.patient_ref == SAM[0]
    assert (await registry.session(CONV, "sms", T0)).patient_ref == SAM[0]


async def test_failures_lock_for_30_minutes_then_staff_after_10_a_day(registry):
    wrong = date(1999, 9, 9)
    results = [await registry.check_dob(CONV, "sms", wrong, [ALEX], T0 + timedelta(minutes=i)) for i in range(3)]
    assert [r.locked for r in results] == [None, None, "short"]
    locked = await registry.check_dob(CONV, "sms", ALEX[1], [ALEX], T0 + timedelta(minutes=5))
    assert not locked.verified and locked.locked == "short"  # even the right DOB is refused while locked
    later = T0 + timedelta(minutes=40)
    assert (await registry.check_dob(CONV, "sms", ALEX[1], [ALEX], later)).verified
    await registry.end(CONV)
    for i in range(10):  # spread out so the 30-minute lock does not trigger first
        await registry.check_dob(CONV, "sms", wrong, [ALEX], later + timedelta(hours=1, minutes=31 * i))
    after = later + timedelta(hours=7)
    assert (await registry.check_dob(CONV, "sms", ALEX[1], [ALEX], after)).locked == "staff"
    await registry.staff_unlock(CONV)
    assert (await registry.check_dob(CONV, "sms", ALEX[1], [ALEX], after)).verified


async def test_unknown_number_and_wrong_dob_fail_the_same_way(registry):
    unknown = await registry.check_dob("sms-other", "sms", ALEX[1], [], T0)
    wrong = await registry.check_dob(CONV, "sms", date(1999, 9, 9), [ALEX], T0)
    assert unknown == wrong and not unknown.verified


async def test_session_ends_when_idle_after_12_hours_on_another_channel_and_on_demand(registry):
    await registry.check_dob(CONV, "sms", ALEX[1], [ALEX], T0)
    assert await registry.session(CONV, "sms", T0 + timedelta(minutes=14))  # touches it
    assert await registry.session(CONV, "sms", T0 + timedelta(minutes=28))
    assert await registry.session(CONV, "sms", T0 + timedelta(minutes=44)) is None  # 16 min idle
    await registry.check_dob(CONV, "sms", ALEX[1], [ALEX], T0)
    for minutes in range(10, 12 * 60, 10):
        assert await registry.session(CONV, "sms", T0 + timedelta(minutes=minutes))
    assert await registry.session(CONV, "sms", T0 + timedelta(hours=12, minutes=5)) is None
    await registry.check_dob(CONV, "sms", ALEX[1], [ALEX], T0)
    assert await registry.session(CONV, "web", T0) is None  # bound to its channel
    await registry.check_dob(CONV, "sms", ALEX[1], [ALEX], T0)
    await registry.end(CONV)  # e.g. on opt-out
    assert await registry.session(CONV, "sms", T0) is None


async def test_one_time_codes(registry, redis_sync, prefix):
    code = await registry.issue_code(CONV, T0)
    assert len(code) == 6 and code.isdigit()
    raw = b"".join(redis_sync.get(k) or b"" for k in redis_sync.scan_iter(match=f"{prefix}idv:otp:*"))
    assert code.encode() not in raw  # stored hashed
    assert not await registry.check_code(CONV, "000000" if code != "000000" else "111111", T0)
    assert await registry.check_code(CONV, code, T0 + timedelta(minutes=9))
    assert not await registry.check_code(CONV, code, T0 + timedelta(minutes=9))  # single use
    late = await registry.issue_code(CONV, T0 + timedelta(minutes=1))
    assert not await registry.check_code(CONV, late, T0 + timedelta(minutes=12))  # expired after 10 min
    assert await registry.issue_code(CONV, T0 + timedelta(minutes=2)) is not None  # third this hour
    assert await registry.issue_code(CONV, T0 + timedelta(minutes=3)) is None  # fourth refused
    assert await registry.issue_code(CONV, T0 + timedelta(minutes=62)) is not None


async def test_nothing_typed_is_stored(registry, redis_sync, prefix):
    await registry.check_dob(CONV, "sms", date(1999, 9, 9), [ALEX], T0)
    await registry.check_dob(CONV, "sms", ALEX[1], [ALEX], T0)
    blob = b"".join(redis_sync.dump(k) or b"" for k in redis_sync.scan_iter(match=f"{prefix}*"))
    for secret in (b"1999", b"1980", b"09-09", b"01-01"):
        assert secret not in blob
