"""Identity in web chat, through the pipeline against the real Redis, a stand-in Rasa and the SMS
provider stand-in (tests/gateway_helpers.py): the number on file, then the date of birth, then a
code texted to the number on file; the same replies whether or not the number or the date is
on file; lock-outs; web STOP/HELP change no consent; "sign out". The web transport (socket.io)
is tested with the widget; here the pipeline gets the ``Inbound`` the transport would give it.

Synthetic demo bundle (data/demo/synthetic_bundle.json): demo-patient-1 (1980-01-01) and
demo-patient-2 (2012-06-15) share +15550100101; demo-patient-3 (1975-11-30) is +15550100102.
"""
from __future__ import annotations

import asyncio
import logging
import re
import secrets
from typing import List, Tuple

import pytest

from bot.conversation.inbound import Inbound
from bot.conversation.verification import ask_to_verify
from bot.conversation.web_commands import sign_out
from bot.core import replies
from bot.records.fhir import load_bundle_file
from bot.records.identity import pending_verification
from bot.records.web_binding import BINDING_TTL, WebBindings
from bot.storage.crypto import conversation_id, phone_index
from channels.gateway.app_keys import PIPELINE
from tests.conftest import redis_dump
from tests.gateway_helpers import StubRasa, gateway_with_provider
from tests.stack_helpers import BUNDLE

SHARED, ALONE, NOT_ON_FILE = "+15550100101", "+15550100102", "+15550100177"  # synthetic
ALEX_DOB, SAM_DOB, PAT3_DOB = "01/01/1980", "06/15/2012", "11/30/1975"  # synthetic patients 1, 2, 3
INTENT = "ask_appointment_specifics"


@pytest.fixture
async def web(settings_env, aiohttp_server, aiohttp_client, monkeypatch):
    """(pipeline, stand-in Rasa, SMS provider stand-in): the demo bundle loaded."""
    stub = StubRasa(settings_env["RASA_GATEWAY_SECRET"])
    _, provider, _, app = await gateway_with_provider(stub, settings_env, aiohttp_server, aiohttp_client, monkeypatch)
    pipeline = app[PIPELINE]
    await pipeline.services.appointments.import_bundle(load_bundle_file(BUNDLE), "test")
    return pipeline, stub, provider


def new_chat(pipeline) -> Tuple[str, str]:
    """(web session id, conversation id) of a fresh browser."""
    sid = secrets.token_urlsafe(24)
    return sid, conversation_id(pipeline.services.keys, "web", sid)


async def say(pipeline, sid: str, text: str) -> List[str]:
    return await pipeline.handle(Inbound(channel="web", sender=sid, text=text, message_id=secrets.token_hex(12)))


def code_in(sent: dict) -> str:
    return re.search(r"\b(\d{6})\b", sent["Body"]).group(1)


async def verify(pipeline, provider, sid: str, conv: str, number: str, dob: str, intent: str = INTENT) -> List[str]:
    """The whole web verification: asked (as the action asks), number, date, the texted code."""
    services = pipeline.services
    assert await ask_to_verify(services, conv, "web", intent) == replies.ask_number(services.office)
    before = len(provider.sent)
    assert await say(pipeline, sid, number) == [replies.ask_dob_after_number(services.office)]
    assert await say(pipeline, sid, dob) == [replies.code_sent_if_matched(services.office)]
    await pipeline.drain()
    [texted] = provider.sent[before:]
    return await say(pipeline, sid, code_in(texted))


# -- the binding and the number on file --------------------------------------------------------------
async def test_a_binding_is_sealed_expires_in_12_hours_and_clears(settings_env, prefix, redis_sync):
    from bot.services import build_services

    services = build_services()
    bindings: WebBindings = services.web_bindings
    idx = phone_index(services.keys, ALONE)
    await bindings.bind("web-test-conv", idx, "number")
    found = await bindings.bound("web-test-conv")
    assert (found.phone_idx, found.via) == (idx, "number")
    key = f"{prefix}web:bind:web-test-conv"
    assert 0 < redis_sync.ttl(key) <= BINDING_TTL.total_seconds()
    assert idx.encode() not in redis_dump(prefix)  # sealed: not linkable to the SMS conversation
    with pytest.raises(ValueError):
        await bindings.bind("web-test-conv", idx, "typed")
    await bindings.clear("web-test-conv")
    assert await bindings.bound("web-test-conv") is None
    await services.close()


