"""One conversation in the console: its page (the bot's transcript and the hand-off log,
decrypted for the staff member and audited as a PHI view), claiming it, replying by text as the
office (through the outbound gate), internal notes, and handing it back to the bot."""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Awaitable, Callable, Dict, List, NoReturn, Optional

from aiohttp import web
from multidict import MultiDictProxy

from bot.core.office import Office
from bot.conversation.web_outbox import WebMessage
from bot.core.sms_text import split_for_sms
from bot.records.outbound import SendFailed
from bot.records.staff_accounts import StaffMember
from bot.storage.crypto import phone_index_from_conversation
from channels.staff.auth import current_staff, route
from channels.staff.consent_views import phi_by_text_panel
from channels.staff.queue_views import CHANNEL_LABELS, REASON_LABELS, age_seconds, channel_of
from channels.staff.views import (Done, back_to, conversation_action, conversation_of, form_text, local_time,
                                  page_flash, render, set_flash, staff_services)
from channels.gateway.app_keys import SERVICES, SETTINGS, SMS_SENDER

MAX_REPLY_CHARS = 1600
MAX_NOTE_CHARS = 2000


async def _log_items(request: web.Request, conversation: str, after: Optional[str] = None) -> List[Dict[str, str]]:
    services = staff_services(request)
    names = await services.accounts.usernames()
    items = []
    for entry in await services.queue.log(conversation, after):
        by = entry["by"]
        who = {"patient": "Patient", "bot": "Bot"}.get(entry["kind"], "")
        if entry["kind"] in ("staff", "note"):
            who = names.get(by.split(":", 1)[1], "staff") if by.startswith("staff:") else "staff"
        items.append({"id": entry["id"], "kind": entry["kind"], "who": who, "text": entry["text"],
                      "when": local_time(services.office, entry["at"])})
    return items


@route("GET", "/conversations/{conversation}", "agent")
async def conversation_page(request: web.Request) -> web.Response:
    """The conversation: hand-off entry, log and bot transcript (a PHI view, audited)."""
    services = staff_services(request)
    conversation = conversation_of(request)
    me = current_staff(request)
    entry = await services.queue.entry(conversation)
    log = await _log_items(request, conversation)
    if entry is None and not log:
        raise web.HTTPNotFound(text="no such conversation")
    transcript = await services.history.transcript(conversation)
    for item in transcript or []:
        item["when"] = local_time(services.office, item.get("timestamp"))
    phone_idx = phone_index_from_conversation(conversation)
    consent = await request.config_dict[SERVICES].consent.state(phone_idx) if phone_idx else None
    opted_out = consent is not None and consent.opted_out
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
               "waiting_seconds": age_seconds(entry.get("since", ""), datetime.now(timezone.utc))}
    flash = await page_flash(request)
    return render(request, "conversation.html", conversation=conversation, entry=row, log=log,
                  channel=channel_of(conversation), channel_label=CHANNEL_LABELS.get(channel_of(conversation), "Other"),
                  transcript=transcript, opted_out=opted_out, flash=flash,
                  phi_by_text=await phi_by_text_panel(request, conversation, consent),
                  last_id=log[-1]["id"] if log else "",
                  sla_seconds=request.config_dict[SETTINGS].staff_sla_minutes * 60)


@route("GET", "/api/conversations/{conversation}/log", "agent", kind="api", touch=False)
async def conversation_log_api(request: web.Request) -> web.Response:
    """Log entries after ``?after=ID``, for the page's live updates (audited when any)."""
    services = staff_services(request)
    conversation = conversation_of(request)
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
    """Take the conversation: one owner at a time; the bot stays silent while it is held."""
    services = staff_services(request)
    me = current_staff(request)

    async def work(form: MultiDictProxy, conversation: str) -> Done:
        claimed, owner = await services.queue.claim(conversation, me.actor)
        if owner is None:
            return Done("This conversation is no longer in the queue.", "not_in_queue")
        if not claimed:
            names = await services.accounts.usernames()
            return Done(f"Not claimed: {names.get(owner.split(':', 1)[-1], 'another staff member')} "
                        "holds this conversation.", "held_by_other", {"owner": owner})
        return Done("You hold this conversation now. The bot stays silent until you resolve it.", "ok")

    await conversation_action(request, "handoff_claimed", work)


async def _require_owner(request: web.Request, conversation: str, allow_admin: bool = False) -> Optional[Dict]:
    entry = await staff_services(request).queue.entry(conversation)
    me = current_staff(request)
    if entry is None or entry.get("status") != "held":
        await set_flash(request, "Claim the conversation first.")
        return None
    if entry.get("held_by") != me.actor and not (allow_admin and me.role == "admin"):
        await set_flash(request, "Another staff member holds this conversation.")
        return None
    return entry


async def _text_action(request: web.Request, action: str, limit: int, if_empty: str,
                       work: Callable[[str, str], Awaitable[Done]]) -> NoReturn:
    """A form on a conversation whose ``text`` (at most ``limit`` characters) must not be empty:
    ``work(text, conversation)``; an empty text only gets ``if_empty`` back."""

    async def checked(form: MultiDictProxy, conversation: str) -> Done:
        text = form_text(form, "text", limit)
        return await work(text, conversation) if text else Done(if_empty)

    await conversation_action(request, action, checked)


