"""The page a secure link opens (channels/web/secure_link_views.py), on a gateway in front of the
stand-in Rasa: a GET (what a phone's link preview fetches) spends nothing; the button's POST
spends the link once, binds this browser's chat to the link's number and leaves the
date-of-birth question waiting in the chat; a used, expired or unknown link gets the "expired"
page; a cross-site POST is refused. The whole path in a real browser is in
tests/test_web_chat_browser.py."""
from __future__ import annotations

import aiohttp

from bot.records.secure_links import LINK_PATH
from bot.storage.crypto import conversation_id, keyring, phone_index
from channels.gateway.app_keys import SERVICES
from channels.web.session_cookie import COOKIE, session_of
from tests.gateway_helpers import StubRasa
from tests.web_chat_helpers import Browser, chat_cookie, web_gateway

NUMBER = "+15550100101"  # synthetic
SMS_CONV = "sms-" + "b2" * 20  # a synthetic conversation pseudonym


async def _gateway(settings_env, aiohttp_server, monkeypatch):
    stub = StubRasa(settings_env["RASA_GATEWAY_SECRET"])
    return await web_gateway(stub, aiohttp_server, monkeypatch)


async def _request(method, url, cookie=None, origin=None):
    headers = {**({"Cookie": f"{COOKIE}={cookie}"} if cookie else {}), **({"Origin": origin} if origin else {})}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        async with http.request(method, url, headers=headers, allow_redirects=False) as resp:
            return resp, (await resp.read()).decode()


async def test_a_link_opens_the_chat_once_with_the_date_of_birth_question_waiting(settings_env, aiohttp_server,
                                                                                 monkeypatch):
    base, cfg, app = await _gateway(settings_env, aiohttp_server, monkeypatch)
    services = app[SERVICES]
    phone_idx = phone_index(services.keys, NUMBER)
    token = await services.secure_links.issue(SMS_CONV, phone_idx, "ask_appointment_specifics")
    url = base + LINK_PATH + token

    for _ in range(2):  # link previews: the page, nothing spent
        page, html = await _request("GET", url)
        assert page.status == 200 and "Open the secure chat" in html and token not in page.headers.get("Location", "")
        assert page.headers["Referrer-Policy"] == "same-origin" and "script-src 'self'" in page.headers[
            "Content-Security-Policy"]
    cross, _ = await _request("POST", url, origin="https://attacker.example")
    assert cross.status == 403

    cookie = await chat_cookie(base)  # the browser had opened the chat before
    opened, _ = await _request("POST", url, cookie=cookie, origin=base)
    assert opened.status == 303 and opened.headers["Location"] == "/chat"
    assert opened.headers["Referrer-Policy"] == "same-origin"
    assert opened.cookies[COOKIE].value == cookie  # the same chat goes on
    conversation = conversation_id(keyring(cfg), "web", session_of(keyring(cfg), cookie)[1])
    bound = await services.web_bindings.bound(conversation)
    assert bound is not None and (bound.phone_idx, bound.via) == (phone_idx, "link")

    browser = Browser(base, cookie)  # the chat shows what the link left waiting
    try:
        await browser.open()
        waiting = await browser.next_replies(2)
        assert "secure chat" in waiting[0]["text"] and "date of birth" in waiting[1]["text"]
    finally:
        await browser.close()

    for method in ("GET", "POST"):  # spent: the "expired" page, whoever asks
        again, html = await _request(method, url, cookie=cookie, origin=base)
        assert again.status == 410 and "This link has expired" in html
    unknown, html = await _request("GET", base + LINK_PATH + "A" * 32)
    assert unknown.status == 410 and "This link has expired" in html
    actions = [e.action for e in await services.audit.events()]
    assert actions.count("secure_link_opened") == 1 and "secure_link_chat_opened" in actions


async def test_a_link_for_another_number_ends_the_browsers_verified_session(settings_env, aiohttp_server, monkeypatch):
    """What a link leads to is shown only to whoever proves they are a patient at its number."""
    from tests.test_web_chat_page import _session

    base, cfg, app = await _gateway(settings_env, aiohttp_server, monkeypatch)
    services = app[SERVICES]
    cookie = await chat_cookie(base)
    conversation = conversation_id(keyring(cfg), "web", session_of(keyring(cfg), cookie)[1])
    await services.web_bindings.bind(conversation, phone_index(services.keys, "+15550100102"), "number")
    await services.identity._store_session(conversation, _session())
    token = await services.secure_links.issue(SMS_CONV, phone_index(services.keys, NUMBER), None)
    opened, _ = await _request("POST", base + LINK_PATH + token, cookie=cookie, origin=base)
    assert opened.status == 303
    assert await services.identity.session(conversation, "web") is None
    assert (await services.web_bindings.bound(conversation)).phone_idx == phone_index(services.keys, NUMBER)