async def test_the_number_on_file_is_found_by_its_index_and_only_there(web):
    pipeline, _, _ = web
    services = pipeline.services
    assert await services.appointments.number_on_file(phone_index(services.keys, SHARED)) == SHARED
    assert await services.appointments.number_on_file(phone_index(services.keys, ALONE)) == ALONE
    assert await services.appointments.number_on_file(phone_index(services.keys, NOT_ON_FILE)) is None


# -- number, date of birth, code ------------------------------------------------------------------
async def test_number_then_dob_then_the_code_texted_to_the_number_on_file(web, caplog):
    pipeline, stub, provider = web
    services = pipeline.services
    sid, conv = new_chat(pipeline)
    with caplog.at_level(logging.DEBUG):
        assert await ask_to_verify(services, conv, "web", INTENT) == replies.ask_number(services.office)
        assert await say(pipeline, sid, "my cell is (555) 010-0102") == [replies.ask_dob_after_number(services.office)]
        assert await say(pipeline, sid, PAT3_DOB) == [replies.code_sent_if_matched(services.office)]
        await pipeline.drain()
        [texted] = provider.sent
        assert texted["To"] == ALONE and "web chat" in texted["Body"]
        assert await services.identity.session(conv, "web") is None  # not before the code
        assert stub.calls == []  # neither the number nor the date reached the bot
        assert await say(pipeline, sid, code_in(texted)) == ["hello from the bot"]
    assert [c["text"] for c in stub.calls] == ["/" + INTENT]  # the gateway's own command
    session = await services.identity.session(conv, "web")
    assert session.patient_ref == services.appointments.patient_ref("demo-patient-3")
    assert await pending_verification(services.identity, conv) is None
    for record in caplog.records:  # neither the number nor the date nor the code in any log line
        assert not re.search(r"010.?0102|1975|11/30", record.getMessage()), record.getMessage()
        assert code_in(texted) not in record.getMessage()


async def test_replies_are_byte_identical_whether_or_not_the_number_or_the_date_is_on_file(web):
    """Nobody can try numbers and dates of birth here to learn who is a patient: the known
    number with its date, the known number with a wrong date, a number not on file."""
    pipeline, stub, provider = web
    seen = []
    for number, dob in ((ALONE, PAT3_DOB), (ALONE, "02/02/1990"), (NOT_ON_FILE, PAT3_DOB)):
        sid, conv = new_chat(pipeline)
        asked = await ask_to_verify(pipeline.services, conv, "web", INTENT)
        seen.append([asked, *(await say(pipeline, sid, number)), *(await say(pipeline, sid, dob))])
    assert seen[0] == seen[1] == seen[2]
    assert all(isinstance(r, str) for r in seen[0]) and len(seen[0]) == 3
    await pipeline.drain()
    assert [m["To"] for m in provider.sent] == [ALONE]  # only the match got a code
    assert stub.calls == []


async def test_the_reply_to_the_date_does_not_wait_for_the_code(web):
    """The code is texted in the background: the reply's timing does not tell a match."""
    pipeline, _, _ = web
    release, calls = asyncio.Event(), []

    async def blocked_send(to: str, conversation: str, text: str) -> bool:
        calls.append((to, conversation, text))
        await release.wait()
        return True

    pipeline.send_code = blocked_send
    sid, conv = new_chat(pipeline)
    await ask_to_verify(pipeline.services, conv, "web", INTENT)
    await say(pipeline, sid, ALONE)
    answer = await asyncio.wait_for(say(pipeline, sid, PAT3_DOB), 5)  # returns while the send is held
    assert answer == [replies.code_sent_if_matched(pipeline.services.office)]
    await asyncio.sleep(0)
    assert not release.is_set()
    release.set()
    await pipeline.drain()
    [(to, conversation, text)] = calls
    assert (to, conversation) == (ALONE, conv) and re.search(r"\b\d{6}\b", text)


