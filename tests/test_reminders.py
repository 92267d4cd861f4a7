"""Reminder runs against the provider stand-in and the real Redis: who gets a reminder, who does
not and why (opted out, quiet hours, daily and weekly limits, already sent), and the patient's
replies applied to the appointment through the gateway."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import redis

from bot.records.appointments import AppointmentStore
from bot.storage.audit import AuditLog
from bot.records.consent import ConsentRegistry
from bot.storage.crypto import keyring, conversation_id, phone_index
from bot.records.fhir import load_bundle_file
from bot.records.handoff import HandoffQueue
from bot.core.office import load_office
from bot.records.outbound import OutboundGate
from bot.records.reminders import Reminders
from tests.gateway_helpers import messages, post, sms
from tests.test_sms_outbound import stack  # noqa: F401 - the gateway + provider stand-in fixture
from channels.gateway.app_keys import SMS_SENDER

BUNDLE = Path(__file__).resolve().parent.parent / "data" / "demo" / "synthetic_bundle.json"
SHARED = "+15550100101"  # demo patients 1 and 2 (synthetic)
ROBIN = "+15550100102"  # demo patient 3 (synthetic)
NOON_CHICAGO_JAN14 = datetime(2030, 1, 14, 18, 0, tzinfo=timezone.utc)


async def _setup(cfg, app, consent_for=(SHARED,), opted_out=(ROBIN,)):
    rc = redis.asyncio.Redis.from_url(cfg.redis_url)
    keys = keyring(cfg)
    store = AppointmentStore(rc, keys, cfg.redis_prefix)
    await store.import_bundle(load_bundle_file(BUNDLE), "test")
    consent = ConsentRegistry(rc, keys, cfg.redis_prefix)
    for number in consent_for:
        await consent.record_opt_in(phone_index(keys, number), "web_form", "yes to reminders (synthetic)")
    for number in opted_out:
        await consent.record_opt_out(phone_index(keys, number), "keyword", "STOP")
    audit = AuditLog(rc, keys, cfg.redis_prefix)

    async def send(to, body, conversation):
        return await app[SMS_SENDER].send(to, body, conversation, actor="system:reminders")

    reminders = Reminders(rc, keys, cfg.redis_prefix, load_office(cfg.office_config),
                          OutboundGate(consent, audit), send)
    return rc, keys, store, reminders


def _table(outcomes, store):
    return [(o.result, o.reason, o.window_hours) for o in outcomes]


async def test_a_run_reports_who_got_a_reminder_and_why_others_did_not(stack):
    client, stub, provider, cfg, app = stack
    rc, keys, store, reminders = await _setup(cfg, app)
    outcomes = await reminders.run(NOON_CHICAGO_JAN14)
    # Appointments 1 (shared number, consented) and 3 (Robin, opted out) are within 48 h.
    assert sorted(_table(outcomes, store)) == [("sent", "ok", 48), ("skipped", "opted_out", 48)]
    [sent] = provider.sent
    assert sent["To"] == SHARED and len(sent["Body"]) <= 160
    assert "Maple Street Family Medicine" in sent["Body"] and "Tue, Jan 15 at 9:30 AM" in sent["Body"]
    assert "Reply C to confirm, R to reschedule" in sent["Body"] and "(555) 010-0199" in sent["Body"]
    for private in ("Alex", "Demopatient", "1980", "Annual", "physical", "check-up", "Dr.", "insurance"):  # no name, DOB, reason, practitioner, instructions
        assert private.lower() not in sent["Body"].lower()
    # Once each: the same run again sends nothing more.
    again = await reminders.run(NOON_CHICAGO_JAN14 + timedelta(minutes=5))
    assert ("skipped", "already_sent", 48) in _table(again, store) and len(provider.sent) == 1
    # The 2 h reminder next morning is held back by the one-a-day limit.
    morning = await reminders.run(datetime(2030, 1, 15, 14, 30, tzinfo=timezone.utc))  # 08:30 Chicago
    assert ("skipped", "daily_limit", 2) in _table(morning, store) and len(provider.sent) == 1
    refusals = [(e.action, e.outcome) for e in await AuditLog(rc, keys, cfg.redis_prefix).events()]
    assert ("outbound_refused", "opted_out") in refusals and ("reminder_skipped", "daily_limit") in refusals
    await rc.close()


async def test_quiet_hours_and_weekly_limit(stack):
    client, stub, provider, cfg, app = stack
    rc, keys, store, reminders = await _setup(cfg, app, consent_for=(SHARED, ROBIN), opted_out=())
    night = datetime(2030, 1, 15, 4, 0, tzinfo=timezone.utc)  # 22:00 in Chicago
    assert {o.reason for o in await reminders.run(night)} == {"quiet_hours"}
    assert provider.sent == []
    idx = phone_index(keys, ROBIN)
    week_ago = NOON_CHICAGO_JAN14 - timedelta(days=3)
    await rc.zadd(f"{cfg.redis_prefix}auto-sent:{idx}", {f"x{n}": (week_ago + timedelta(hours=n)).timestamp()
                                                         for n in range(3)})
    outcomes = {o.number_index: o.reason for o in await reminders.run(NOON_CHICAGO_JAN14)}
    assert outcomes[idx] == "weekly_limit" and outcomes[phone_index(keys, SHARED)] == "ok"
    await rc.close()


async def test_replies_to_a_reminder_are_applied_to_the_appointment(stack):
    client, stub, provider, cfg, app = stack
    rc, keys, store, reminders = await _setup(cfg, app)
    await reminders.run(NOON_CHICAGO_JAN14)
    [maybe] = messages(await (await post(client, cfg, sms("hmm maybe", "SM" + "4" * 32, sender=SHARED))).text())
    assert "Reply C to confirm" in maybe and stub.calls == []
    [question] = messages(await (await post(client, cfg, sms("what time do you open on tuesday",
                                                               "SM" + "5" * 32, sender=SHARED))).text())
    assert question == "hello from the bot"  # a real question goes to the bot
    [confirmed] = messages(await (await post(client, cfg, sms("Yes", "SM" + "6" * 32, sender=SHARED))).text())
    assert "you're confirmed for Tue, Jan 15 at 9:30 AM" in confirmed
    appt = await store.get_appointment(store.appointment_ref("demo-appt-1"))
    assert appt.data["history"][-1]["action"] == "confirmed" and appt.data["history"][-1]["actor"] == "patient:sms"
    # The reminder is answered: a later "yes" is the bot's again.
    await post(client, cfg, sms("yes", "SM" + "7" * 32, sender=SHARED))
    assert [c["text"] for c in stub.calls] == ["what time do you open on tuesday", "yes"]
    await rc.close()


async def test_cant_make_it_requests_a_reschedule_and_queues_staff(stack):
    client, stub, provider, cfg, app = stack
    rc, keys, store, reminders = await _setup(cfg, app)
    await reminders.run(NOON_CHICAGO_JAN14)
    [reply] = messages(await (await post(client, cfg, sms("can't make it", "SM" + "8" * 32, sender=SHARED))).text())
    assert "scheduling team" in reply
    appt = await store.get_appointment(store.appointment_ref("demo-appt-1"))
    assert appt.data["history"][-1]["action"] == "reschedule_requested"
    entry = await HandoffQueue(rc, None, cfg.redis_prefix).entry(conversation_id(keys, "sms", SHARED))
    assert entry["reason"] == "reschedule"
    await rc.close()
