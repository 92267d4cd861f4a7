"""Who may do what in the console: the route table, sessions, roles, CSRF and security headers.

Every console route is declared with :func:`route` and the least role it needs (``None`` for
the sign-in page and static files, ``"agent"``, ``"admin"``). One middleware enforces it on
every request, so no handler can forget to: no session means a redirect to the sign-in page
(pages) or 401 (API, event stream, every POST); an agent on an admin route gets 403, audited;
every POST must carry the session's CSRF token (form field ``csrf`` or header ``X-CSRF-Token``)
or it gets 403, audited, and nothing is done.
"""
from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Awaitable, Callable, List, Optional

from aiohttp import web

from bot.records.staff_accounts import StaffMember
from bot.records.staff_sessions import Session
from channels.gateway.app_keys import SETTINGS
from channels.staff.app_keys import STAFF_SERVICES

logger = logging.getLogger(__name__)

SESSION_COOKIE = "pb_staff"
LOGIN_COOKIE = "pb_staff_login"  # pre-sign-in CSRF token (double submit)
COOKIE_PATH = "/staff/"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
ROLE_RANK = {"agent": 1, "admin": 2}

# No inline script or style anywhere, so the policy can forbid both.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # relative to /staff
    handler: Handler
    role: Optional[str]  # None: public; else the least role needed
    kind: str = "page"  # page | api | stream
    touch: bool = True  # counts as activity for the idle logoff


ROUTES: List[Route] = []


def route(method: str, path: str, role: Optional[str], kind: str = "page", touch: bool = True):
    """Declare a console route and the least role it needs."""
    if role is not None and role not in ROLE_RANK:
        raise ValueError(f"unknown role {role!r}")

    def register(handler: Handler) -> Handler:
        spec = Route(method, path, handler, role, kind, touch)
        handler.staff_route = spec  # type: ignore[attr-defined]
        ROUTES.append(spec)
        return handler

    return register


def current_staff(request: web.Request) -> StaffMember:
    """The signed-in staff member (set by :func:`guard`)."""
    return request["staff"]


def current_session(request: web.Request) -> Session:
    """The staff member's session (set by :func:`guard`)."""
    return request["session"]


def set_cookie(response: web.StreamResponse, request: web.Request, name: str, value: str,
               max_age: Optional[int] = None) -> None:
    """Set a console cookie: HTTP-only, same-site strict, scoped to ``/staff/``."""
    response.set_cookie(name, value, path=COOKIE_PATH, httponly=True, samesite="Strict", max_age=max_age,
                        secure=request.config_dict[SETTINGS].staff_cookie_secure)


def clear_cookie(response: web.StreamResponse, name: str) -> None:
    """Remove a console cookie."""
    response.del_cookie(name, path=COOKIE_PATH)


def apply_security_headers(response: web.StreamResponse) -> None:
    """No framing, no inline code, no referrer, never cached."""
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    response.headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The security headers on every console response, errors included."""
    if not request.path.startswith(COOKIE_PATH):
        return await handler(request)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        apply_security_headers(exc)
        raise
    if not response.prepared:  # the event stream sets its own before it starts
        apply_security_headers(response)
    return response


def _refuse_unauthenticated(request: web.Request, spec: Route, why: str) -> web.StreamResponse:
    if spec.kind == "page" and request.method == "GET":
        reason = "idle" if why in ("idle", "expired") else "signin"
        return web.HTTPSeeOther(f"/staff/login?reason={reason}")
    return web.json_response({"error": "not signed in", "reason": why}, status=401)


async def _posted_csrf(request: web.Request) -> Optional[str]:
    given = request.headers.get(CSRF_HEADER)
    if given:
        return given
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Session, role and CSRF checks for every console route."""
    spec: Optional[Route] = getattr(request.match_info.route.handler, "staff_route", None)
    if spec is None or spec.role is None:  # static files, the sign-in page, 404s
        return await handler(request)
    services = request.app[STAFF_SERVICES]
    session, why, staff_id = await services.sessions.load(request.cookies.get(SESSION_COOKIE), touch=spec.touch)
    member = await services.accounts.get(session.staff_id) if session else None
    if session is not None and (member is None or member.disabled):
        await services.sessions.end(session)
        session, why = None, "disabled"
    if session is None or member is None:
        if why in ("idle", "expired"):
            await services.audit.record(f"staff:{staff_id}", "staff_signed_out", "", why, {})
        response = _refuse_unauthenticated(request, spec, why)
        if isinstance(response, web.HTTPException):
            raise response
        return response
    if ROLE_RANK[member.role] < ROLE_RANK[spec.role]:
        await services.audit.record(member.actor, "staff_forbidden", "", "refused",
                                    {"method": request.method, "route": spec.path})
        raise web.HTTPForbidden(text="This page is for administrators.")
    if request.method == "POST" and not session.csrf_ok(await _posted_csrf(request)):
        await services.audit.record(member.actor, "staff_csrf_refused", "", "refused",
                                    {"method": request.method, "route": spec.path})
        raise web.HTTPForbidden(text="The form was not accepted (missing or stale security token). Reload the page.")
    request["staff"] = member
    request["session"] = session
    return await handler(request)


def new_login_token() -> str:
    """A fresh CSRF token for the sign-in form."""
    return secrets.token_urlsafe(32)
