"""The console's pages and actions. Access rules live in :mod:`channels.staff.auth`; every
handler here can rely on them. Each sign-in, failure, PHI view, claim, reply, note, hand-back
and account change is audited with the staff member's id (``staff:<uuid>``); pages with PHI
are never cached (security headers middleware)."""
from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

from aiohttp import web
from redis.exceptions import RedisError

from bot.storage.audit import AuditLog
from bot.storage.crypto import phone_index_from_conversation
from bot.records.handoff import HandoffQueue
from bot.core.office import Office
from bot.records.staff_accounts import StaffAccounts, StaffMember
from bot.records.staff_sessions import StaffSessions
from bot.core.sms_text import split_for_sms
from channels.sms.sender import SendFailed
from channels.staff.auth import (CSRF_FIELD, LOGIN_COOKIE, SESSION_COOKIE, apply_security_headers, clear_cookie,
                                 current_session, current_staff, new_login_token, route, set_cookie)
from channels.staff.bot_history import BotHistory

logger = logging.getLogger(__name__)

CONVERSATION_RE = re.compile(r"^(sms|web)-[0-9a-f]{40}$")
MAX_REPLY_CHARS = 1600
MAX_NOTE_CHARS = 2000
ANONYMOUS = "anonymous:staff-login"
REASON_LABELS = {
    "patient_request": "Asked for a person", "repeated_misunderstanding": "Bot did not understand twice",
    "reschedule": "Reschedule request", "running_late": "Running late", "clinical_question": "Clinical question",
    "test_results": "Test results question", "emergency_follow_up": "Emergency follow-up",
    "verification_lockout": "Verification locked out",
    "safety_check": "Safety check: danger words, check on the patient",
}
SIGNED_OUT_REASONS = {"idle": "You were signed out after a period without activity.",
                      "signin": "Please sign in.", "out": "You are signed out."}
SIGN_IN_FAILED = "Sign-in failed: check the username, password and the current code from your authenticator app."


@dataclass
class StaffServices:
    """What the console works with, built once when the gateway starts."""

    accounts: StaffAccounts
    sessions: StaffSessions
    queue: HandoffQueue
    audit: AuditLog
    history: BotHistory
    office: Office


def _services(request: web.Request) -> StaffServices:
    return request.app["staff_services"]


def _render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    env = request.app["staff_templates"]
    cfg = request.config_dict["settings"]
    context.setdefault("flash", None)
    body = env.get_template(template).render(
        staff=request.get("staff"), csrf=request["session"].csrf if "session" in request else "",
        idle_seconds=cfg.staff_session_idle_minutes * 60, max_failures=cfg.staff_login_max_failures, **context)
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


def _conversation(request: web.Request) -> str:
    conversation = request.match_info["conversation"]
    if not CONVERSATION_RE.match(conversation):
        raise web.HTTPNotFound(text="no such conversation")
    return conversation


def _back_to(conversation: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"/staff/conversations/{conversation}")


async def _flash(request: web.Request, message: str) -> None:
    await _services(request).sessions.flash(current_session(request), message)


# -- signing in and out ---------------------------------------------------------------------------
@route("GET", "/login", None)
async def login_page(request: web.Request) -> web.Response:
    token = new_login_token()
    notice = SIGNED_OUT_REASONS.get(request.query.get("reason", ""), "")
    response = _render(request, "login.html", login_csrf=token, notice=notice, error="")
    set_cookie(response, request, LOGIN_COOKIE, token, max_age=3600)
    return response


@route("POST", "/login", None)
async def login(request: web.Request) -> web.Response:
    services = _services(request)
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
        response = _render(request, "login.html", status=401, login_csrf=token, notice="", error=SIGN_IN_FAILED)
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
    services = _services(request)
    await services.sessions.end(current_session(request))
    await services.audit.record(current_staff(request).actor, "staff_logout", "", "ok", {})
    response = web.HTTPSeeOther("/staff/login?reason=out")
    clear_cookie(response, SESSION_COOKIE)
    raise response


