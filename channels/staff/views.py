"""What every console page and action shares: the services (built at start-up,
:mod:`channels.staff.app_keys`), page rendering, flash messages and the form-action helper.
The pages themselves are declared by the modules named for them:
:mod:`channels.staff.sign_in_views`, :mod:`channels.staff.queue_views`,
:mod:`channels.staff.conversation_views`, :mod:`channels.staff.staff_list_views`,
:mod:`channels.staff.nlu_views` and :mod:`channels.staff.model_views`.

Access rules live in :mod:`channels.staff.auth`; every handler can rely on them. Each sign-in,
failure, PHI view, claim, reply, note, hand-back and account change is audited with the staff
member's id (``staff:<uuid>``); pages with PHI are never cached (security headers middleware).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Dict, NoReturn, Optional

from aiohttp import web
from multidict import MultiDictProxy

from bot.core.office import Office
from channels.staff.auth import current_session, current_staff
from channels.gateway.app_keys import SETTINGS
from channels.staff.app_keys import STAFF_SERVICES, STAFF_TEMPLATES, StaffServices

CONVERSATION_RE = re.compile(r"^(sms|web)-[0-9a-f]{40}$")


def staff_services(request: web.Request) -> StaffServices:
    """The console's services, as built at start-up."""
    return request.app[STAFF_SERVICES]


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    """An HTML page from the console's templates, with what every page shows (staff, CSRF token,
    idle timeout)."""
    env = request.app[STAFF_TEMPLATES]
    cfg = request.config_dict[SETTINGS]
    context.setdefault("flash", None)
    body = env.get_template(template).render(
        staff=request.get("staff"), csrf=request["session"].csrf if "session" in request else "",
        idle_seconds=cfg.staff_session_idle_minutes * 60, max_failures=cfg.staff_login_max_failures, **context)
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


def conversation_of(request: web.Request) -> str:
    """The conversation pseudonym in the URL; 404 unless it has the shape of one."""
    conversation = request.match_info["conversation"]
    if not CONVERSATION_RE.match(conversation):
        raise web.HTTPNotFound(text="no such conversation")
    return conversation


def conversation_path(conversation: str) -> str:
    """The path of a conversation's page."""
    return f"/staff/conversations/{conversation}"


def back_to(conversation: str) -> web.HTTPSeeOther:
    """The redirect to a conversation's page."""
    return web.HTTPSeeOther(conversation_path(conversation))


async def set_flash(request: web.Request, message: str) -> None:
    """A message for the staff member, shown once on the next page."""
    await staff_services(request).sessions.flash(current_session(request), message)


async def page_flash(request: web.Request) -> Optional[str]:
    """The flash message the page being rendered shows (and so clears)."""
    return await staff_services(request).sessions.pop_flash(current_session(request))


def local_time(office: Office, iso_or_ts: Any) -> str:
    """An ISO time or a Unix timestamp as the office's local ``Mon DD HH:MM``; "" if unreadable."""
    try:
        when = (datetime.fromtimestamp(float(iso_or_ts), timezone.utc) if isinstance(iso_or_ts, (int, float))
                else datetime.fromisoformat(str(iso_or_ts)))
    except (TypeError, ValueError):
        return ""
    return when.astimezone(office.timezone).strftime("%b %d %H:%M")


def form_text(form: MultiDictProxy, field_name: str, limit: int) -> str:
    """A posted text field, trimmed, with Unix line ends; 400 beyond ``limit`` characters."""
    text = str(form.get(field_name, "")).replace("\r\n", "\n").strip()
    if len(text) > limit:
        raise web.HTTPBadRequest(text=f"at most {limit} characters")
    return text


@dataclass(frozen=True)
class Done:
    """What a console form action came to."""

    flash: str = ""  # the message for the staff member ("" when there is none, or one was already set)
    outcome: Optional[str] = None  # the audit event's outcome; None when there is nothing to audit
    details: Dict[str, Any] = field(default_factory=dict)  # the audit event's details
    # Work that must follow the audit event, so what reached the patient is audited even if it fails.
    then: Optional[Callable[[], Awaitable[Any]]] = None


FormWork = Callable[[MultiDictProxy], Awaitable[Done]]


async def form_action(request: web.Request, go_to: str, work: FormWork,
                      action: str = "", subject: str = "") -> NoReturn:
    """One console form, POST then redirect: ``work`` reads the posted form, checks it and calls
    the service; when what it comes to names an outcome it is audited as ``action`` on
    ``subject`` (by the staff member), its message is flashed, and the browser goes to ``go_to``."""
    done = await work(await request.post())
    if done.outcome is not None:
        await staff_services(request).audit.record(current_staff(request).actor, action, subject,
                                                    done.outcome, done.details)
    if done.then is not None:
        await done.then()
    if done.flash:
        await set_flash(request, done.flash)
    raise web.HTTPSeeOther(go_to)


ConversationWork = Callable[[MultiDictProxy, str], Awaitable[Done]]


async def conversation_action(request: web.Request, action: str, work: ConversationWork) -> NoReturn:
    """A form on the conversation in the URL: :func:`form_action` with ``work(form, conversation)``,
    audited as ``action`` on the conversation, then back to its page."""
    conversation = conversation_of(request)
    await form_action(request, conversation_path(conversation), lambda form: work(form, conversation),
                      action, conversation)
