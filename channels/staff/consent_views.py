"""PHI by text in the console: staff record a patient's written authorization to get health
information in text messages (consent scope ``phi_by_text``), or its withdrawal, for the number
of an SMS conversation. The conversation page shows the current state (:func:`phi_by_text_panel`).

A grant names where the authorization is (a signed form on file, or the web form) and keeps
the exact words the patient agreed to, the risk notice included (prefilled with the standard
words, bot.core.replies.phi_by_text_authorization), and must be confirmed. Both are audited
(``consent_scope_granted`` / ``consent_scope_revoked``) with the scope and source only, never
the words. A web conversation has no number of its own here: not available."""
from __future__ import annotations

from typing import Any, Dict, NoReturn, Optional

from aiohttp import web
from multidict import MultiDictProxy

from bot.core import replies
from bot.records.consent import PHI_BY_TEXT, ConsentState, scope_sources
from bot.storage.crypto import phone_index_from_conversation
from channels.gateway.app_keys import SERVICES
from channels.staff.auth import route
from channels.staff.views import Done, conversation_action, form_text, local_time, staff_services

MAX_AUTHORIZATION_CHARS = 4000
SOURCE_LABELS = {"signed_form": "Signed form on file", "web_form": "Web form"}
REVOKED_BY_STAFF = "Withdrawn: recorded by staff in the console"


async def phi_by_text_panel(request: web.Request, conversation: str,
                            consent: Optional[ConsentState]) -> Dict[str, Any]:
    """What the conversation page shows of ``phi_by_text``: whether it can be recorded here
    (SMS conversations), whether the number has it, from which source and since when, and the
    standard authorization words for the grant form. ``consent``: the state the page read."""
    office = staff_services(request).office
    phone_idx = phone_index_from_conversation(conversation)
    if phone_idx is None or consent is None:
        return {"available": False}
    panel: Dict[str, Any] = {"available": True, "granted": consent.phi_by_text, "opted_out": consent.opted_out,
                             "sources": SOURCE_LABELS, "authorization": replies.phi_by_text_authorization(office)}
    if consent.phi_by_text:
        history = await request.config_dict[SERVICES].consent.history(phone_idx)
        by = scope_sources(history).get(PHI_BY_TEXT, {})
        panel.update(source=SOURCE_LABELS.get(by.get("source", ""), by.get("source", "")),
                     since=local_time(office, by.get("at", "")))
    return panel


@route("POST", "/conversations/{conversation}/phi-by-text/grant", "agent")
async def grant_phi_by_text(request: web.Request) -> NoReturn:
    """Record the patient's written authorization for PHI by text, with its source and words."""
    consent = request.config_dict[SERVICES].consent

    async def work(form: MultiDictProxy, conversation: str) -> Done:
        phone_idx = phone_index_from_conversation(conversation)
        if phone_idx is None:
            return Done("PHI by text applies to SMS conversations only.", "not_sms", {"scope": PHI_BY_TEXT})
        source = str(form.get("source", ""))
        words = form_text(form, "text", MAX_AUTHORIZATION_CHARS)
        if source not in SOURCE_LABELS or not words or form.get("confirm") != "yes":
            return Done("Not recorded: choose where the written authorization is, keep the words the patient "
                        "agreed to, and tick the confirmation.", "incomplete", {"scope": PHI_BY_TEXT})
        try:
            await consent.grant_scope(phone_idx, PHI_BY_TEXT, source, words)
        except ValueError:  # the number opted out: it must text START first
            return Done("Not recorded: this number has opted out of texts (STOP). The patient must text START "
                        "first; then record the authorization again.", "opted_out", {"scope": PHI_BY_TEXT})
        return Done("Recorded: this number may now get health information by text after verification.", "ok",
                    {"scope": PHI_BY_TEXT, "source": source})

    await conversation_action(request, "consent_scope_granted", work)


@route("POST", "/conversations/{conversation}/phi-by-text/revoke", "agent")
async def revoke_phi_by_text(request: web.Request) -> NoReturn:
    """Withdraw PHI by text for the number (the patient asked): from now on it gets secure links."""
    consent = request.config_dict[SERVICES].consent

    async def work(form: MultiDictProxy, conversation: str) -> Done:
        phone_idx = phone_index_from_conversation(conversation)
        if phone_idx is None:
            return Done("PHI by text applies to SMS conversations only.", "not_sms", {"scope": PHI_BY_TEXT})
        words = form_text(form, "text", MAX_AUTHORIZATION_CHARS) or REVOKED_BY_STAFF
        await consent.revoke_scope(phone_idx, PHI_BY_TEXT, "staff", words)
        return Done("Withdrawn: this number gets a secure link instead of health information by text.", "ok",
                    {"scope": PHI_BY_TEXT, "source": "staff"})

    await conversation_action(request, "consent_scope_revoked", work)