@route("POST", "/conversations/{conversation}/reply", "agent")
async def reply(request: web.Request) -> web.Response:
    """Text the patient as the office: consent gate first, then the provider's API."""
    services = staff_services(request)
    me = current_staff(request)

    async def send(text: str, conversation: str) -> Done:
        if await _require_owner(request, conversation) is None:
            return Done(outcome="not_owner")  # _require_owner said why
        outcome, message = await send_as_office(request, conversation, text, me)

        async def log_reply() -> None:
            await services.queue.add_to_log(conversation, "staff", text, me.actor)

        return Done(message, outcome, {"text": text}, then=log_reply if outcome == "sent" else None)

    await _text_action(request, "staff_reply", MAX_REPLY_CHARS, "Nothing to send: the reply was empty.", send)


async def send_as_office(request: web.Request, conversation: str, text: str, me: StaffMember,
                         actor: Optional[str] = None):
    """(outcome, message for the staff member): to a web chat through its outbox; to a number
    through the outbound gate, then SMS."""
    services = staff_services(request)
    pipeline = request.config_dict[SERVICES]
    if channel_of(conversation) == "web":
        return await _to_web_chat(request, conversation, text, actor or me.actor)
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
            await request.config_dict[SMS_SENDER].send(number, part, conversation, actor=actor or me.actor)
    except SendFailed as exc:
        return "send_failed", f"Not delivered: the SMS provider did not take the message ({exc.reason}). Try again."
    return "sent", "Reply sent."


async def _to_web_chat(request: web.Request, conversation: str, text: str, actor: str):
    """A reply shown in the patient's web chat (live, or when the browser next connects; kept
    sealed 12 hours). The outbound gate is for texts to a number; a web session is one the
    patient opened and is writing in, so it does not apply: the audit says so."""
    services = request.config_dict[SERVICES]
    await services.web_outbox.send(conversation, [WebMessage(text, kind="staff")])
    await services.audit.record(actor, "web_message_queued", conversation, "ok",
                                {"channel": "web", "outbound_gate": "not_applicable"})
    return "sent", "Reply sent to the patient's web chat."


@route("POST", "/conversations/{conversation}/note", "agent")
async def note(request: web.Request) -> web.Response:
    """An internal note on the conversation (staff only; never sent to the patient)."""
    services = staff_services(request)

    async def add(text: str, conversation: str) -> Done:
        if await services.queue.entry(conversation) is None:
            return Done("This conversation is no longer in the queue.")
        await services.queue.add_to_log(conversation, "note", text, current_staff(request).actor)
        return Done("Note added (staff only; the patient does not see it).", "ok", {"text": text})

    await _text_action(request, "staff_note", MAX_NOTE_CHARS, "The note was empty.", add)


def resume_notice(office: Office) -> str:
    """What the patient is told when staff hand the conversation back to the bot."""
    return (f"Thanks for talking with our staff. You're back with {office.name}'s automated assistant; "
            f"text here any time or call {office.phone}. In an emergency call 911.")


@route("POST", "/conversations/{conversation}/resolve", "agent")
async def resolve(request: web.Request) -> web.Response:
    """Hand back to the bot: staff messages into the Rasa tracker, a short notice to the patient."""
    services = staff_services(request)
    conversation = conversation_of(request)
    me = current_staff(request)
    entry = await _require_owner(request, conversation, allow_admin=True)
    if entry is None:
        await services.audit.record(me.actor, "handoff_resolved", conversation, "not_owner", {})
        raise back_to(conversation)
    since = datetime.fromisoformat(entry["since"])
    staff_said = [e for e in await services.queue.log(conversation) if e["kind"] == "staff"
                  and datetime.fromisoformat(e["at"]) >= since]
    notice = resume_notice(services.office)
    record = [{"text": e["text"], "author": "staff", "timestamp": datetime.fromisoformat(e["at"]).timestamp()}
              for e in staff_said]
    record.append({"text": notice, "author": "bot", "timestamp": datetime.now(timezone.utc).timestamp()})
    if not await services.history.record(conversation, record):
        await services.audit.record(me.actor, "handoff_resolved", conversation, "bot_unreachable", {})
        await set_flash(request, "Not handed back: the bot could not be reached to record the conversation. "
                                 "Nothing changed; try again in a moment.")
        raise back_to(conversation)
    outcome, _ = await send_as_office(request, conversation, notice, me, actor=me.actor)
    await services.queue.add_to_log(conversation, "bot", notice, me.actor)
    await services.queue.hand_back(conversation)
    await services.audit.record(me.actor, "handoff_resolved", conversation, "ok",
                                {"staff_messages": len(staff_said), "notice": outcome})
    not_texted = "" if outcome == "sent" else " (The patient was not texted: " + outcome.replace("_", " ") + ".)"
    await set_flash(request, "Handed back to the bot." + not_texted)
    raise web.HTTPSeeOther("/staff/queue")
