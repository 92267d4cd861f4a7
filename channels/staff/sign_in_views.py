"""Signing in and out of the console. The sign-in form carries its own CSRF token (a cookie and
a form field, double submit), since there is no session yet; every attempt is audited."""
from __future__ import annotations

import logging
import secrets

from aiohttp import web

from channels.staff.auth import (CSRF_FIELD, LOGIN_COOKIE, SESSION_COOKIE, clear_cookie, current_session,
                                 current_staff, new_login_token, route, set_cookie)
from channels.staff.views import render, staff_services

logger = logging.getLogger(__name__)

ANONYMOUS = "anonymous:staff-login"
SIGNED_OUT_REASONS = {"idle": "You were signed out after a period without activity.",
                      "signin": "Please sign in.", "out": "You are signed out."}
SIGN_IN_FAILED = "Sign-in failed: check the username, password and the current code from your authenticator app."


@route("GET", "/login", None)
async def login_page(request: web.Request) -> web.Response:
    """The sign-in form, with a fresh CSRF token (and why the staff member was signed out)."""
    token = new_login_token()
    notice = SIGNED_OUT_REASONS.get(request.query.get("reason", ""), "")
    response = render(request, "login.html", login_csrf=token, notice=notice, error="")
    set_cookie(response, request, LOGIN_COOKIE, token, max_age=3600)
    return response


@route("POST", "/login", None)
async def login(request: web.Request) -> web.Response:
    """Check the password and TOTP code; a session cookie on success, the form again on failure."""
    services = staff_services(request)
    form = await request.post()
    expected = request.cookies.get(LOGIN_COOKIE, "")
    given = form.get(CSRF_FIELD, "")
    if not expected or not isinstance(given, str) or not _same(expected, given):
        await services.audit.record(ANONYMOUS, "staff_login", "", "csrf_refused", {})
        raise web.HTTPForbidden(text="The sign-in form was not accepted (missing or stale security token). "
                                     "Reload the sign-in page.")
    username = str(form.get("username", "")).strip().lower()
    result = await services.accounts.authenticate(username, str(form.get("password", "")), str(form.get("code", "")))
    if not result.ok:
        actor = result.member.actor if result.member else ANONYMOUS
        await services.audit.record(actor, "staff_login", "", "failed",
                                    {"reason": result.reason, "username": username, "remote": request.remote or ""})
        logger.info("console sign-in failed (%s)", result.reason)
        token = new_login_token()
        response = render(request, "login.html", status=401, login_csrf=token, notice="", error=SIGN_IN_FAILED)
        set_cookie(response, request, LOGIN_COOKIE, token, max_age=3600)
        return response
    member = result.member
    token, _ = await services.sessions.create(member.id)
    await services.audit.record(member.actor, "staff_login", "", "ok", {"remote": request.remote or ""})
    response = web.HTTPSeeOther("/staff/queue")
    set_cookie(response, request, SESSION_COOKIE, token)
    clear_cookie(response, LOGIN_COOKIE)
    raise response


def _same(a: str, b: str) -> bool:
    return secrets.compare_digest(a.encode(), b.encode())


@route("POST", "/logout", "agent")
async def logout(request: web.Request) -> web.Response:
    """End the session."""
    services = staff_services(request)
    await services.sessions.end(current_session(request))
    await services.audit.record(current_staff(request).actor, "staff_logout", "", "ok", {})
    response = web.HTTPSeeOther("/staff/login?reason=out")
    clear_cookie(response, SESSION_COOKIE)
    raise response