# -- the queue ------------------------------------------------------------------------------------
def _age_seconds(since: str, now: datetime) -> int:
    try:
        return max(0, int((now - datetime.fromisoformat(since)).total_seconds()))
    except (TypeError, ValueError):
        return 0


async def queue_rows(request: web.Request) -> List[Dict[str, Any]]:
    """The queue as the console shows it: pseudonyms, reasons, waiting time, owner. No PHI."""
    services = _services(request)
    me = current_staff(request)
    names = await services.accounts.usernames()
    sla = request.config_dict["settings"].staff_sla_minutes * 60
    now = datetime.now(timezone.utc)
    rows = []
    for entry in await services.queue.waiting():
        owner = entry.get("held_by", "")
        owner_id = owner.split(":", 1)[1] if owner.startswith("staff:") else owner
        waiting = _age_seconds(entry.get("since", ""), now)
        rows.append({
            "conversation": entry["conversation"], "channel": entry.get("channel", ""),
            "reason": entry.get("reason", ""), "reason_label": REASON_LABELS.get(entry.get("reason", ""), "Other"),
            "priority": entry.get("priority", ""), "status": entry.get("status", ""), "since": entry.get("since", ""),
            "waiting_seconds": waiting, "owner": names.get(owner_id, owner) if owner else "",
            "mine": owner == me.actor, "over_sla": entry.get("status") == "waiting" and waiting > sla,
        })
    return rows


