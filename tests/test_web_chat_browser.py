"""The web chat as a patient uses it: Debian's headless Chromium, driven by playwright, with the
real rasa-webchat widget the gateway serves, against the whole running stack.

One browser, one synthetic patient per test (555-01xx numbers, the demo bundle); each step
leaves a screenshot in results/screenshots/ (ignored by git, kept by CI as artefacts):

* "what are your hours" gets the office's answer;
* a health question asks for the number on file, the date of birth and the code texted to
  that number (taken from the SMS provider stand-in), then shows the details;
* an emergency gets the redirect at once;
* "can I talk to someone" and a reply typed in the staff console appears in the widget;
* a reload keeps the conversation and the verified session; a second browser given the first
  one's stored session id gets neither;
* by SMS, a health question gets a secure link; the link opens the chat, the patient verifies
  and reads the details there; the same link again gets the "expired" page.
"""
from __future__ import annotations

import json
import re
import urllib.request

import pytest

from bot.config import ROOT
from bot.core.office import load_office
from bot.records.staff_accounts import current_code
from bot.storage.crypto import conversation_id, keyring
from tests.test_e2e import stack, text  # noqa: F401 - the running-stack fixture
from tests.test_staff_browser import CHROMIUM, PASSWORD, _add_staff

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SCREENSHOTS = ROOT / "results" / "screenshots"
WAIT = 30_000  # ms: a holding deadline long enough for any answer on a loaded test machine
ASK = "what should I bring to my appointment"
ROBIN = ("+15550100102", "11/30/1975", "home blood pressure log")  # synthetic demo patient 3
ALEX = ("+15550100101", "01/01/1980", "bring your insurance card")  # synthetic demo patient 1
STAFF_REPLY = "Hi, this is the front desk (synthetic). We can see your message."


@pytest.fixture(scope="module")
def browser():
    if not __import__("os").access(CHROMIUM, __import__("os").X_OK):
        pytest.fail(f"Debian's chromium is missing ({CHROMIUM}): scripts/setup.sh installs it; this test must not be skipped")
    from playwright.sync_api import sync_playwright
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


def _standin_messages(stack):
    with urllib.request.urlopen(f"{stack.cfg.sms_api_base}/_standin/messages", timeout=10) as resp:
        return json.loads(resp.read())["messages"]


class Chat:
    """One browser's chat page."""

    def __init__(self, stack, browser, name: str):
        self.stack, self.name = stack, name
        self.context = browser.new_context(viewport={"width": 900, "height": 900})
        self.page = self.context.new_page()
        self.shots = 0

    def open(self, path: str = "/chat") -> None:
        self.page.goto(self.stack.cfg.public_base_url + path)
        self.page.locator(".rw-new-message").wait_for(timeout=WAIT)

    def say(self, message: str, expect_reply: str) -> str:
        """Type ``message``; wait for a new bot message holding ``expect_reply``; its text."""
        from playwright.sync_api import expect
        responses = self.page.locator(".rw-response")
        before = responses.count()
        box = self.page.locator(".rw-new-message")
        box.fill(message)
        box.press("Enter")
        expect(self.page.locator(".rw-client").last).to_contain_text(message, timeout=WAIT)
        expect(responses.nth(before)).to_be_visible(timeout=WAIT)
        new = self.page.locator(".rw-response", has_text=expect_reply)
        expect(new.last).to_be_visible(timeout=WAIT)
        return new.last.inner_text()

    def shot(self, step: str) -> None:
        self.shots += 1
        path = SCREENSHOTS / f"webchat-{self.name}-{self.shots}-{step}.png"
        self.page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 5_000

    def conversation(self) -> str:
        """This browser's conversation pseudonym, from its session cookie (as the gateway derives it)."""
        [cookie] = [c for c in self.context.cookies() if c["name"] == "pb_chat"]
        assert cookie["httpOnly"]
        return conversation_id(keyring(self.stack.cfg), "web", cookie["value"].split(".", 1)[0])

    def close(self) -> None:
        self.context.close()


def _code_texted_to(stack, number: str, since: int) -> str:
    sent = [m for m in _standin_messages(stack)[since:] if m["To"] == number]
    assert len(sent) == 1, sent
    return re.search(r"\b(\d{6})\b", sent[0]["Body"]).group(1)


def _verify(chat: Chat, stack, patient, with_number: bool) -> str:
    number, dob, detail = patient
    if with_number:
        chat.say(number[2:], "date of birth")  # typed as people do: 5550100102
    sent_before = len(_standin_messages(stack))
    chat.say(dob, "code")
    chat.shot("code-asked")
    return chat.say(_code_texted_to_eventually(stack, number, sent_before), detail)


def _code_texted_to_eventually(stack, number: str, since: int) -> str:
    """The code is texted in the background (the reply does not wait for it): poll the stand-in."""
    import time
    deadline = time.monotonic() + WAIT / 1000
    while time.monotonic() < deadline:
        if any(m["To"] == number for m in _standin_messages(stack)[since:]):
            return _code_texted_to(stack, number, since)
        time.sleep(0.2)
    raise AssertionError("no code was texted to the number on file")