async def test_a_code_goes_only_to_the_number_on_file(web):
    """A number typed that is not on file gets nothing, whatever date follows; a number on
    file typed in another format gets the code at the number as the records hold it; a
    number typed after a secure link bound the chat does not replace the link's."""
    pipeline, _, provider = web
    services = pipeline.services
    sid, conv = new_chat(pipeline)
    await ask_to_verify(services, conv, "web", INTENT)
    assert await say(pipeline, sid, "555.010.0177") == [replies.ask_dob_after_number(services.office)]
    assert (await services.web_bindings.bound(conv)).phone_idx == phone_index(services.keys, NOT_ON_FILE)
    for dob in (ALEX_DOB, SAM_DOB, PAT3_DOB):
        await say(pipeline, sid, dob)
    await pipeline.drain()
    assert provider.sent == []

    sid, conv = new_chat(pipeline)
    await services.web_bindings.bind(conv, phone_index(services.keys, ALONE), "link")
    assert await ask_to_verify(services, conv, "web", INTENT) == replies.ask_dob(services.office)  # no number asked
    assert await say(pipeline, sid, "555 010 0177") == [replies.ask_dob(services.office)]
    await say(pipeline, sid, PAT3_DOB)
    await pipeline.drain()
    assert [m["To"] for m in provider.sent] == [ALONE]
    assert (await services.web_bindings.bound(conv)).via == "link"


async def test_a_number_typed_again_replaces_the_first_and_voids_its_code(web):
    pipeline, _, provider = web
    services = pipeline.services
    sid, conv = new_chat(pipeline)
    await ask_to_verify(services, conv, "web", INTENT)
    await say(pipeline, sid, ALONE)
    await say(pipeline, sid, PAT3_DOB)
    await pipeline.drain()
    [first] = provider.sent
    await say(pipeline, sid, SHARED)  # a second number: the code sent to the first is void
    assert await say(pipeline, sid, code_in(first)) == [replies.verification_failed(services.office, "web")]
    assert await services.identity.session(conv, "web") is None


async def test_wrong_dates_count_towards_the_lock_out_though_the_reply_is_the_same(web):
    pipeline, stub, provider = web
    services = pipeline.services
    office = services.office
    sid, conv = new_chat(pipeline)
    await ask_to_verify(services, conv, "web", INTENT)
    await say(pipeline, sid, ALONE)
    for wrong in ("02/02/1990", "03/03/1991", "04/04/1992"):
        assert await say(pipeline, sid, wrong) == [replies.code_sent_if_matched(office)]
    assert await services.identity.lock_state(conv) == "short"
    assert await services.handoff.entry(conv) is None  # not told at the date: the reply would differ
    assert await say(pipeline, sid, PAT3_DOB) == [replies.code_sent_if_matched(office)]  # locked: no code
    await pipeline.drain()
    assert provider.sent == []
    assert await say(pipeline, sid, "123456") == [replies.verification_failed(office, "web")]
    assert (await services.handoff.entry(conv))["reason"] == "verification_lockout"  # told at the code
    assert await services.identity.session(conv, "web") is None and stub.calls == []


async def test_wrong_codes_lock_out_and_the_right_code_then_fails(web):
    pipeline, _, provider = web
    services = pipeline.services
    sid, conv = new_chat(pipeline)
    await ask_to_verify(services, conv, "web", INTENT)
    await say(pipeline, sid, ALONE)
    await say(pipeline, sid, PAT3_DOB)
    await pipeline.drain()
    code = code_in(provider.sent[0])
    wrong = [c for c in ("111111", "222222", "333333") if c != code]
    for guess in wrong[:2]:
        assert await say(pipeline, sid, guess) == [replies.verification_failed(services.office, "web")]
    assert await services.identity.lock_state(conv) is None
    await say(pipeline, sid, "444444" if code != "444444" else "555555")
    assert await services.identity.lock_state(conv) == "short"
    await say(pipeline, sid, code)
    assert await services.identity.session(conv, "web") is None