@route("GET", "/", "agent")
async def home(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/staff/queue")


@route("GET", "/queue", "agent")
async def queue_page(request: web.Request) -> web.Response:
    rows = await queue_rows(request)
    flash = await _services(request).sessions.pop_flash(current_session(request))
    return _render(request, "queue.html", rows=rows, flash=flash,
                   sla_seconds=request.config_dict["settings"].staff_sla_minutes * 60)


@route("GET", "/api/queue", "agent", kind="api", touch=False)
async def queue_api(request: web.Request) -> web.Response:
    return web.json_response({"rows": await queue_rows(request),
                              "sla_seconds": request.config_dict["settings"].staff_sla_minutes * 60})


# -- one conversation -------------------------------------------------------------------------------
def _local(office: Office, iso_or_ts: Any) -> str:
    try:
        when = (datetime.fromtimestamp(float(iso_or_ts), timezone.utc) if isinstance(iso_or_ts, (int, float))
                else datetime.fromisoformat(str(iso_or_ts)))
    except (TypeError, ValueError):
        return ""
    return when.astimezone(office.timezone).strftime("%b %d %H:%M")


async def _log_items(request: web.Request, conversation: str, after: Optional[str] = None) -> List[Dict[str, str]]:
    services = _services(request)
    names = await services.accounts.usernames()
    items = []
    for entry in await services.queue.log(conversation, after):
        by = entry["by"]
        who = {"patient": "Patient", "bot": "Bot"}.get(entry["kind"], "")
        if entry["kind"] in ("staff", "note"):
            who = names.get(by.split(":", 1)[1], "staff") if by.startswith("staff:") else "staff"
        items.append({"id": entry["id"], "kind": entry["kind"], "who": who, "text": entry["text"],
                      "when": _local(services.office, entry["at"])})
    return items


@route("GET", "/conversations/{conversation}", "agent")
async def conversation_page(request: web.Request) -> web.Response:
    services = _services(request)
    conversation = _conversation(request)
    me = current_staff(request)
    entry = await services.queue.entry(conversation)
    log = await _log_items(request, conversation)
    if entry is None and not log:
        raise web.HTTPNotFound(text="no such conversation")
    transcript = await services.history.transcript(conversation)
    for item in transcript or []:
        item["when"] = _local(services.office, item.get("timestamp"))
    phone_idx = phone_index_from_conversation(conversation)
    opted_out = bool(phone_idx) and (await request.config_dict["pipeline"].consent.state(phone_idx)).opted_out
    await services.audit.record(me.actor, "phi_viewed", conversation, "ok",
                                {"view": "conversation", "log_entries": len(log),
                                 "transcript_entries": len(transcript or [])})
    names = await services.accounts.usernames()
    owner = (entry or {}).get("held_by", "")
    row = None
    if entry:
        row = {**{k: v for k, v in entry.items() if k != "contact"},
               "reason_label": REASON_LABELS.get(entry.get("reason", ""), "Other"),
               "owner": names.get(owner.split(":", 1)[1], owner) if owner.startswith("staff:") else owner,
               "mine": owner == me.actor, "has_contact": "contact" in entry,
               "waiting_seconds": _age_seconds(entry.get("since", ""), datetime.now(timezone.utc))}
    flash = await services.sessions.pop_flash(current_session(request))
    return _render(request, "conversation.html", conversation=conversation, entry=row, log=log,
                   transcript=transcript, opted_out=opted_out, flash=flash,
                   last_id=log[-1]["id"] if log else "",
                   sla_seconds=request.config_dict["settings"].staff_sla_minutes * 60)


@route("GET", "/api/conversations/{conversation}/log", "agent", kind="api", touch=False)
async def conversation_log_api(request: web.Request) -> web.Response:
    services = _services(request)
    conversation = _conversation(request)
    after = request.query.get("after") or None
    if after is not None and not re.fullmatch(r"\d+-\d+", after):
        raise web.HTTPBadRequest(text="after must be a log entry id")
    items = await _log_items(request, conversation, after)
    if items:  # a view of new messages is a PHI view too
        await services.audit.record(current_staff(request).actor, "phi_viewed", conversation, "ok",
                                    {"view": "live_update", "log_entries": len(items)})
    entry = await services.queue.entry(conversation)
    return web.json_response({"items": items, "status": (entry or {}).get("status", "resolved")})


@route("POST", "/conversations/{conversation}/claim", "agent")
async def claim(request: web.Request) -> web.Response:
    services = _services(request)
    conversation = _conversation(request)
    me = current_staff(request)
    claimed, owner = await services.queue.claim(conversation, me.actor)
    if owner is None:
        await services.audit.record(me.actor, "handoff_claimed", conversation, "not_in_queue", {})
        await _flash(request, "This conversation is no longer in the queue.")
    elif not claimed:
        names = await services.accounts.usernames()
        await services.audit.record(me.actor, "handoff_claimed", conversation, "held_by_other", {"owner": owner})
        await _flash(request, f"Not claimed: {names.get(owner.split(':', 1)[-1], 'another staff member')} "
                              "holds this conversation.")
    else:
        await services.audit.record(me.actor, "handoff_claimed", conversation, "ok", {})
        await _flash(request, "You hold this conversation now. The bot stays silent until you resolve it.")
    raise _back_to(conversation)


async def _require_owner(request: web.Request, conversation: str, allow_admin: bool = False) -> Optional[Dict]:
    entry = await _services(request).queue.entry(conversation)
    me = current_staff(request)
    if entry is None or entry.get("status") != "held":
        await _flash(request, "Claim the conversation first.")
        return None
    if entry.get("held_by") != me.actor and not (allow_admin and me.role == "admin"):
        await _flash(request, "Another staff member holds this conversation.")
        return None
    return entry


async def _form_text(request: web.Request, field: str, limit: int) -> str:
    text = str((await request.post()).get(field, "")).replace("\r\n", "\n").strip()
    if len(text) > limit:
        raise web.HTTPBadRequest(text=f"at most {limit} characters")
    return text


@route("POST", "/conversations/{conversation}/reply", "agent")
async def reply(request: web.Request) -> web.Response:
    """Text the patient as the office: consent gate first, then the provider's API."""
    services = _services(request)
    conversation = _conversation(request)
    me = current_staff(request)
    text = await _form_text(request, "text", MAX_REPLY_CHARS)
    if not text:
        await _flash(request, "Nothing to send: the reply was empty.")
        raise _back_to(conversation)
    if await _require_owner(request, conversation) is None:
        await services.audit.record(me.actor, "staff_reply", conversation, "not_owner", {})
        raise _back_to(conversation)
    outcome, message = await send_as_office(request, conversation, text, me)
    await services.audit.record(me.actor, "staff_reply", conversation, outcome, {"text": text})
    if outcome == "sent":
        await services.queue.add_to_log(conversation, "staff", text, me.actor)
    await _flash(request, message)
    raise _back_to(conversation)


async def send_as_office(request: web.Request, conversation: str, text: str, me: StaffMember,
                         actor: Optional[str] = None):
    """(outcome, message for the staff member): through the outbound gate, then SMS."""
    services = _services(request)
    pipeline = request.config_dict["pipeline"]
    phone_idx = phone_index_from_conversation(conversation)
    if phone_idx is None:
        return "no_channel", "Not sent: this conversation's channel cannot be texted from the console."
    decision = await pipeline.outbound.check(phone_idx, conversation, "staff", actor or me.actor)
    if not decision.allowed:
        if decision.reason == "opted_out":
            return "opted_out", ("Not sent: this number has opted out of texts (the patient replied STOP). "
                                 "Nothing can be texted to it until the patient texts START; call the patient instead.")
        return decision.reason, f"Not sent: the outbound gate refused it ({decision.reason})."
    number = await services.queue.contact(conversation)
    if number is None:
        return "no_number", ("Not sent: no number on file for this conversation yet "
                             "(it is kept from the patient's first message after escalation).")
    try:
        for part in split_for_sms(text):
            await request.config_dict["sms_sender"].send(number, part, conversation, actor=actor or me.actor)
    except SendFailed as exc:
        return "send_failed", f"Not delivered: the SMS provider did not take the message ({exc.reason}). Try again."
    return "sent", "Reply sent."


@route("POST", "/conversations/{conversation}/note", "agent")
async def note(request: web.Request) -> web.Response:
    services = _services(request)
    conversation = _conversation(request)
    me = current_staff(request)
    text = await _form_text(request, "text", MAX_NOTE_CHARS)
    if not text:
        await _flash(request, "The note was empty.")
        raise _back_to(conversation)
    if await services.queue.entry(conversation) is None:
        await _flash(request, "This conversation is no longer in the queue.")
        raise _back_to(conversation)
    await services.queue.add_to_log(conversation, "note", text, me.actor)
    await services.audit.record(me.actor, "staff_note", conversation, "ok", {"text": text})
    await _flash(request, "Note added (staff only; the patient does not see it).")
    raise _back_to(conversation)


def resume_notice(office: Office) -> str:
    """What the patient is told when staff hand the conversation back to the bot."""
    return (f"Thanks for talking with our staff. You're back with {office.name}'s automated assistant; "
            f"text here any time or call {office.phone}. In an emergency call 911.")


@route("POST", "/conversations/{conversation}/resolve", "agent")
async def resolve(request: web.Request) -> web.Response:
    """Hand back to the bot: staff messages into the Rasa tracker, a short notice to the patient."""
    services = _services(request)
    conversation = _conversation(request)
    me = current_staff(request)
    entry = await _require_owner(request, conversation, allow_admin=True)
    if entry is None:
        await services.audit.record(me.actor, "handoff_resolved", conversation, "not_owner", {})
        raise _back_to(conversation)
    since = datetime.fromisoformat(entry["since"])
    staff_said = [e for e in await services.queue.log(conversation) if e["kind"] == "staff"
                  and datetime.fromisoformat(e["at"]) >= since]
    notice = resume_notice(services.office)
    record = [{"text": e["text"], "author": "staff", "timestamp": datetime.fromisoformat(e["at"]).timestamp()}
              for e in staff_said]
    record.append({"text": notice, "author": "bot", "timestamp": datetime.now(timezone.utc).timestamp()})
    if not await services.history.record(conversation, record):
        await services.audit.record(me.actor, "handoff_resolved", conversation, "bot_unreachable", {})
        await _flash(request, "Not handed back: the bot could not be reached to record the conversation. "
                              "Nothing changed; try again in a moment.")
        raise _back_to(conversation)
    outcome, _ = await send_as_office(request, conversation, notice, me, actor=me.actor)
    await services.queue.add_to_log(conversation, "bot", notice, me.actor)
    await services.queue.hand_back(conversation)
    await services.audit.record(me.actor, "handoff_resolved", conversation, "ok",
                                {"staff_messages": len(staff_said), "notice": outcome})
    await _flash(request, "Handed back to the bot." + ("" if outcome == "sent" else
                                                       " (The patient was not texted: " + outcome.replace("_", " ") + ".)"))
    raise web.HTTPSeeOther("/staff/queue")


# -- admins -----------------------------------------------------------------------------------------
@route("GET", "/admin/users", "admin")
async def users_page(request: web.Request) -> web.Response:
    services = _services(request)
    now = datetime.now(timezone.utc)
    members = [{"id": m.id, "username": m.username, "role": m.role, "disabled": m.disabled,
                "locked": m.locked(now), "created": _local(services.office, m.created_at)}
               for m in await services.accounts.list()]
    await services.audit.record(current_staff(request).actor, "staff_list_viewed", "", "ok", {})
    flash = await services.sessions.pop_flash(current_session(request))
    return _render(request, "users.html", members=members, flash=flash)


async def _admin_change(request: web.Request, action: str) -> web.Response:
    services = _services(request)
    me = current_staff(request)
    member = await services.accounts.get(request.match_info["staff_id"])
    if member is None:
        raise web.HTTPNotFound(text="no such staff member")
    if member.id == me.id and action == "disable":
        await _flash(request, "You cannot disable your own account.")
        raise web.HTTPSeeOther("/staff/admin/users")
    if action == "disable":
        await services.accounts.set_disabled(member.username, True)
        ended = await services.sessions.end_all(member.id)
        await _flash(request, f"{member.username} is disabled and signed out ({ended} session(s) ended).")
    elif action == "enable":
        await services.accounts.set_disabled(member.username, False)
        await _flash(request, f"{member.username} is enabled.")
    else:
        await services.accounts.unlock(member.username)
        await _flash(request, f"{member.username} can sign in again (lockout lifted).")
    await services.audit.record(me.actor, f"staff_{action}d" if action != "unlock" else "staff_unlocked",
                                member.actor, "ok", {})
    raise web.HTTPSeeOther("/staff/admin/users")


@route("POST", "/admin/users/{staff_id}/disable", "admin")
async def disable_user(request: web.Request) -> web.Response:
    return await _admin_change(request, "disable")


@route("POST", "/admin/users/{staff_id}/enable", "admin")
async def enable_user(request: web.Request) -> web.Response:
    return await _admin_change(request, "enable")


@route("POST", "/admin/users/{staff_id}/unlock", "admin")
async def unlock_user(request: web.Request) -> web.Response:
    return await _admin_change(request, "unlock")


# -- live updates -----------------------------------------------------------------------------------
KEEPALIVE_SECONDS = 15.0


@route("GET", "/events", "agent", kind="stream", touch=False)
async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: the queue or a conversation's log changed (pseudonym and kind only;
    the page then fetches what it shows, so each PHI view is an audited request). The stream
    ends with ``signed_out`` when the session does."""
    services = _services(request)
    session = current_session(request)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"})
    apply_security_headers(response)
    await response.prepare(request)
    pubsub = services.queue.redis.pubsub()
    await pubsub.subscribe(services.queue.events_channel)
    token = request.cookies.get(SESSION_COOKIE)
    loop = asyncio.get_running_loop()
    next_check = loop.time() + KEEPALIVE_SECONDS
    try:
        await response.write(b"event: ready\ndata: {}\n\n")
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message and message.get("type") == "message":
                data = message["data"].decode() if isinstance(message["data"], bytes) else message["data"]
                kind = json.loads(data).get("type", "queue")
                await response.write(f"event: {kind}\ndata: {data}\n\n".encode())
            if loop.time() >= next_check:
                live, _, _ = await services.sessions.load(token, touch=False)
                if live is None or live.key != session.key:
                    await response.write(b"event: signed_out\ndata: {}\n\n")
                    break
                await response.write(b": keepalive\n\n")
                next_check = loop.time() + KEEPALIVE_SECONDS
    except (ConnectionResetError, RedisError):  # the browser went away, or Redis did: the page reconnects
        pass
    finally:
        await pubsub.reset()
    return response
