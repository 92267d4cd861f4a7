"""The review inbox (bot.nlu.inbox) in the console: staff flag, admins label.

Any staff member can flag a patient's message in a conversation's bot transcript as one the
bot got wrong; it joins the inbox (sealed, reason ``staff_flag``). Admins see only scrubbed texts (bot.nlu.scrub, with the names of the patients on file) and
label an item into an intent of domain.yml, propose a new intent for it, or discard it. Labels
go to ``NLU_PROJECT_DIR``/data/nlu.yml through bot.nlu.data (tidy, no duplicates, no example
in two intents, nothing the scrubber still flags). Every view and change is audited with the
admin's id. Training, evaluation and rollout are on the Model page
(:mod:`channels.staff.model_views`), which runs the same commands as background jobs at low
CPU priority.
"""
from __future__ import annotations

from aiohttp import web

from bot.nlu.data import INTENT_NAME, DataError, add_example, known_intents
from bot.nlu.inbox import ReviewInbox
from bot.nlu.scrub import scrubber_for
from channels.staff.auth import current_session, current_staff, route
from channels.staff.views import _back_to, _conversation, _flash, _render, _services
from channels.gateway.app_keys import SERVICES, SETTINGS

INBOX_PAGE = "/staff/admin/nlu"


def _inbox(request: web.Request) -> ReviewInbox:
    return request.app[SERVICES].review_inbox


async def _scrubber(request: web.Request):
    cfg = request.config_dict[SETTINGS]
    services = request.app[SERVICES]
    return await scrubber_for(services.redis, services.keys, cfg.redis_prefix, cfg.default_region)


@route("GET", "/admin/nlu", "admin")
async def inbox_page(request: web.Request) -> web.Response:
    services = _services(request)
    cfg = request.config_dict[SETTINGS]
    items = await _inbox(request).items(await _scrubber(request))
    await services.audit.record(current_staff(request).actor, "nlu_inbox_viewed", "", "ok", {"items": len(items)})
    flash = await services.sessions.pop_flash(current_session(request))
    intents = sorted(i for i in known_intents(cfg.nlu_project_dir) if i != "nlu_fallback")
    return _render(request, "nlu_inbox.html", items=items, intents=intents, flash=flash)


async def _item_or_flash(request: web.Request):
    item = await _inbox(request).get(request.match_info["item"], await _scrubber(request))
    if item is None:
        await _flash(request, "That message is no longer in the inbox.")
    return item


@route("POST", "/admin/nlu/{item}/label", "admin")
async def label(request: web.Request) -> web.Response:
    services = _services(request)
    cfg = request.config_dict[SETTINGS]
    me = current_staff(request)
    item = await _item_or_flash(request)
    if item is not None:
        intent = str((await request.post()).get("intent", ""))
        scrubber = await _scrubber(request)
        try:
            added = add_example(cfg.nlu_project_dir, intent, item.text, scrubber,
                                cfg.nlu_project_dir / "tests" / "nlu" / "holdout.yml")
        except DataError as exc:
            await services.audit.record(me.actor, "nlu_labelled", item.id, "refused", {"intent": intent[:64]})
            await _flash(request, f"Not added: {exc}")
        else:
            await _inbox(request).remove(item.id)
            await services.audit.record(me.actor, "nlu_labelled", item.id, "ok", {"intent": intent, "added": added})
            await _flash(request, f"Added as an example of {intent}." if added else f"Already an example of {intent}.")
    raise web.HTTPSeeOther(INBOX_PAGE)


@route("POST", "/admin/nlu/{item}/propose", "admin")
async def propose(request: web.Request) -> web.Response:
    services = _services(request)
    item = await _item_or_flash(request)
    if item is not None:
        intent = str((await request.post()).get("intent", "")).strip()
        if not INTENT_NAME.match(intent):
            await _flash(request, "A new intent's name is lower case letters, digits and underscores.")
        else:
            await _inbox(request).propose(item.id, intent)
            await services.audit.record(current_staff(request).actor, "nlu_intent_proposed", item.id, "ok",
                                        {"intent": intent})
            await _flash(request, f"Proposed as an example of a new intent {intent} (add it to domain.yml to train it).")
    raise web.HTTPSeeOther(INBOX_PAGE)


@route("POST", "/admin/nlu/{item}/discard", "admin")
async def discard(request: web.Request) -> web.Response:
    services = _services(request)
    item = await _item_or_flash(request)
    if item is not None:
        await _inbox(request).remove(item.id)
        await services.audit.record(current_staff(request).actor, "nlu_discarded", item.id, "ok", {})
        await _flash(request, "Discarded.")
    raise web.HTTPSeeOther(INBOX_PAGE)


@route("POST", "/conversations/{conversation}/flag", "agent")
async def flag(request: web.Request) -> web.Response:
    """Flag a patient message of the bot transcript (form field ``at``: its timestamp; default
    the latest) for the review inbox."""
    services = _services(request)
    conversation = _conversation(request)
    at = str((await request.post()).get("at", ""))
    transcript = await services.history.transcript(conversation)
    if transcript is None:
        await _flash(request, "The bot's side of the conversation is unavailable right now; nothing was flagged.")
        raise _back_to(conversation)
    said = [m for m in transcript if m.get("kind") == "patient" and isinstance(m.get("text"), str)]
    chosen = next((m for m in said if str(m.get("timestamp")) == at), None) if at else (said[-1] if said else None)
    if chosen is None:
        await _flash(request, "There is no such patient message to flag.")
        raise _back_to(conversation)
    item = await _inbox(request).capture(chosen["text"], "unknown", 0.0, "staff_flag")
    await services.audit.record(current_staff(request).actor, "nlu_flagged", conversation, "ok", {"item": item})
    await _flash(request, "Flagged for the admins' review inbox.")
    raise _back_to(conversation)