async def test_a_code_typed_after_a_wrong_date_fails_and_counts(web):
    pipeline, _, _ = web
    services = pipeline.services
    sid, conv = new_chat(pipeline)
    await ask_to_verify(services, conv, "web", INTENT)
    await say(pipeline, sid, ALONE)
    await say(pipeline, sid, "02/02/1990")
    assert await say(pipeline, sid, "123456") == [replies.verification_failed(services.office, "web")]
    assert await say(pipeline, sid, "654321") == [replies.verification_failed(services.office, "web")]
    assert await services.identity.lock_state(conv) == "short"  # 1 date + 2 codes


async def test_codes_to_one_number_are_limited_across_browsers(web):
    """A browser can start any number of chats: the number's owner gets at most 5 codes an hour."""
    pipeline, _, provider = web
    for _ in range(7):
        sid, conv = new_chat(pipeline)
        await ask_to_verify(pipeline.services, conv, "web", INTENT)
        await say(pipeline, sid, ALONE)
        assert await say(pipeline, sid, PAT3_DOB) == [replies.code_sent_if_matched(pipeline.services.office)]
    await pipeline.drain()
    assert len(provider.sent) == 5


async def test_an_opted_out_number_gets_no_code(web):
    pipeline, _, provider = web
    services = pipeline.services
    await services.consent.record_opt_out(phone_index(services.keys, ALONE), "keyword", "STOP")
    sid, conv = new_chat(pipeline)
    await ask_to_verify(services, conv, "web", INTENT)
    await say(pipeline, sid, ALONE)
    assert await say(pipeline, sid, PAT3_DOB) == [replies.code_sent_if_matched(services.office)]
    await pipeline.drain()
    assert provider.sent == []


async def test_nothing_typed_is_kept_readable(web, prefix):
    pipeline, _, provider = web
    sid, conv = new_chat(pipeline)
    await verify(pipeline, provider, sid, conv, "(555) 010-0102", PAT3_DOB)
    dump = redis_dump(prefix)
    for typed in (b"5550100102", b"010-0102", b"1975", b"11/30"):
        assert typed not in dump


# -- STOP, HELP and sign out in web chat --------------------------------------------------------------
@pytest.mark.parametrize("word", ["STOP", "unsubscribe", "stop texting me", "ALTO"])
async def test_web_stop_explains_and_changes_no_consent(web, word):
    pipeline, stub, _ = web
    services = pipeline.services
    idx = phone_index(services.keys, ALONE)
    await services.consent.record_opt_in(idx, "keyword", "START")
    before, history = await services.consent.state(idx), await services.consent.history(idx)
    sid, conv = new_chat(pipeline)
    await services.web_bindings.bind(conv, idx, "number")  # even a chat about that very number
    [answer] = await say(pipeline, sid, word)
    assert ("text STOP to (555) 010-0000" in answer or "envie ALTO al (555) 010-0000" in answer)
    assert "Sign out" in answer
    assert await services.consent.state(idx) == before and await services.consent.history(idx) == history
    assert stub.calls == []
    events = [(e.action, e.outcome) for e in await services.audit.events()]
    assert ("web_keyword", "consent_unchanged") in events and ("consent_opt_out", "recorded") not in events


async def test_web_help_and_start_and_a_bare_cancel(web):
    pipeline, stub, _ = web
    office = pipeline.services.office
    sid, _ = new_chat(pipeline)
    [help_answer] = await say(pipeline, sid, "HELP")
    assert office.phone in help_answer and office.address in help_answer
    [start] = await say(pipeline, sid, "START")
    assert "text START to" in start
    assert stub.calls == []
    assert await say(pipeline, sid, "cancel") == ["hello from the bot"]  # about an appointment here


