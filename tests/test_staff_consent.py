"""PHI by text in the staff console (channels/staff/consent_views.py), in process against the
real Redis, as tests/test_staff_console.py tests the console: the conversation page shows the
number's ``phi_by_text``; staff record a written authorization (source, the exact words with
the risk notice, a confirmation) or its withdrawal; CSRF as on every console form; audited with
the scope and source only; not available for a web conversation; and the patient's next PHI
question by text follows the new state."""
from __future__ import annotations

import html
import re

from bot.core import replies
from bot.records.consent import ConsentRegistry
from bot.storage.crypto import phone_index
from channels.staff.app_keys import STAFF_SERVICES
from tests.gateway_helpers import SENDER, messages, post, sms
from tests.test_staff_console import _audit, _escalate, _plain_http_cookies, console, stack  # noqa: F401 - fixtures

WORDS = "(synthetic) I authorize health information by text. I was told texts are not secure."


def _registry(console) -> ConsentRegistry:
    return ConsentRegistry(console["rc"], console["keys"], console["stack"][3].redis_prefix)


def _idx(console) -> str:
    return phone_index(console["keys"], SENDER)


async def _grant(browser, conv, **form):
    return await browser.post(f"/staff/conversations/{conv}/phi-by-text/grant",
                              {"source": "signed_form", "text": WORDS, "confirm": "yes", **form})


async def test_the_page_shows_the_state_and_the_standard_words_with_the_risk_notice(console):
    await _escalate(console)
    agent, conv = await console["sign_in"]("alice"), console["conv"]
    resp, body = await agent.page(f"/staff/conversations/{conv}")
    assert resp.status == 200 and "Not authorized" in body
    standard = replies.phi_by_text_authorization(console["stack"][4][STAFF_SERVICES].office)
    assert html.escape(standard) in body and "not encrypted" in standard and "STOP" in standard
    assert 'value="signed_form"' in body and 'value="web_form"' in body and 'name="confirm"' in body


async def test_an_agent_records_and_withdraws_a_written_authorization(console):
    await _escalate(console)
    agent, conv = await console["sign_in"]("alice"), console["conv"]
    assert (await _grant(agent, conv)).status == 303
    state = await _registry(console).state(_idx(console))
    assert state.phi_by_text
    last = (await _registry(console).history(_idx(console)))[-1]
    assert (last["source"], last["text"]) == ("signed_form", WORDS)
    resp, body = await agent.page(f"/staff/conversations/{conv}")
    assert "Recorded: this number may now get health information by text" in body
    assert re.search(r"Authorized: .*\(Signed form on file, since [A-Z][a-z]{2} \d\d \d\d:\d\d\)", body)

    assert (await agent.post(f"/staff/conversations/{conv}/phi-by-text/revoke", {"text": ""})).status == 303
    assert not (await _registry(console).state(_idx(console))).phi_by_text
    resp, body = await agent.page(f"/staff/conversations/{conv}")
    assert "Withdrawn: this number gets a secure link" in body and "Not authorized" in body

    events = [(e.action, e.subject, e.outcome, e.details) for e in await _audit(console)
              if e.action.startswith("consent_scope")]
    assert events == [("consent_scope_granted", conv, "ok", {"scope": "phi_by_text", "source": "signed_form"}),
                      ("consent_scope_revoked", conv, "ok", {"scope": "phi_by_text", "source": "staff"})]
    actor = f"staff:{console['staff']['alice'].member.id}"
    assert all(e.actor == actor for e in await _audit(console) if e.action.startswith("consent_scope"))


async def test_an_unconfirmed_or_sourceless_grant_records_nothing(console):
    await _escalate(console)
    agent, conv = await console["sign_in"]("alice"), console["conv"]
    for form in ({"confirm": ""}, {"source": "staff"}, {"source": "keyword"}, {"text": "   "}):
        assert (await _grant(agent, conv, **form)).status == 303
        resp, body = await agent.page(f"/staff/conversations/{conv}")
        assert "Not recorded" in body, form
    assert not (await _registry(console).state(_idx(console))).phi_by_text
    assert await _registry(console).history(_idx(console)) == []
    outcomes = [e.outcome for e in await _audit(console) if e.action == "consent_scope_granted"]
    assert outcomes == ["incomplete"] * 4


async def test_a_grant_without_the_csrf_token_is_refused_and_records_nothing(console):
    await _escalate(console)
    agent, conv = await console["sign_in"]("alice"), console["conv"]
    resp = await agent.post(f"/staff/conversations/{conv}/phi-by-text/grant",
                            {"source": "signed_form", "text": WORDS, "confirm": "yes"}, csrf=False)
    assert resp.status == 403
    assert not (await _registry(console).state(_idx(console))).phi_by_text
    assert [e.action for e in await _audit(console) if e.action == "staff_csrf_refused"]


async def test_an_opted_out_number_must_text_start_first(console):
    client, stub, provider, cfg, app = console["stack"]
    await post(client, cfg, sms("STOP", "SM" + "71" * 16))
    await _escalate(console)
    agent, conv = await console["sign_in"]("alice"), console["conv"]
    resp, body = await agent.page(f"/staff/conversations/{conv}")
    assert "must text START" in body and 'id="phi-by-text-grant"' not in body
    assert (await _grant(agent, conv)).status == 303
    resp, body = await agent.page(f"/staff/conversations/{conv}")
    assert "Not recorded: this number has opted out" in body
    assert not (await _registry(console).state(_idx(console))).phi_by_text


async def test_not_available_for_a_web_conversation(console):
    web = "web-" + "b2" * 20  # a synthetic web chat conversation
    await console["queue"].escalate(web, "web", "patient_request")
    agent = await console["sign_in"]("alice")
    resp, body = await agent.page(f"/staff/conversations/{web}")
    assert resp.status == 200 and "Not available for this conversation" in body
    assert 'id="phi-by-text-grant"' not in body
    assert (await _grant(agent, web)).status == 303
    resp, body = await agent.page(f"/staff/conversations/{web}")
    assert "PHI by text applies to SMS conversations only" in body
    assert [e.outcome for e in await _audit(console) if e.action == "consent_scope_granted"] == ["not_sms"]


async def test_the_patients_next_phi_question_follows_the_console(console):
    """Stand-in Rasa answering with PHI to a verified patient: a link before the grant, the
    details after it, a link again after the withdrawal."""
    from tests.test_phi_by_text import _verified_session

    client, stub, provider, cfg, app = console["stack"]
    await _escalate(console)
    await console["queue"].hand_back(console["conv"])
    await _verified_session(cfg)
    stub.replies = [{"text": "synthetic visit reason", "phi_class": "phi"}]
    agent, conv = await console["sign_in"]("alice"), console["conv"]

    async def ask(n):
        return messages(await (await post(client, cfg, sms("what is it for", f"SM{n:032d}"))).text())

    assert "secure chat" in (await ask(1))[0]
    await _grant(agent, conv, source="web_form")
    assert await ask(2) == ["synthetic visit reason"]
    await agent.post(f"/staff/conversations/{conv}/phi-by-text/revoke", {"text": "(synthetic) stop please"})
    [again] = await ask(3)
    assert "secure chat" in again and "visit reason" not in again
