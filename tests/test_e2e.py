"""End to end: the whole stack (action server, Rasa, gateway) started as ``make up`` starts it,
on its own ports and Redis prefix, and a synthetic patient texting through signed webhooks."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, Iterator, List

import pytest
import redis

from bot.records.appointments import AppointmentStore
from bot.ops.chat import parse_twiml
from bot.config import ROOT
from bot.storage.crypto import conversation_id, keyring
from bot.records.handoff import HandoffQueue
from bot.core.office import load_office
from bot.ops.stack import Stack
from bot.nlu.training import model_path, rasa_bin
from tests.conftest import TEST_REDIS_URL, redis_dump
from tests.stack_helpers import DEMO_NUMBER, free_port, signed_sms, text, whole_stack  # noqa: F401 - re-exported

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

_free_port = free_port  # other test modules import it from here


@pytest.fixture(scope="module")
def stack(trained_model, tmp_path_factory) -> Iterator[Stack]:
    # At DEBUG, the most talkative level we ship: still no PHI in any log (test below).
    with whole_stack(tmp_path_factory.mktemp("run"), LOG_LEVEL="DEBUG") as s:
        yield s


def _appointment_history(stack: Stack, fhir_id: str) -> Dict:
    client = redis.asyncio.Redis.from_url(TEST_REDIS_URL)
    store = AppointmentStore(client, keyring(stack.cfg), stack.cfg.redis_prefix)
    appt = asyncio.run(store.get_appointment(store.appointment_ref(fhir_id)))
    return appt.data


def test_the_demo_conversation(stack):
    office = load_office(stack.cfg.office_config)
    [greeting] = text(stack, "hi")
    assert "assistant" in greeting and "911" in greeting

    [notice] = text(stack, "when is my appointment")
    assert office.name in notice and "Jan 15" in notice and "9:30 AM" in notice
    assert "physical" not in notice.lower()  # service type is PHI: never before verification

    [confirmed] = text(stack, "C")
    assert "confirmed" in confirmed
    history = _appointment_history(stack, "demo-appt-1")["history"]
    assert history[-1]["action"] == "confirmed" and history[-1]["actor"] == "patient:sms"

    assert text(stack, "what are your hours") == [office.faq_answer("ask_hours")]
    assert text(stack, "where do I park") == [office.faq_answer("ask_parking")]

    [handoff] = text(stack, "can I talk to someone")
    assert "staff" in handoff
    assert text(stack, "hello?") == []  # from escalation on the bot is silent; staff answer

    async def staff_inbox_then_hand_back():
        client = redis.asyncio.Redis.from_url(TEST_REDIS_URL)
        queue = HandoffQueue(client, keyring(stack.cfg), stack.cfg.redis_prefix)
        conv = conversation_id(keyring(stack.cfg), "sms", DEMO_NUMBER)
        try:
            log = [e["text"] for e in await queue.log(conv)]
            await queue.hand_back(conv)  # as staff resolving it would (tests/test_staff_*.py)
            return log
        finally:
            await client.close()

    assert asyncio.run(staff_inbox_then_hand_back()) == ["hello?"]


def test_cancel_needs_a_yes(stack):
    sender = "+15550100102"  # the other synthetic patient
    [question] = text(stack, "I need to cancel my appointment", sender)
    assert "Reply Y" in question
    assert _appointment_history(stack, "demo-appt-3")["status"] == "booked"
    [done] = text(stack, "yes", sender)
    assert "cancelled" in done
    assert _appointment_history(stack, "demo-appt-3")["status"] == "cancelled"


def test_unknown_number_gets_the_neutral_reply(stack):
    office = load_office(stack.cfg.office_config)
    [reply] = text(stack, "when is my appointment", "+15550100177")
    assert "I don't have an upcoming appointment" in reply and office.phone in reply


def test_unsigned_request_is_refused(stack):
    data, headers = signed_sms(stack.cfg, DEMO_NUMBER, "hi")
    headers["X-Twilio-Signature"] = "forged"
    req = urllib.request.Request(f"{stack.cfg.public_base_url}/sms/inbound", data=data, headers=headers)
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 403


def test_replayed_webhook_gets_the_first_answer_and_no_second_side_effect(stack):
    data, headers = signed_sms(stack.cfg, "+15550100178", "hi")
    answers = []
    for _ in range(2):  # the provider retries with the very same signed request
        req = urllib.request.Request(f"{stack.cfg.public_base_url}/sms/inbound", data=data, headers=headers)
        with urllib.request.urlopen(req, timeout=30) as resp:
            answers.append(parse_twiml(resp.read().decode()))
    assert answers[0] == answers[1] and "assistant" in answers[0][0]
    tampered = data.replace(b"Body=hi", b"Body=ho")
    req = urllib.request.Request(f"{stack.cfg.public_base_url}/sms/inbound", data=tampered, headers=headers)
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 403


def test_emergency_and_opt_out_through_the_running_stack(stack):
    number = "+15550100179"
    [redirect] = text(stack, "my wife collapsed and she isnt breathing", number)
    assert "911" in redirect
    [stopped] = text(stack, "STOP", number)
    assert "unsubscribed" in stopped
    assert text(stack, "what are your hours", number) == []  # silence after an opt-out
    [crisis] = text(stack, "i want to end my life", number)  # ...except an emergency redirect
    assert "988" in crisis


# The messages the safety issue reported answered with an FAQ, an appointment reply, the
# fallback or nothing (issue 15): each now gets a redirect in its language, 988 for a crisis.
REPORTED = [
    ("I have a plan to hurt myself", "988", "en"),
    ("gave my dog to the neighbor, paid off my phone bill, everythings in order. goodbye and thanks for everything",
     "988", "en"),
    ("mi hijo de 15 dice que se quiere morir y se encerro en el baño con una navaja", "988", "es"),
    ("i have a plan to end things", "988", "en"),
    ("there's a fire in my apartment", "911", "en"),
    ("no puedo respirar", "911", "es"),
    ("quiero morir", "988", "es"),
    ("me duele mucho el pecho", "911", "es"),
    ("me quiero matar", "988", "es"),
]


@pytest.mark.parametrize("n,body,number,language", [(n, *r) for n, r in enumerate(REPORTED)])
def test_reported_emergencies_are_redirected_in_their_language(stack, n, body, number, language):
    [reply] = text(stack, body, f"+155501002{n:02d}")
    first = reply.split(". ")[0]
    assert number in first
    assert reply.startswith("Llame") == (language == "es")


def test_danger_words_get_the_safety_check_through_rasa_and_reach_staff(stack):
    """Layer 4 through the real NLU: a message no other layer flags, with a danger word."""
    number = "+15550100191"
    [check] = text(stack, "is it normal to feel like dying after the flu shot", number)
    assert "Are you safe" in check and "988" in check
    client = redis.asyncio.Redis.from_url(TEST_REDIS_URL)
    try:
        queue = HandoffQueue(client, keyring(stack.cfg), stack.cfg.redis_prefix)
        entry = asyncio.run(queue.entry(conversation_id(keyring(stack.cfg), "sms", number)))
    finally:
        asyncio.run(client.close())
    assert entry["priority"] == "urgent" and entry["reason"] == "safety_check"


def test_ordinary_messages_still_get_ordinary_answers(stack):
    office = load_office(stack.cfg.office_config)
    number = "+15550100192"
    assert text(stack, "what are your hours", number) == [office.faq_answer("ask_hours")]
    assert text(stack, "dying to know if you take my insurance lol", number) == [office.faq_answer("ask_insurance")]


def test_reminder_run_against_the_provider_stand_in(stack):
    [subscribed] = text(stack, "START")  # the demo number agrees to texts
    assert "subscribed" in subscribed
    env = {**os.environ, **stack.env}
    run = subprocess.run([sys.executable, "-m", "bot.cli", "remind", "--at", "2030-01-14T18:00:00+00:00"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "1 reminder(s) sent" in run.stdout
    with urllib.request.urlopen(f"{stack.cfg.sms_api_base}/_standin/messages", timeout=10) as resp:
        sent = json.loads(resp.read())["messages"]
    assert [m["To"] for m in sent] == [DEMO_NUMBER] and "Jan 15 at 9:30 AM" in sent[0]["Body"]
    [confirmed] = text(stack, "1")
    assert "confirmed" in confirmed


def test_rasa_and_actions_refuse_callers_without_the_secret(stack):
    for url in (f"{stack.cfg.rasa_url}/webhooks/patientbot/webhook", f"{stack.cfg.action_url}/webhook"):
        req = urllib.request.Request(url, data=b'{"sender": "x", "text": "hi", "next_action": "action_answer_faq"}',
                                     headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=10)
        assert err.value.code == 403


def _listening_addresses(port: int) -> List[str]:
    """Local addresses with a TCP socket listening on ``port``, read from /proc/net."""
    found = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            local, state = fields[1], fields[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A = LISTEN
                raw = bytes.fromhex(address)
                if width == 8:
                    found.append(".".join(str(b) for b in reversed(raw)))
                else:  # IPv6 in four little-endian 32-bit words
                    words = [raw[i:i + 4][::-1] for i in range(0, 16, 4)]
                    found.append(b"".join(words).hex())
    return found


def test_services_listen_on_loopback_only(stack):
    loopback = {"127.0.0.1", "0" * 31 + "1"}
    for port in (stack.cfg.gateway_port, stack.cfg.rasa_port, stack.cfg.action_port):
        addresses = _listening_addresses(port)
        assert addresses, f"nothing listens on {port}"
        assert set(addresses) <= loopback, (port, addresses)


def test_rasa_and_actions_yield_the_cpu_to_the_gateway(stack):
    """Rasa and the action server run under SCHED_IDLE (NLU_SCHED_IDLE, on by default): when the
    gateway or Redis wake, Linux gives them the CPU at once, so safety answers never queue
    behind the NLU's CPU work. The gateway keeps the normal policy."""
    import os

    policy = {name: os.sched_getscheduler(stack.running(name)) for name in ("rasa", "actions", "gateway")}
    assert policy == {"rasa": os.SCHED_IDLE, "actions": os.SCHED_IDLE, "gateway": os.SCHED_OTHER}, policy


