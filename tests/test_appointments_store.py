"""bot/records/appointments.py against the real Redis (test DB, per-test prefix): import of the synthetic
bundle, lookups by phone, all-or-nothing imports, nothing readable at rest, change history."""
from __future__ import annotations

import asyncio
import copy
import json
import re
from datetime import datetime, timedelta, timezone

import pytest

from bot.cli import appointments as cli

from bot import config
from bot.records.appointments import AppointmentStore, appointment_as_fhir
from bot.storage.crypto import DecryptionError, keyring, phone_index
from bot.records.fhir import BundleError, load_bundle_file
from bot.storage.redis_client import async_redis

BUNDLE_PATH = config.ROOT / "data" / "demo" / "synthetic_bundle.json"
FAMILY_PHONE, ROBIN_PHONE = "+15550100101", "+15550100102"  # synthetic, from the bundle
BEFORE_ALL = datetime(2030, 1, 1, tzinfo=timezone.utc)
APPT1_START = datetime(2030, 1, 15, 15, 30, tzinfo=timezone.utc)  # demo-appt-1, Alex's
IMPORTED_AT = datetime(2029, 12, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
async def store(settings_env):
    cfg = config.settings()
    client = async_redis(cfg)
    yield AppointmentStore(client, keyring(cfg), cfg.redis_prefix)
    await client.close()


@pytest.fixture
def bundle():
    return load_bundle_file(BUNDLE_PATH)


def stored(redis_sync, prefix):
    """Every key under the test prefix with its raw value(s)."""
    out = {}
    for key in redis_sync.scan_iter(match=f"{prefix}*"):
        if key == f"{prefix}keys".encode():  # the wrapped data keys, not records
            continue
        kind = redis_sync.type(key)
        if kind == b"string":
            out[key] = [redis_sync.get(key)]
        elif kind == b"set":
            out[key] = sorted(redis_sync.smembers(key))
        elif kind == b"zset":
            out[key] = [m for m, _ in redis_sync.zrange(key, 0, -1, withscores=True)]
        else:
            pytest.fail(f"unexpected {kind!r} at {key!r}")
    return out


async def test_import_and_read_back(store, bundle):
    assert await store.import_bundle(bundle, "test:import", at=IMPORTED_AT) == {
        "patients": 3, "practitioners": 2, "appointments": 3}
    alex = await store.get_patient(store.patient_ref("demo-patient-1"))
    assert (alex["given"], alex["birth_date"]) == ("Alex", "1980-01-01")
    assert alex["phone_indexes"] == [phone_index(store.keys, FAMILY_PHONE)]
    appt = await store.get_appointment(store.appointment_ref("demo-appt-1"))
    assert appt.pid == store.patient_ref("demo-patient-1")
    assert (appt.status, appt.start) == ("booked", APPT1_START)
    assert appt.data["practitioner_name"] == "Dr. Jordan Example"
    assert appt.data["history"] == [
        {"action": "imported", "status": "booked", "actor": "test:import", "at": IMPORTED_AT.isoformat()}]
    assert await store.get_patient("0" * 32) is None and await store.get_appointment("0" * 32) is None


async def test_next_appointment_for_a_shared_family_phone(store, bundle):
    await store.import_bundle(bundle, "test")
    family = phone_index(store.keys, FAMILY_PHONE)
    alex, sam = store.patient_ref("demo-patient-1"), store.patient_ref("demo-patient-2")
    assert await store.patients_at(family) == sorted([alex, sam])

    # The soonest appointment of anyone at the number: Alex's (Jan 15) before Sam's (Jan 22).
    nxt = await store.next_appointment(family, now=BEFORE_ALL)
    assert (nxt.aid, nxt.pid) == (store.appointment_ref("demo-appt-1"), alex)
    # Still "next" during its first hour (running late), then Sam's comes up.
    assert (await store.next_appointment(family, now=APPT1_START + timedelta(minutes=59))).pid == alex
    later = await store.next_appointment(family, now=APPT1_START + timedelta(minutes=61))
    assert (later.aid, later.pid) == (store.appointment_ref("demo-appt-2"), sam)
    # A cancelled appointment is skipped.
    await store.cancel(nxt, "test")
    assert (await store.next_appointment(family, now=BEFORE_ALL)).pid == sam

    robin = await store.next_appointment(phone_index(store.keys, ROBIN_PHONE), now=BEFORE_ALL)
    assert robin.aid == store.appointment_ref("demo-appt-3")
    assert await store.next_appointment(phone_index(store.keys, "+15550100999"), now=BEFORE_ALL) is None
    assert await store.next_appointment(family, now=datetime(2031, 1, 1, tzinfo=timezone.utc)) is None


async def test_broken_bundle_file_imports_nothing(store, redis_sync, prefix, tmp_path):
    doc = json.loads(BUNDLE_PATH.read_text(encoding="utf-8"))
    doc["entry"][-1]["resource"]["start"] = "not a date"  # the last entry: everything before is valid
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(BundleError):
        await cli._import(broken, source="test")  # the CLI's import path: validate, then store
    assert stored(redis_sync, prefix) == {}


async def test_import_failing_midway_writes_nothing(store, bundle, redis_sync, prefix):
    await store.import_bundle(bundle, "test", at=IMPORTED_AT)
    before = stored(redis_sync, prefix)
    changed = copy.deepcopy(bundle)
    changed.patients["demo-patient-1"].given = "Changed"  # queued first ...
    changed.appointments["demo-appt-3"].practitioner_id = "missing"  # ... then this fails (KeyError)
    with pytest.raises(KeyError):
        await store.import_bundle(changed, "test")
    assert stored(redis_sync, prefix) == before
    assert (await store.get_patient(store.patient_ref("demo-patient-1")))["given"] == "Alex"

    redis_sync.delete(*before)  # and into an empty store, a failing import writes nothing at all

    with pytest.raises(KeyError):
        await store.import_bundle(changed, "test")
    assert stored(redis_sync, prefix) == {}


async def test_nothing_identifying_at_rest(store, bundle, redis_sync, prefix):
    await store.import_bundle(bundle, "test")
    data = stored(redis_sync, prefix)
    assert len(data) == 3 + 2 + 3 + 2 + 3 + 1  # patients, practitioners, appts, phone sets, appt indexes, by-start
    forbidden = {"Alex", "Demopatient", "Robin", "Samplename", "Jordan", "Example", "Casey", "Placeholder",
                 "5550100101", "5550100102", "555-010-01", "0100101", "0100102", "1980-01-01", "2012-06-15",
                 "1975-11-30", "19800101", "DEMO-000", "demo-patient", "demo-appt", "demo-practitioner"}
    key_shape = re.compile(rf"^{re.escape(prefix)}((patient|phone|practitioner|appt|patient-appts):[0-9a-f]{{32,40}}"
                           rf"|appts-by-start:all)$")
    for key, values in data.items():
        assert key_shape.match(key.decode()), key
        kind = key.decode()[len(prefix):].split(":")[0]
        for value in values:
            if kind in ("phone", "patient-appts", "appts-by-start"):  # members are blind indexes ...
                assert re.fullmatch(rb"[0-9a-f]{32}", value), value
            else:  # ... everything else is a sealed ciphertext (so short names like "Sam" cannot leak)
                assert re.fullmatch(rb"pb1\.[0-9a-f]{8}\.[A-Za-z0-9_-]+", value), value[:20]
        blob = key + b"".join(values)
        for word in forbidden:
            assert word.encode() not in blob and word.lower().encode() not in blob, (word, key)


async def test_record_is_bound_to_its_key(store, bundle, redis_sync, prefix):
    await store.import_bundle(bundle, "test")
    alex, robin = store.patient_ref("demo-patient-1"), store.patient_ref("demo-patient-3")
    redis_sync.set(f"{prefix}patient:{robin}", redis_sync.get(f"{prefix}patient:{alex}"))
    with pytest.raises(DecryptionError):
        await store.get_patient(robin)


async def test_record_change_history(store, bundle):
    await store.import_bundle(bundle, "test:import", at=IMPORTED_AT)
    aid = store.appointment_ref("demo-appt-2")  # pending
    appt = await store.get_appointment(aid)
    t = [datetime(2030, 1, 10, h, tzinfo=timezone.utc) for h in range(3)]
    appt = await store.record_change(appt, "confirmed", "sms-abc", new_status="booked", at=t[0])
    appt = await store.record_change(appt, "reschedule_requested", "sms-abc", at=t[1], note="synthetic")
    appt = await store.cancel(appt, "sms-abc")
    reread = await store.get_appointment(aid)
    assert reread.data == appt.data and reread.status == "cancelled"
    history = reread.data["history"]
    assert [h["action"] for h in history] == ["imported", "confirmed", "reschedule_requested", "cancelled"]
    assert history[1] == {"action": "confirmed", "actor": "sms-abc", "at": t[0].isoformat(), "status": "booked"}
    assert history[2] == {"action": "reschedule_requested", "actor": "sms-abc", "at": t[1].isoformat(),
                          "note": "synthetic"}  # no status change recorded, none made
    assert history[3]["status"] == "cancelled"
    fhir = appointment_as_fhir(reread)
    assert fhir["status"] == "cancelled" and fhir["participant"][0]["status"] == "declined"
    assert fhir["participant"][0]["actor"] == {"reference": "Patient/demo-patient-2"}

    await store.import_bundle(bundle, "test:reimport")  # re-import keeps the history
    again = await store.get_appointment(aid)
    assert [h["action"] for h in again.data["history"]] == [h["action"] for h in history] + ["imported"]


async def test_concurrent_changes_are_all_kept(store, bundle):
    await store.import_bundle(bundle, "test")
    appt = await store.get_appointment(store.appointment_ref("demo-appt-1"))
    await asyncio.gather(*(store.note_running_late(appt, f"actor-{n}") for n in range(8)))
    history = (await store.get_appointment(appt.aid)).data["history"]
    assert sorted(h["actor"] for h in history[1:]) == sorted(f"actor-{n}" for n in range(8))


async def test_reimport_moves_a_changed_phone_number(store, bundle):
    await store.import_bundle(bundle, "test")
    moved = copy.deepcopy(bundle)
    moved.patients["demo-patient-3"].phones = ["+15550100177"]
    await store.import_bundle(moved, "test")
    robin = store.patient_ref("demo-patient-3")
    assert await store.patients_at(phone_index(store.keys, ROBIN_PHONE)) == []
    assert await store.patients_at(phone_index(store.keys, "+15550100177")) == [robin]


async def test_reassigned_appointment_is_not_offered_to_the_previous_patient(store, bundle):
    await store.import_bundle(bundle, "test")
    moved = copy.deepcopy(bundle)
    moved.appointments["demo-appt-3"].patient_id = "demo-patient-1"  # EHR fix: it was Alex's all along
    await store.import_bundle(moved, "test")
    leaked = await store.next_appointment(phone_index(store.keys, ROBIN_PHONE), now=BEFORE_ALL)
    assert leaked is None, "Robin's number is offered an appointment that now belongs to Alex"
