"""The staff list (admins): every account, and disabling, enabling or unlocking one. Disabling
an account also ends its sessions; every view and change is audited."""
from __future__ import annotations

from datetime import datetime, timezone

from aiohttp import web

from channels.staff.auth import current_staff, route
from channels.staff.views import local_time, page_flash, render, set_flash, staff_services

USERS_PAGE = "/staff/admin/users"


@route("GET", "/admin/users", "admin")
async def users_page(request: web.Request) -> web.Response:
    """Every staff account (a view, audited)."""
    services = staff_services(request)
    now = datetime.now(timezone.utc)
    members = [{"id": m.id, "username": m.username, "role": m.role, "disabled": m.disabled,
                "locked": m.locked(now), "created": local_time(services.office, m.created_at)}
               for m in await services.accounts.list()]
    await services.audit.record(current_staff(request).actor, "staff_list_viewed", "", "ok", {})
    flash = await page_flash(request)
    return render(request, "users.html", members=members, flash=flash)


async def _admin_change(request: web.Request, action: str) -> web.Response:
    services = staff_services(request)
    me = current_staff(request)
    member = await services.accounts.get(request.match_info["staff_id"])
    if member is None:
        raise web.HTTPNotFound(text="no such staff member")
    if member.id == me.id and action == "disable":
        await set_flash(request, "You cannot disable your own account.")
        raise web.HTTPSeeOther(USERS_PAGE)
    if action == "disable":
        await services.accounts.set_disabled(member.username, True)
        ended = await services.sessions.end_all(member.id)
        await set_flash(request, f"{member.username} is disabled and signed out ({ended} session(s) ended).")
    elif action == "enable":
        await services.accounts.set_disabled(member.username, False)
        await set_flash(request, f"{member.username} is enabled.")
    else:
        await services.accounts.unlock(member.username)
        await set_flash(request, f"{member.username} can sign in again (lockout lifted).")
    await services.audit.record(me.actor, f"staff_{action}d" if action != "unlock" else "staff_unlocked",
                                member.actor, "ok", {})
    raise web.HTTPSeeOther(USERS_PAGE)


@route("POST", "/admin/users/{staff_id}/disable", "admin")
async def disable_user(request: web.Request) -> web.Response:
    """Disable an account and end its sessions."""
    return await _admin_change(request, "disable")


@route("POST", "/admin/users/{staff_id}/enable", "admin")
async def enable_user(request: web.Request) -> web.Response:
    """Enable an account again."""
    return await _admin_change(request, "enable")


@route("POST", "/admin/users/{staff_id}/unlock", "admin")
async def unlock_user(request: web.Request) -> web.Response:
    """Lift a sign-in lockout."""
    return await _admin_change(request, "unlock")