def test_hours_health_details_and_an_emergency(stack, browser):
    office = load_office(stack.cfg.office_config)
    chat = Chat(stack, browser, "patient")
    try:
        chat.open()
        chat.shot("opened")
        assert chat.say("what are your hours", office.faq_answer("ask_hours")[:40])
        chat.shot("hours")
        chat.say(ASK, "mobile number")
        answer = _verify(chat, stack, ROBIN, with_number=True)
        assert ROBIN[2] in answer
        chat.shot("details")
        chat.say("I have crushing chest pain and I can't breathe", "911")
        chat.shot("emergency")
    finally:
        chat.close()


def _sign_in_staff(stack, browser, username: str):
    """A staff member's console page, signed in (password and TOTP), on the queue."""
    secret = _add_staff(stack, username)
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.goto(f"{stack.cfg.public_base_url}/staff/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Code from your authenticator app").fill(current_code(secret))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/staff/queue")
    return context, page


def test_a_staff_reply_reaches_the_widget_live_and_a_reload_keeps_the_chat(stack, browser):
    from playwright.sync_api import expect

    chat = Chat(stack, browser, "handoff")
    staff_context = None
    try:
        chat.open()
        chat.say("can I talk to someone", "staff")
        conv = chat.conversation()
        staff_context, console = _sign_in_staff(stack, browser, "wendy")
        row = console.locator(f'#queue tr[data-conversation="{conv}"]')
        expect(row).to_contain_text("Web chat")  # the console shows the channel
        row.get_by_role("link").click()
        console.wait_for_url(f"**/staff/conversations/{conv}")
        console.get_by_role("button", name="Claim this conversation").click()
        console.get_by_label("Reply to the patient").fill(STAFF_REPLY)
        console.get_by_role("button", name="Send reply").click()
        expect(console.locator(".flash")).to_contain_text("sent")
        console.screenshot(path=str(SCREENSHOTS / "webchat-handoff-console.png"), full_page=True)
        expect(chat.page.locator(".rw-response", has_text=STAFF_REPLY)).to_be_visible(timeout=WAIT)  # live
        chat.shot("staff-reply")

        chat.page.reload()  # the conversation stays, on the page and on the server
        chat.page.locator(".rw-new-message").wait_for(timeout=WAIT)
        expect(chat.page.locator(".rw-response", has_text=STAFF_REPLY)).to_be_visible(timeout=WAIT)
        assert chat.conversation() == conv
        chat.shot("reloaded")
    finally:
        if staff_context is not None:
            staff_context.close()
        chat.close()


def test_a_reload_keeps_verification_and_a_second_browser_gets_nothing_of_it(stack, browser):
    from playwright.sync_api import expect

    first = Chat(stack, browser, "first")
    second = Chat(stack, browser, "second")
    try:
        first.open()
        first.say(ASK, "mobile number")
        assert ROBIN[2] in _verify(first, stack, ROBIN, with_number=True)
        first.page.reload()
        first.page.locator(".rw-new-message").wait_for(timeout=WAIT)
        assert ROBIN[2] in first.say("and what do I bring again?", ROBIN[2])  # still verified after a reload
        first.shot("verified-after-reload")

        # A second browser given the session id the first one's widget keeps (what a page
        # script, a screenshot or a shoulder-surfer could learn), not its HttpOnly cookie.
        label = first.page.evaluate("JSON.parse(sessionStorage.getItem('chat_session')).session_id")
        assert label and label not in first.context.cookies()[0]["value"]
        second.page.goto(stack.cfg.public_base_url + "/chat/static/chat.css")  # the origin, to write its storage
        second.page.evaluate("id => sessionStorage.setItem('chat_session', JSON.stringify({session_id: id}))", label)
        second.open()
        assert second.conversation() != first.conversation()
        second.say(ASK, "mobile number")  # not verified: the first browser's session is not its own
        expect(second.page.locator(".rw-response", has_text=ROBIN[2])).to_have_count(0)
        expect(second.page.locator(".rw-client", has_text="11/30/1975")).to_have_count(0)
        assert second.page.evaluate("JSON.parse(sessionStorage.getItem('chat_session')).session_id") != label
        second.shot("second-browser")

        # Signing out ends the session: a new conversation, asked to verify again.
        before = first.conversation()
        first.page.get_by_role("button", name="Sign out").click()
        expect(first.page.locator(".rw-client")).to_have_count(0, timeout=WAIT)
        first.page.locator(".rw-new-message").wait_for(timeout=WAIT)
        assert first.conversation() != before
        first.say(ASK, "mobile number")
        first.shot("signed-out")
    finally:
        first.close()
        second.close()


def test_a_secure_link_from_a_text_opens_the_chat_once(stack, browser):
    number, dob, detail = ALEX
    [reply] = text(stack, ASK, number)
    assert detail not in reply
    link = re.search(r"(https?://\S+/chat/s/[A-Za-z0-9_-]+)", reply).group(1)

    chat = Chat(stack, browser, "link")
    try:
        chat.page.goto(link)
        chat.shot("link-page")
        chat.page.get_by_role("button", name="Open the secure chat").click()
        chat.page.wait_for_url("**/chat")
        chat.page.locator(".rw-new-message").wait_for(timeout=WAIT)
        from playwright.sync_api import expect
        expect(chat.page.locator(".rw-response", has_text="date of birth")).to_be_visible(timeout=WAIT)
        chat.shot("link-opened")
        assert detail in _verify(chat, stack, ALEX, with_number=False)
        chat.shot("link-details")

        chat.page.goto(link)  # the same link again
        expect(chat.page.locator("h1")).to_have_text("This link has expired")
        chat.shot("link-expired")
    finally:
        chat.close()
