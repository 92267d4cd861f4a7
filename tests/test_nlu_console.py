"""The review inbox in the staff console (admin role): scrubbed texts only, label / propose /
discard with CSRF, written to a copy of the project's data, audited with the admin's id.

Runs on the in-process gateway of tests/test_staff_console.py (stand-in Rasa); the generic
every-route-with-every-role test there covers these routes too (no session, agent, admin).
"""
from __future__ import annotations

import re
import shutil

import pytest

from bot.records.appointments import AppointmentStore
from bot.config import ROOT
from bot.records.fhir import load_bundle_file
from bot.nlu.inbox import ReviewInbox
from tests.test_sms_outbound import stack  # noqa: F401 - the gateway + stand-in Rasa + provider stand-in
from tests.test_staff_console import _audit, _plain_http_cookies, console  # noqa: F401 - fixtures

PHI_TEXT = "Alex Demopatient here 555-010-0166, dob 01/01/1980, where do i park the van"  # synthetic
PHI = ("Alex", "Demopatient", "555-010-0166", "01/01/1980")


@pytest.fixture(autouse=True)
def project(tmp_path, monkeypatch):
    """The console writes labels into a copy of the project, never the repository's data/."""
    shutil.copytree(ROOT / "data", tmp_path / "data", ignore=shutil.ignore_patterns("demo"))
    shutil.copy(ROOT / "domain.yml", tmp_path / "domain.yml")
    monkeypatch.setenv("NLU_PROJECT_DIR", str(tmp_path))
    return tmp_path


async def _fill_inbox(console):
    cfg = console["stack"][3]
    rc, keys = console["rc"], console["keys"]
    await AppointmentStore(rc, keys, cfg.redis_prefix).import_bundle(
        load_bundle_file(ROOT / "data" / "demo" / "synthetic_bundle.json"), "test")
    inbox = ReviewInbox(rc, keys, cfg.redis_prefix)
    return (await inbox.capture(PHI_TEXT, "provide_dob", 0.62, "low_confidence"),
            await inbox.capture("can we do a video visit", "ask_portal", 0.4, "low_confidence"),
            await inbox.capture("asdf", "greet", 0.3, "fallback"))


def _item_row(body: str, item_id: str) -> str:
    return re.search(rf'<tr data-item="{item_id}">(.*?)</tr>', body, re.S).group(1)


async def test_admin_sees_scrubbed_inbox_and_labels_proposes_discards(console, project):
    phi_item, video_item, junk_item = await _fill_inbox(console)
    admin = await console["sign_in"]("ada")
    resp, body = await admin.page("/staff/admin/nlu")
    assert resp.status == 200
    for fragment in PHI:
        assert fragment not in body
    assert "[name] [name] here [phone], dob [date], where do i park the van" in _item_row(body, phi_item)
    assert '<option value="ask_parking">' in body and "nlu_fallback" not in body

    agent = await console["sign_in"]("alice")
    resp, body = await agent.page("/staff/admin/nlu")
    assert resp.status == 403 and "video" not in body
    resp = await agent.post(f"/staff/admin/nlu/{phi_item}/label", {"intent": "ask_parking"})
    assert resp.status == 403
    resp = await admin.post(f"/staff/admin/nlu/{phi_item}/label", {"intent": "ask_parking"}, csrf=False)
    assert resp.status == 403
    assert "where do i park the van" not in (project / "data" / "nlu.yml").read_text()

    resp = await admin.post(f"/staff/admin/nlu/{phi_item}/label", {"intent": "ask_parking"})
    assert resp.status == 303 and resp.headers["Location"] == "/staff/admin/nlu"
    data = (project / "data" / "nlu.yml").read_text()
    assert "      - [name] [name] here [phone], dob [date], where do i park the van\n" in data
    for fragment in PHI:
        assert fragment not in data

    resp = await admin.post(f"/staff/admin/nlu/{video_item}/label", {"intent": "ask_video_visit"})
    assert resp.status == 303
    _, body = await admin.page("/staff/admin/nlu")
    assert "Not added: ask_video_visit is not an intent of domain.yml" in body
    assert (await admin.post(f"/staff/admin/nlu/{video_item}/propose", {"intent": "ask_video_visit"})).status == 303
    assert (await admin.post(f"/staff/admin/nlu/{junk_item}/discard")).status == 303
    _, body = await admin.page("/staff/admin/nlu")
    assert "Discarded." in body
    assert 'data-item="' + phi_item not in body and 'data-item="' + junk_item not in body
    assert "proposed as <code>ask_video_visit</code>" in _item_row(body, video_item)

    resp = await admin.post(f"/staff/admin/nlu/{junk_item}/discard")  # already gone: said so, no error
    assert resp.status == 303
    _, body = await admin.page("/staff/admin/nlu")
    assert "That message is no longer in the inbox." in body

    ada = f"staff:{console['staff']['ada'].member.id}"
    events = [(e.action, e.outcome, e.subject) for e in await _audit(console) if e.action.startswith("nlu_")]
    assert ("nlu_labelled", "ok", phi_item) in events
    assert ("nlu_labelled", "refused", video_item) in events
    assert ("nlu_intent_proposed", "ok", video_item) in events
    assert ("nlu_discarded", "ok", junk_item) in events
    assert all(e.actor == ada for e in await _audit(console) if e.action.startswith("nlu_"))


async def test_staff_flag_a_patient_message_into_the_inbox(console):
    from tests.test_staff_console import _escalate

    await _escalate(console)
    stub = console["stack"][1]
    stub.transcript = [
        {"kind": "patient", "text": "hi", "timestamp": 1000.5},
        {"kind": "bot", "text": "Hello! How can I help?", "timestamp": 1001.0},
        {"kind": "patient", "text": "Alex Demopatient 555-010-0166 whens the van lot open", "timestamp": 1002.25},
        {"kind": "bot", "text": "Sorry, I didn't understand that.", "timestamp": 1003.0},
    ]
    conv = console["conv"]
    agent = await console["sign_in"]("alice")
    _, page = await agent.page(f"/staff/conversations/{conv}")
    assert page.count(f'action="/staff/conversations/{conv}/flag"') == 2  # patient messages only
    resp = await agent.post(f"/staff/conversations/{conv}/flag", {"at": "1002.25"})
    assert resp.status == 303 and resp.headers["Location"] == f"/staff/conversations/{conv}"
    _, page = await agent.page(f"/staff/conversations/{conv}")
    assert "Flagged for the admins&#39; review inbox." in page or "Flagged for the admins' review inbox." in page
    assert (await agent.post(f"/staff/conversations/{conv}/flag", {"at": "999"})).status == 303
    _, page = await agent.page(f"/staff/conversations/{conv}")
    assert "There is no such patient message to flag." in page

    await _fill_inbox(console)  # the demo patients, whose names the scrubber then knows
    admin = await console["sign_in"]("ada")
    _, body = await admin.page("/staff/admin/nlu")
    assert "[name] [name] [phone] whens the van lot open" in body and "staff flag" in body
    for fragment in ("Demopatient", "555-010-0166"):
        assert fragment not in body
    flagged = [e for e in await _audit(console) if e.action == "nlu_flagged"]
    assert len(flagged) == 1 and flagged[0].subject == conv
    assert flagged[0].actor == f"staff:{console['staff']['alice'].member.id}"
