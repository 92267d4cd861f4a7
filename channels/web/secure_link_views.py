"""``/chat/s/<token>``: a secure link, sent by SMS instead of health information, opens the web chat.

``GET`` only shows a page with a button and spends nothing: phones fetch a link's preview as
the text arrives, and that fetch must not use up the patient's one-time link. The button's
``POST`` spends the link (bot/records/secure_links.py: once, within 15 minutes), binds this
browser's web chat to the number the link was sent to, leaves the date-of-birth question
waiting in the chat (the one-time code follows, sent to that number), and sends the browser
to ``/chat`` so the token leaves the address bar. A used, expired or unknown link gets one
clear page saying how to get a new one. The token is never logged, and never sent to another
site as a referrer.
"""
from __future__ import annotations

from aiohttp import web
from redis.exceptions import RedisError

from bot.conversation.verification import JUST_VERIFY, ask_to_verify
from bot.conversation.web_outbox import WebMessage
from bot.core import replies
from bot.records.secure_links import LINK_PATH, LIVE, OK, LinkGrant
from bot.services import Services
from bot.storage.audit import SYSTEM
from bot.storage.crypto import conversation_id
from channels.gateway.app_keys import SERVICES, SETTINGS
from channels.web.handshake import origin_allowed
from channels.web.page import CHAT_PATH, page_headers, render
from channels.web.session_cookie import new_session, read_session, set_cookie


def _link_page(request: web.Request, template: str, status: int = 200, **context) -> web.Response:
    cfg, office = request.app[SETTINGS], request.app[SERVICES].office
    response = web.Response(text=render(template, office=office.name, phone=office.phone, **context),
                            content_type="text/html", status=status)
    page_headers(response, cfg)
    return response


def _unavailable() -> web.Response:
    return web.Response(status=503, text="temporarily unavailable, retry", headers={"Retry-After": "5"})


async def show_link(request: web.Request) -> web.Response:
    """The page behind a link: a button to open the chat, or why the link no longer opens."""
    try:
        status = await request.app[SERVICES].secure_links.peek(request.match_info["token"])
    except RedisError:
        return _unavailable()
    if status != LIVE:
        return _link_page(request, "link_gone.html", status=410)
    return _link_page(request, "link_open.html", action=request.path)


async def open_link(request: web.Request) -> web.Response:
    """Spend the link and open the chat, verification waiting; a spent one gets the "gone" page."""
    cfg, services = request.app[SETTINGS], request.app[SERVICES]
    if not origin_allowed(request, [cfg.public_origin]):
        await services.audit.record(SYSTEM, "web_chat_refused", "", "secure_link_cross_site", {"channel": "web"})
        return web.Response(status=403, text="open the link from its own page")
    try:
        opened = await services.secure_links.open(request.match_info["token"])
        if opened.status != OK:
            return _link_page(request, "link_gone.html", status=410)
        session = read_session(request) or new_session()
        await _start_verification(services, conversation_id(services.keys, "web", session), opened.grant)
    except RedisError:
        return _unavailable()
    response = web.HTTPSeeOther(CHAT_PATH)
    set_cookie(response, session, cfg)  # the same session, or the new one the chat goes on in
    response.headers["Referrer-Policy"] = "same-origin"
    return response


async def _start_verification(services: Services, conversation: str, grant: LinkGrant) -> None:
    """Bind the web conversation to the link's number and leave its first question waiting in
    the chat. A browser verified for another number starts over: what the link leads to is
    always shown to whoever proves they are a patient at the number it was sent to."""
    bound = await services.web_bindings.bound(conversation)
    if bound is None or bound.phone_idx != grant.phone_idx:
        await services.identity.end(conversation)
    await services.web_bindings.bind(conversation, grant.phone_idx, "link")
    question = await ask_to_verify(services, conversation, "web", grant.intent or JUST_VERIFY)
    await services.web_outbox.send(conversation, [WebMessage(replies.secure_chat_opened(services.office), kind="bot"),
                                                  WebMessage(question, kind="bot")])
    await services.audit.record(SYSTEM, "secure_link_chat_opened", conversation, "ok",
                                {"channel": "web", "from": grant.conversation})


def add_routes(app: web.Application) -> None:
    app.router.add_get(LINK_PATH + "{token}", show_link)
    app.router.add_post(LINK_PATH + "{token}", open_link)
