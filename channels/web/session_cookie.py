"""The web chat session, bound to the browser by an HttpOnly cookie.

A web session id is random (``secrets.token_urlsafe(24)``: 192 bits) and made only by the
gateway. The cookie ``pb_chat`` holds ``<sid>.<signature>``, the signature a keyed HMAC of the
sid (the key ring's blind-index key, which key rotation leaves unchanged), so a guessed, forged
or altered value is refused. Page scripts cannot read it (HttpOnly); it goes only to the
gateway's own site (SameSite=Lax) and only over https when the gateway is public on https.

The id the widget keeps in its storage and sends in ``session_request`` is :func:`public_label`,
a keyed hash of the sid: it names the conversation to the widget and grants nothing. Only the
cookie decides which session a connection belongs to.
"""
from __future__ import annotations

import hmac
import re
import secrets
from typing import Optional, Tuple

from aiohttp import web

from bot.config import Settings
from bot.storage.crypto import KeyRing, keyring
from channels.gateway.app_keys import SETTINGS

COOKIE = "pb_chat"
_SID = re.compile(r"[A-Za-z0-9_-]{32}")  # what token_urlsafe(24) makes
ABSENT, VALID, INVALID = "absent", "valid", "invalid"


def new_session() -> str:
    """A fresh web session id (192 random bits)."""
    return secrets.token_urlsafe(24)


def _signature(keys: KeyRing, sid: str) -> str:
    return keys.blind_index(sid, "web-chat-cookie")


def cookie_value(keys: KeyRing, sid: str) -> str:
    """``<sid>.<signature>``: what the cookie holds."""
    return f"{sid}.{_signature(keys, sid)}"


def session_of(keys: KeyRing, value: Optional[str]) -> Tuple[str, Optional[str]]:
    """(ABSENT | VALID | INVALID, the sid when VALID) for a cookie value."""
    if not value:
        return ABSENT, None
    sid, dot, signature = value.partition(".")
    if not dot or not _SID.fullmatch(sid) or not hmac.compare_digest(signature.encode(),
                                                                      _signature(keys, sid).encode()):
        return INVALID, None
    return VALID, sid


def read_session(request: web.Request) -> Optional[str]:
    """The web session id of the request's valid ``pb_chat`` cookie, or None (absent or forged)."""
    return session_of(keyring(request.config_dict[SETTINGS]), request.cookies.get(COOKIE))[1]


def secure(cfg: Settings) -> bool:
    """Whether the cookie is sent over https only: when the gateway is public on https."""
    return cfg.public_base_url.lower().startswith("https://")


def set_cookie(response: web.StreamResponse, sid: str, cfg: Settings) -> None:
    """Bind ``sid`` to the browser. A session cookie (no expiry): it ends when the browser does,
    so a shared computer does not keep a patient's chat for the next person."""
    response.set_cookie(COOKIE, cookie_value(keyring(cfg), sid), path="/", httponly=True, samesite="Lax",
                        secure=secure(cfg))


def clear_cookie(response: web.StreamResponse, cfg: Settings) -> None:
    response.del_cookie(COOKIE, path="/")
    # del_cookie sets no attributes; say them again so every browser matches and drops it.
    response.cookies[COOKIE]["httponly"] = True
    response.cookies[COOKIE]["samesite"] = "Lax"
    if secure(cfg):
        response.cookies[COOKIE]["secure"] = True


def public_label(keys: KeyRing, sid: str) -> str:
    """What the widget may keep and show of the session: a keyed hash of the sid, no use to anyone."""
    return keys.blind_index(sid, "web-chat-label")[:32]