def test_nothing_readable_in_redis_or_logs(stack):
    text(stack, "my dob is 01/01/1980 and my name is Alex Demopatient")
    needles = ["5550100101", "555-010-0101", "Alex", "Demopatient", "1980-01-01", "01/01/1980",
               "when is my appointment", "what are your hours", "Annual physical", "Routine check-up"]
    blob = redis_dump(stack.cfg.redis_prefix).decode("utf-8", "replace")
    assert any(k.startswith(f"{stack.cfg.redis_prefix}tracker:") for k in blob.splitlines())
    assert f"{stack.cfg.redis_prefix}audit" in blob and "unexpected type" not in blob
    logs = "\n".join(stack.log_file(n).read_text(errors="replace") for n in ("actions", "rasa", "gateway"))
    assert " DEBUG " in stack.log_file("gateway").read_text()  # the stack really ran at DEBUG
    for needle in needles:
        assert needle not in blob, f"{needle!r} found in Redis"
        assert needle not in logs, f"{needle!r} found in the logs"


def test_misconfigured_tracker_store_is_refused(stack, tmp_path):
    """Rasa started with a tracker store it cannot load falls back to memory; we must refuse."""
    bad = tmp_path / "endpoints.yml"
    bad.write_text((ROOT / "endpoints.yml").read_text().replace(
        "bot.storage.tracker_store.EncryptedRedisTrackerStore", "bot.storage.tracker_store.NoSuchStore"))
    port = _free_port()
    env = stack.child_env()
    proc = subprocess.Popen(
        [rasa_bin(), "run", "--model", str(model_path()), "--endpoints", str(bad),
         "--credentials", str(ROOT / "credentials.yml"), "--interface", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        headers = {"X-Patientbot-Secret": stack.cfg.rasa_secret, "Content-Type": "application/json"}
        status = None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/webhooks/patientbot/health", headers=headers)
            try:
                urllib.request.urlopen(req, timeout=3)
                status = 200
            except urllib.error.HTTPError as exc:
                status = exc.code
                body = exc.read().decode()
                if status == 503 and "tracker store" in body:
                    break
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(1)
        assert status == 503, "health must refuse an in-memory tracker store"
        req = urllib.request.Request(f"http://127.0.0.1:{port}/webhooks/patientbot/webhook",
                                     data=b'{"sender": "sms-x", "text": "hi"}', headers=headers)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=10)
        assert err.value.code == 503
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


def test_key_rotation_while_the_stack_serves(stack):
    """A data-key rotation runs online: the conversation goes on across it, its tracker is
    re-sealed under the new key, and the old key is destroyed."""
    from bot.storage.crypto import KeyStore, key_id_of, key_provider

    office = load_office(stack.cfg.office_config)
    number = "+15550100177"  # synthetic
    assert text(stack, "what are your hours", number) == [office.faq_answer("ask_hours")]
    client = redis.Redis.from_url(TEST_REDIS_URL)
    tracker_key = f"{stack.cfg.redis_prefix}tracker:{conversation_id(keyring(stack.cfg), 'sms', number)}"
    old = key_id_of(client.get(tracker_key))
    run = subprocess.run([sys.executable, "-m", "bot.cli", "keys", "rotate"], capture_output=True, text=True,
                         env={**os.environ, **stack.cfg.extra}, timeout=300)
    assert run.returncode == 0, run.stderr
    assert key_id_of(client.get(tracker_key)) not in (None, old)
    assert text(stack, "where do I park", number) == [office.faq_answer("ask_parking")]
    fresh = KeyStore(client, key_provider(stack.cfg), stack.cfg.redis_prefix).load()
    assert old not in fresh.key_ids
    tracker = fresh.decrypt_text(client.get(tracker_key), tracker_key)
    assert "what are your hours" in tracker and "where do I park" in tracker  # one conversation, whole


def test_an_unsure_reading_is_asked_about_and_the_answer_is_learned(stack):
    """Two close readings: the bot asks with numbers, "2" gets the second one's answer, and
    the message goes to the review inbox labelled with the patient's pick."""
    from bot.nlu.inbox import ReviewInbox
    from bot.nlu.scrub import Scrubber

    office = load_office(stack.cfg.office_config)
    number = "+15550100193"
    [question] = text(stack, "the shot and the bill", number)
    assert "1) vaccines and flu shots" in question and "2) a bill or payment" in question
    assert text(stack, "2", number) == [office.faq_answer("ask_billing")]
    assert text(stack, "2", number) != [office.faq_answer("ask_billing")]  # a pick answers one question only
    client = redis.asyncio.Redis.from_url(TEST_REDIS_URL)
    try:
        inbox = ReviewInbox(client, keyring(stack.cfg), stack.cfg.redis_prefix)
        items = asyncio.run(inbox.items(Scrubber()))
    finally:
        asyncio.run(client.close())
    [item] = [i for i in items if i.text == "the shot and the bill"]
    assert (item.reason, item.predicted) == ("clarified", "ask_billing")


def test_a_shared_phone_switches_to_the_other_patients_details(stack):
    """Issue 18: two synthetic patients share the demo number. Verified as one (the stack runs
    without IDV_REQUIRE_CODE, as it starts by default), the other's date of birth switches the
    session to them, and "when is my appointment" then answers with theirs; no reply names
    anyone, and no date reaches the bot."""
    from bot.core import replies
    from bot.records.identity import IdentityRegistry, request_verification

    office = load_office(stack.cfg.office_config)
    conv = conversation_id(keyring(stack.cfg), "sms", DEMO_NUMBER)

    async def identity(do):
        client = redis.asyncio.Redis.from_url(TEST_REDIS_URL)
        try:
            return await do(IdentityRegistry(client, keyring(stack.cfg), stack.cfg.redis_prefix))
        finally:
            await client.close()

    # As the appointment action asks before an answer that needs a verified patient.
    asyncio.run(identity(lambda registry: request_verification(registry, conv, "ask_appointment_details")))
    try:
        [first] = text(stack, "01/01/1980")  # demo-patient-1: verified, the question answered
        assert "Jan 15" in first and "9:30 AM" in first
        assert text(stack, "06/15/2012") == [replies.switched(office)]  # demo-patient-2
        [second] = text(stack, "when is my appointment")
        assert "Jan 22" in second and "3:00 PM" in second
        assert text(stack, "my dob is 06/15/2012") == [replies.same_patient(office)]
        assert text(stack, "01/01/1980") == [replies.switched(office)]
        [back] = text(stack, "when is my appointment")
        assert "Jan 15" in back
    finally:
        asyncio.run(identity(lambda registry: registry.end(conv)))
