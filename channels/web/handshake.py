"""Who may open and use a web chat connection: every request to ``/socket.io/`` passes here
before engine.io sees it.

* **Origin.** A browser names the page that makes a request in its ``Origin`` header (always
  on a WebSocket and on cross-origin or POST requests). It must be the gateway's own origin
  (``PUBLIC_BASE_URL``) or one of ``WEBCHAT_ALLOWED_ORIGINS``. A same-origin GET carries no
  Origin; a browser then says ``Sec-Fetch-Site: same-origin`` (or sends neither, as old
  browsers and programs do), and anything else is refused: this is what stops another site's
  page from using a patient's cookie (cross-site WebSocket hijacking).
* **Cookie.** The connection's session is the one its ``pb_chat`` cookie names
  (channels/web/session_cookie.py). A forged cookie is refused. A polling handshake without
  one gets a new session and its cookie on the answer; every later request of that engine.io
  session (the socket.io connect, each poll and post, the WebSocket upgrade) must carry the
  very cookie its handshake was bound to, so a browser that did not keep the cookie (a page of
  another site: the widget's requests carry no credentials there), or anyone holding only the
  engine.io session id, is refused. A WebSocket handshake must bring its cookie.

Every refusal is a 403 and an audit event with the reason only, never a text or the origin.
"""
from __future__ import annotations

import hmac
import logging
from typing import Iterable, Optional

from aiohttp import web
from redis.exceptions import RedisError

from bot.storage.audit import SYSTEM
from bot.storage.crypto import keyring
from channels.gateway.app_keys import SERVICES, SETTINGS
from channels.web.app_keys import WEB_CHAT, WORKER_ROUTES
from channels.web.session_cookie import COOKIE, INVALID, VALID, cookie_value, new_session, session_of, set_cookie
from channels.web.socket_server import WEB_SESSION

logger = logging.getLogger(__name__)

BOUND_COOKIE = "pb.web_cookie"  # on the handshake's request: the cookie value its session is bound to
SAME_ORIGIN_FETCH = ("same-origin", "none")


def allowed_origins(own: str, others: Iterable[str]) -> list:
    return [own, *[o for o in others if o != own]]


def origin_allowed(request: web.Request, allowed: Iterable[str]) -> bool:
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin.strip().rstrip("/").lower() in allowed
    return request.headers.get("Sec-Fetch-Site", "same-origin").lower() in SAME_ORIGIN_FETCH


async def _refuse(request: web.Request, reason: str) -> web.Response:
    logger.warning("refused a web chat request (%s)", reason)
    try:
        await request.app[SERVICES].audit.record(SYSTEM, "web_chat_refused", "", reason,
                                                 {"remote": request.remote or "", "channel": "web"})
    except RedisError:
        logger.error("could not audit a refused web chat request: Redis unavailable")
    return web.Response(status=403, text="web chat refused: open the chat page again")


def _bound_cookie(request: web.Request, eio_sid: str) -> Optional[str]:
    """The cookie value the engine.io session ``eio_sid`` was bound to at its handshake."""
    environ = request.app[WEB_CHAT].sio.environ.get(eio_sid)
    handshake = environ.get("aiohttp.request") if environ else None
    return handshake.get(BOUND_COOKIE) if handshake is not None else None


async def _drop_if_never_connected(chat, eio_sid: str) -> None:
    """A handshake whose cookie never came back is dropped at once rather than left to time out.
    An established connection is left alone: a stranger holding only its engine.io session id
    must not be able to close it."""
    sock = chat.sio.eio.sockets.get(eio_sid)
    if sock is not None and chat.sio.manager.sid_from_eio_sid(eio_sid, "/") is None:
        await sock.close(wait=False, abort=False)  # a poll waiting on it gets the close packet
        chat.sio.eio.sockets.pop(eio_sid, None)


async def socketio_entry(request: web.Request) -> web.StreamResponse:
    """``/socket.io/``: to the worker that holds the session, checked, then to engine.io."""
    chat = request.app[WEB_CHAT]
    eio_sid = request.query.get("sid")
    routes = request.app.get(WORKER_ROUTES)
    owner = routes.elsewhere(request, eio_sid) if routes is not None else None
    if owner is not None:
        return await routes.forward(request, owner)
    if not origin_allowed(request, chat.allowed):
        return await _refuse(request, "bad_origin")
    if request.method == "OPTIONS":  # a CORS preflight: engine.io answers with the allowed origin
        return await chat.sio.handle_request(request)
    if eio_sid is not None:
        bound = _bound_cookie(request, eio_sid)
        if bound is not None and not hmac.compare_digest(request.cookies.get(COOKIE, "").encode(), bound.encode()):
            await _drop_if_never_connected(chat, eio_sid)
            return await _refuse(request, "cookie_mismatch")
        return await chat.sio.handle_request(request)  # an unknown sid: engine.io says so (400)
    return await _handshake(request)


async def _handshake(request: web.Request) -> web.StreamResponse:
    cfg = request.app[SETTINGS]
    chat = request.app[WEB_CHAT]
    try:
        keys = keyring(cfg)
        state, session = session_of(keys, request.cookies.get(COOKIE))
    except RedisError:
        return web.Response(status=503, text="temporarily unavailable, retry", headers={"Retry-After": "5"})
    if state == INVALID:
        return await _refuse(request, "bad_cookie")
    minted = state != VALID
    if minted:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await _refuse(request, "no_cookie")  # a WebSocket answer cannot set one
        session = new_session()
    request[WEB_SESSION] = session
    request[BOUND_COOKIE] = cookie_value(keys, session)
    response = await chat.sio.handle_request(request)
    if minted and isinstance(response, web.Response) and response.status == 200:
        set_cookie(response, session, cfg)
    return response