async def test_sign_out_ends_the_session_and_the_binding(web):
    pipeline, stub, provider = web
    services = pipeline.services
    sid, conv = new_chat(pipeline)
    await verify(pipeline, provider, sid, conv, ALONE, PAT3_DOB)
    assert await services.identity.session(conv, "web") is not None
    assert await say(pipeline, sid, "Sign out") == [replies_signed_out()]
    assert await services.identity.session(conv, "web") is None
    assert await services.web_bindings.bound(conv) is None
    calls = len(stub.calls)
    assert await ask_to_verify(services, conv, "web", INTENT) == replies.ask_number(services.office)  # from scratch
    assert len(stub.calls) == calls
    assert ("web_signed_out", "ok") in [(e.action, e.outcome) for e in await services.audit.events()]


async def test_the_sign_out_button_path_ends_a_verification_in_progress(web):
    pipeline, _, provider = web
    services = pipeline.services
    sid, conv = new_chat(pipeline)
    await ask_to_verify(services, conv, "web", INTENT)
    await say(pipeline, sid, ALONE)
    await say(pipeline, sid, PAT3_DOB)
    await pipeline.drain()
    await sign_out(services, conv)  # what the page's button calls
    assert await pending_verification(services.identity, conv) is None
    assert not await services.identity.awaiting_code(conv)
    assert await services.web_bindings.bound(conv) is None
    await ask_to_verify(services, conv, "web", INTENT)
    await say(pipeline, sid, ALONE)
    assert await say(pipeline, sid, code_in(provider.sent[0])) == [replies.verification_failed(services.office, "web")]
    assert await services.identity.session(conv, "web") is None


def replies_signed_out() -> str:
    from bot.conversation import own_replies

    return own_replies.signed_out()


# -- shared phones in web chat -------------------------------------------------------------------------
async def test_a_shared_phones_other_patient_switches_through_a_code(web):
    pipeline, stub, provider = web
    services = pipeline.services
    office = services.office
    ref = services.appointments.patient_ref
    sid, conv = new_chat(pipeline)
    await verify(pipeline, provider, sid, conv, SHARED, ALEX_DOB)
    assert (await services.identity.session(conv, "web")).patient_ref == ref("demo-patient-1")

    assert await say(pipeline, sid, ALEX_DOB) == [replies.same_patient(office)]  # the same patient: confirmed
    assert await say(pipeline, sid, "and my son's dob is " + SAM_DOB) == [replies.code_sent_if_matched(office)]
    assert (await services.identity.session(conv, "web")).patient_ref == ref("demo-patient-1")  # until the code
    await pipeline.drain()
    texted = provider.sent[-1]
    assert texted["To"] == SHARED
    calls = len(stub.calls)
    assert await say(pipeline, sid, code_in(texted)) == [replies.switched(office)]
    assert len(stub.calls) == calls  # the switch is answered by the gateway, no intent replayed
    assert (await services.identity.session(conv, "web")).patient_ref == ref("demo-patient-2")
    outcomes = [e.outcome for e in await services.audit.events() if e.action == "identity_verification"]
    assert outcomes[-1] == "switched" and "confirmed" in outcomes
    for reply in (replies.switched(office), replies.same_patient(office)):
        assert "Demopatient" not in reply and "Alex" not in reply


async def test_a_date_in_an_unverified_chat_still_goes_to_the_bot_masked(web):
    pipeline, stub, _ = web
    sid, _ = new_chat(pipeline)
    await say(pipeline, sid, SAM_DOB)
    assert [c["text"] for c in stub.calls] == ["[date]"]


def test_the_web_code_step_is_on_unless_turned_off():
    from bot.config import load_settings
    from tests.conftest import make_test_env

    assert load_settings(make_test_env("x:")).webchat_require_code
    assert not load_settings(make_test_env("x:", WEBCHAT_REQUIRE_CODE="false")).webchat_require_code
