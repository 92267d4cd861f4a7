"""The hand-off queue page and its live updates: pseudonyms, reasons, waiting time and owner,
never PHI. The page follows changes through server-sent events and fetches what it shows."""
from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from typing import Any, Dict, List

from aiohttp import web
from redis.exceptions import RedisError

from channels.staff.auth import SESSION_COOKIE, apply_security_headers, current_session, current_staff, route
from channels.staff.views import page_flash, render, staff_services
from channels.gateway.app_keys import SETTINGS

REASON_LABELS = {
    "patient_request": "Asked for a person", "repeated_misunderstanding": "Bot did not understand twice",
    "reschedule": "Reschedule request", "running_late": "Running late", "clinical_question": "Clinical question",
    "test_results": "Test results question", "emergency_follow_up": "Emergency follow-up",
    "verification_lockout": "Verification locked out",
    "safety_check": "Safety check: danger words, check on the patient",
}
CHANNEL_LABELS = {"sms": "SMS", "web": "Web chat"}
KEEPALIVE_SECONDS = 15.0


def channel_of(conversation: str) -> str:
    """The channel a conversation id names ("sms-..." or "web-...": bot.storage.crypto.conversation_id)."""
    return conversation.split("-", 1)[0] if "-" in conversation else ""


def age_seconds(since: str, now: datetime) -> int:
    """Seconds from the ISO time ``since`` to ``now`` (0 if unreadable or in the future)."""
    try:
        return max(0, int((now - datetime.fromisoformat(since)).total_seconds()))
    except (TypeError, ValueError):
        return 0


async def queue_rows(request: web.Request) -> List[Dict[str, Any]]:
    """The queue as the console shows it: pseudonyms, reasons, waiting time, owner. No PHI."""
    services = staff_services(request)
    me = current_staff(request)
    names = await services.accounts.usernames()
    sla = request.config_dict[SETTINGS].staff_sla_minutes * 60
    now = datetime.now(timezone.utc)
    rows = []
    for entry in await services.queue.waiting():
        owner = entry.get("held_by", "")
        owner_id = owner.split(":", 1)[1] if owner.startswith("staff:") else owner
        waiting = age_seconds(entry.get("since", ""), now)
        rows.append({
            "conversation": entry["conversation"], "channel": channel_of(entry["conversation"]),
            "channel_label": CHANNEL_LABELS.get(channel_of(entry["conversation"]), "Other"),
            "reason": entry.get("reason", ""), "reason_label": REASON_LABELS.get(entry.get("reason", ""), "Other"),
            "priority": entry.get("priority", ""), "status": entry.get("status", ""), "since": entry.get("since", ""),
            "waiting_seconds": waiting, "owner": names.get(owner_id, owner) if owner else "",
            "mine": owner == me.actor, "over_sla": entry.get("status") == "waiting" and waiting > sla,
        })
    return rows


@route("GET", "/", "agent")
async def home(request: web.Request) -> web.Response:
    """The console starts at the queue."""
    raise web.HTTPSeeOther("/staff/queue")


@route("GET", "/queue", "agent")
async def queue_page(request: web.Request) -> web.Response:
    """The hand-off queue page."""
    rows = await queue_rows(request)
    flash = await page_flash(request)
    return render(request, "queue.html", rows=rows, flash=flash,
                  sla_seconds=request.config_dict[SETTINGS].staff_sla_minutes * 60)


@route("GET", "/api/queue", "agent", kind="api", touch=False)
async def queue_api(request: web.Request) -> web.Response:
    """The queue rows, for the page's live updates."""
    return web.json_response({"rows": await queue_rows(request),
                              "sla_seconds": request.config_dict[SETTINGS].staff_sla_minutes * 60})


@route("GET", "/events", "agent", kind="stream", touch=False)
async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: the queue or a conversation's log changed (pseudonym and kind only;
    the page then fetches what it shows, so each PHI view is an audited request). The stream
    ends with ``signed_out`` when the session does."""
    services = staff_services(request)
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
