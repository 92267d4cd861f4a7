"""``GET /chat``: the page with the real rasa-webchat widget; ``POST /chat/sign-out``; the
widget bundle and the page's own files under ``/chat/static/``.

The page runs no inline script and loads nothing from elsewhere: its Content-Security-Policy
allows scripts from the gateway only (the pinned widget, checked by Subresource Integrity too,
and ``chat.js``), connections to the gateway only, and framing only by the sites in
``WEBCHAT_ALLOWED_ORIGINS`` (none by default, then also ``X-Frame-Options: DENY``).
"""
from __future__ import annotations

import logging
from pathlib import Path

import jinja2
from aiohttp import web
from redis.exceptions import RedisError

from bot.config import Settings
from bot.conversation.web_commands import sign_out as end_web_session
from bot.storage.audit import SYSTEM
from bot.storage.crypto import conversation_id
from channels.gateway.app_keys import SERVICES, SETTINGS
from channels.web.app_keys import PIN, WIDGET
from channels.web.handshake import origin_allowed
from channels.web.session_cookie import clear_cookie, new_session, public_label, read_session, set_cookie
from channels.web.widget_bundle import WidgetPin

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
CHAT_PATH = "/chat"
STATIC_PREFIX = "/chat/static"
_TEMPLATES = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                                autoescape=jinja2.select_autoescape(["html"], default=True),
                                undefined=jinja2.StrictUndefined)


def chat_csp(cfg: Settings) -> str:
    """The chat page's Content-Security-Policy."""
    own = cfg.public_origin
    websocket = ("wss://" + own[len("https://"):]) if own.startswith("https://") else "ws://" + own[len("http://"):]
    return "; ".join([
        "default-src 'none'",
        "script-src 'self'",
        # The widget adds <style> elements while it runs (its bundled CSS, through webpack's
        # style-loader, and a highlight animation) and sets style attributes: no nonce or hash
        # can follow those, so inline styles are allowed. A style cannot run script; scripts
        # stay 'self' only. (The bundle's CSS @imports a web font: refused, system fonts show.)
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self'",
        f"connect-src 'self' {websocket}",  # 'self' covers ws: in current browsers; older ones need it named
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors " + (" ".join(cfg.webchat_allowed_origins) or "'none'"),
    ])


def render(template: str, **context) -> str:
    """One of the chat's pages (channels/web/templates), autoescaped."""
    return _TEMPLATES.get_template(template).render(**context)


def page_headers(response: web.Response, cfg: Settings) -> None:
    response.headers["Content-Security-Policy"] = chat_csp(cfg)
    # The address (a secure link's token) goes to no other site; "no-referrer" would also make
    # the browser send "Origin: null" with the page's own forms, which the origin checks refuse.
    response.headers["Referrer-Policy"] = "same-origin"
    # With sites allowed, the gateway adds no X-Frame-Options (channels/gateway/app.py): it could
    # only say DENY or SAMEORIGIN, and frame-ancestors above says who may frame the page.


async def chat_page(request: web.Request) -> web.Response:
    """The chat page; a browser without a valid session cookie gets a new session."""
    cfg = request.app[SETTINGS]
    services = request.app[SERVICES]
    pin = request.app[PIN]
    try:
        session = read_session(request)
    except RedisError:  # the key ring lives in Redis
        return web.Response(status=503, text="temporarily unavailable, retry", headers={"Retry-After": "5"})
    fresh = session is None
    session = session or new_session()
    # The label lets the page drop a conversation the widget kept for another session.
    html = render("chat.html",
        office=services.office.name, phone=services.office.phone, label=public_label(services.keys, session),
        widget_src=f"{STATIC_PREFIX}/{pin.served_name}", widget_integrity=pin.file_sha384)
    response = web.Response(text=html, content_type="text/html")
    if fresh:
        set_cookie(response, session, cfg)
    page_headers(response, cfg)
    return response


async def sign_out(request: web.Request) -> web.Response:
    """End the web session: its verified identity, its binding to a number, its open
    connections and what was kept for it; then the cookie. The page clears the widget's storage."""
    cfg = request.app[SETTINGS]
    services = request.app[SERVICES]
    if not origin_allowed(request, [cfg.public_origin]):
        await services.audit.record(SYSTEM, "web_chat_refused", "", "sign_out_cross_site", {"channel": "web"})
        return web.Response(status=403, text="sign out from the chat page")
    session = read_session(request)
    if session is not None:
        conversation = conversation_id(services.keys, "web", session)
        await end_web_session(services, conversation)  # verification, its binding (audited)
        await services.web_outbox.end(conversation)
    response = web.HTTPSeeOther(CHAT_PATH)
    clear_cookie(response, cfg)
    return response


async def widget(request: web.Request) -> web.Response:
    """The pinned widget bundle, from memory (verified at start-up); 503 when it is not."""
    data = request.app.get(WIDGET)
    if data is None:
        return web.Response(status=503, text="the web chat widget is not installed or not the pinned one")
    return web.Response(body=data, content_type="application/javascript", charset="utf-8", headers={
        "Cache-Control": "public, max-age=31536000, immutable",  # the name carries the version
        "Access-Control-Allow-Origin": "*",  # a public file: offices' pages load it with integrity checks
    })


def add_routes(app: web.Application, pin: WidgetPin) -> None:
    app[PIN] = pin
    app.router.add_get(CHAT_PATH, chat_page)
    app.router.add_post(CHAT_PATH + "/sign-out", sign_out)
    app.router.add_get(f"{STATIC_PREFIX}/{pin.served_name}", widget)
    app.router.add_static(STATIC_PREFIX + "/", HERE / "static")
