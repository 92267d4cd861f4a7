"""The staff console in a real browser against the whole running stack.

Debian's headless Chromium, driven by playwright: a staff member made with ``patientbot staff
add`` signs in with password and TOTP code, sees the conversation a synthetic patient escalated
by a signed SMS, claims it and replies; the reply reaches the patient's number at the SMS
provider stand-in; the patient's next text appears on the open page without a reload; resolving
hands the conversation back to the bot, which answers again and has the staff reply in its
tracker. Screenshots of the queue and the conversation go to results/screenshots/ (ignored).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request

import pytest
import redis

from bot.config import ROOT
from bot.storage.crypto import conversation_id, keyring
from bot.core.office import load_office
from bot.records.staff_accounts import current_code
from tests.conftest import TEST_REDIS_URL
from tests.test_e2e import stack, text  # noqa: F401 - the running-stack fixture

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = ROOT / "results" / "screenshots"
PATIENT = "+15550100142"  # synthetic (555-01xx numbers are reserved for fiction)
PASSWORD = "synthetic staff passphrase"
REPLY = "Hi, this is the front desk. A nurse will call you this afternoon."  # synthetic
FOLLOW_UP = "thanks, I'll keep my phone on"  # synthetic


def _standin_messages(stack):
    with urllib.request.urlopen(f"{stack.cfg.sms_api_base}/_standin/messages", timeout=10) as resp:
        return json.loads(resp.read())["messages"]


def _add_staff(stack, username: str) -> str:
    """``patientbot staff add`` against the stack's Redis; returns the TOTP secret it printed."""
    run = subprocess.run([sys.executable, "-m", "bot.cli", "staff", "add", username, "--role", "agent",
                          "--password-stdin"], input=PASSWORD + "\n", cwd=ROOT, env={**os.environ, **stack.env},
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    return re.search(r"^TOTP secret: ([A-Z2-7]+)$", run.stdout, re.M).group(1)


def test_staff_member_answers_an_escalated_conversation_in_the_browser(stack):
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"Debian's chromium is missing ({CHROMIUM}): scripts/setup.sh installs it "
                    "(apt-get install chromium); this test must not be skipped")
    from playwright.sync_api import expect, sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    cfg = stack.cfg
    conv = conversation_id(keyring(cfg), "sms", PATIENT)
    secret = _add_staff(stack, "nina")
    [notice] = text(stack, "can I talk to someone", PATIENT)
    assert "staff" in notice
    assert text(stack, "are you there?", PATIENT) == []  # silent from escalation on
    sent_before = len(_standin_messages(stack))

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(f"{cfg.public_base_url}/staff/login")
            page.get_by_label("Username").fill("nina")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_label("Code from your authenticator app").fill(current_code(secret))
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url("**/staff/queue")
            row = page.locator(f'#queue tr[data-conversation="{conv}"]')
            expect(row).to_contain_text("Asked for a person")
            expect(row).to_contain_text("waiting")
            expect(page.locator("#live-status")).to_contain_text("Live")
            page.screenshot(path=str(SCREENSHOTS / "queue.png"), full_page=True)

            row.get_by_role("link").click()
            page.wait_for_url(f"**/staff/conversations/{conv}")
            expect(page.locator(".transcript")).to_contain_text("can I talk to someone")
            expect(page.locator("#log")).to_contain_text("are you there?")
            page.get_by_role("button", name="Claim this conversation").click()
            expect(page.locator(".flash")).to_contain_text("You hold this conversation now")
            page.get_by_label("Reply to the patient").fill(REPLY)
            page.get_by_role("button", name="Send reply").click()
            expect(page.locator(".flash")).to_contain_text("Reply sent.")
            expect(page.locator("#log")).to_contain_text(REPLY)

            delivered = _standin_messages(stack)[sent_before:]
            assert [(m["To"], m["Body"]) for m in delivered] == [(PATIENT, REPLY)]

            # The patient answers; the open page shows it without a reload.
            expect(page.locator("#live-status")).to_contain_text("Live")
            page.evaluate("window.__noReload = true")
            assert text(stack, FOLLOW_UP, PATIENT) == []
            expect(page.locator("#log")).to_contain_text(FOLLOW_UP, timeout=10_000)
            assert page.evaluate("window.__noReload") is True
            page.screenshot(path=str(SCREENSHOTS / "conversation.png"), full_page=True)

            page.get_by_role("button", name="Resolve and hand back to the bot").click()
            page.wait_for_url("**/staff/queue")
            expect(page.locator(".flash")).to_contain_text("Handed back to the bot.")
            expect(page.locator(f'#queue tr[data-conversation="{conv}"]')).to_have_count(0)
        finally:
            browser.close()

    resumed = _standin_messages(stack)[sent_before + 1:]
    assert [m["To"] for m in resumed] == [PATIENT] and "automated assistant" in resumed[0]["Body"]
    office = load_office(cfg.office_config)
    assert text(stack, "what are your hours", PATIENT) == [office.faq_answer("ask_hours")]  # the bot is back

    # The Rasa tracker holds what staff said, so the conversation stays whole.
    key = f"{cfg.redis_prefix}tracker:{conv}"
    tracker = keyring(cfg).decrypt_text(redis.Redis.from_url(TEST_REDIS_URL).get(key).decode(), key)
    assert REPLY in tracker and resumed[0]["Body"] in tracker
    for png in ("queue.png", "conversation.png"):
        assert (SCREENSHOTS / png).stat().st_size > 10_000
