"""The review inbox (bot.nlu.inbox) in the console: staff flag, admins label.

Any staff member can flag a patient's message in a conversation's bot transcript as one the
bot got wrong; it joins the inbox (sealed, reason ``staff_flag``). Admins see only scrubbed
texts (bot.nlu.scrub, with the names of the patients on file) and label an item into an intent
of domain.yml, propose a new intent for it, or discard it. Labels
go to ``NLU_PROJECT_DIR``/data/nlu.yml through bot.nlu.data (tidy, no duplicates, no example
in two intents, nothing the scrubber still flags). Every view and change is audited with the
admin's id. Training, evaluation and rollout are on the Model page
(:mod:`channels.staff.model_views`), which runs the same commands as background jobs at low
CPU priority.
"""
from __future__ import annotations

from typing import Awaitable, Callable, NoReturn

from aiohttp import web
from multidict import MultiDictProxy

from bot.nlu.data import INTENT_NAME, DataError, add_example, known_intents
from bot.nlu.inbox import InboxItem, ReviewInbox
from bot.nlu.scrub import scrubber_for
from channels.staff.auth import current_staff, route
from channels.staff.views import Done, conversation_action, form_action, page_flash, render, set_flash, staff_services
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
    """The review inbox, scrubbed (a view, audited)."""
    services = staff_services(request)
    cfg = request.config_dict[SETTINGS]
    items = await _inbox(request).items(await _scrubber(request))
    await services.audit.record(current_staff(request).actor, "nlu_inbox_viewed", "", "ok", {"items": len(items)})
    flash = await page_flash(request)
    intents = sorted(i for i in known_intents(cfg.nlu_project_dir) if i != "nlu_fallback")
    return render(request, "nlu_inbox.html", items=items, intents=intents, flash=flash)


ItemWork = Callable[[MultiDictProxy, InboxItem], Awaitable[Done]]


async def _item_action(request: web.Request, action: str, work: ItemWork) -> NoReturn:
    """A form on one inbox item: ``work`` acts on it, audited as ``action`` on the item; an item
    no longer in the inbox is only reported back."""
    item = await _inbox(request).get(request.match_info["item"], await _scrubber(request))
    if item is None:
        await set_flash(request, "That message is no longer in the inbox.")
        raise web.HTTPSeeOther(INBOX_PAGE)
    await form_action(request, INBOX_PAGE, lambda form: work(form, item), action, item.id)


@route("POST", "/admin/nlu/{item}/label", "admin")
async def label(request: web.Request) -> web.Response:
    """Add an inbox item to the training data as an example of an existing intent."""
    cfg = request.config_dict[SETTINGS]

    async def work(form: MultiDictProxy, item: InboxItem) -> Done:
        intent = str(form.get("intent", ""))
        scrubber = await _scrubber(request)
        try:
            added = add_example(cfg.nlu_project_dir, intent, item.text, scrubber,
                                cfg.nlu_project_dir / "tests" / "nlu" / "holdout.yml")
        except DataError as exc:
            return Done(f"Not added: {exc}", "refused", {"intent": intent[:64]})
        await _inbox(request).remove(item.id)
        return Done(f"Added as an example of {intent}." if added else f"Already an example of {intent}.",
                    "ok", {"intent": intent, "added": added})

    await _item_action(request, "nlu_labelled", work)


@route("POST", "/admin/nlu/{item}/propose", "admin")
async def propose(request: web.Request) -> web.Response:
    """Set an inbox item aside as an example of a new intent."""
    async def work(form: MultiDictProxy, item: InboxItem) -> Done:
        intent = str(form.get("intent", "")).strip()
        if not INTENT_NAME.match(intent):
            return Done("A new intent's name is lower case letters, digits and underscores.")
        await _inbox(request).propose(item.id, intent)
        return Done(f"Proposed as an example of a new intent {intent} (add it to domain.yml to train it).",
                    "ok", {"intent": intent})

    await _item_action(request, "nlu_intent_proposed", work)


@route("POST", "/admin/nlu/{item}/discard", "admin")
async def discard(request: web.Request) -> web.Response:
    """Drop an inbox item."""
    async def work(form: MultiDictProxy, item: InboxItem) -> Done:
        await _inbox(request).remove(item.id)
        return Done("Discarded.", "ok")

    await _item_action(request, "nlu_discarded", work)


@route("POST", "/conversations/{conversation}/flag", "agent")
async def flag(request: web.Request) -> web.Response:
    """Flag a patient message of the bot transcript (form field ``at``: its timestamp; default
    the latest) for the review inbox."""
    services = staff_services(request)

    async def work(form: MultiDictProxy, conversation: str) -> Done:
        at = str(form.get("at", ""))
        transcript = await services.history.transcript(conversation)
        if transcript is None:
            return Done("The bot's side of the conversation is unavailable right now; nothing was flagged.")
        said = [m for m in transcript if m.get("kind") == "patient" and isinstance(m.get("text"), str)]
        chosen = next((m for m in said if str(m.get("timestamp")) == at), None) if at else (said[-1] if said else None)
        if chosen is None:
            return Done("There is no such patient message to flag.")
        item = await _inbox(request).capture(chosen["text"], "unknown", 0.0, "staff_flag")
        return Done("Flagged for the admins' review inbox.", "ok", {"item": item})

    await conversation_action(request, "nlu_flagged", work)
