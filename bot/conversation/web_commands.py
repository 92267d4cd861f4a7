"""Web chat's deterministic answers, before the NLU: STOP, START and HELP, and "sign out".

SMS consent belongs to the phone: a chat in a browser proves nothing about who holds the
number, so STOP typed here changes no consent; it explains how to stop texts (STOP from the
phone) and how to leave the chat. HELP gives the office's contact details. "Sign out" (typed,
or the page's Sign out button through :func:`sign_out`) ends the verified session and the
chat's binding to a number on file.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, List, Optional

from bot.conversation import own_replies
from bot.conversation.safety_answers import Writes
from bot.core.keywords import OPT_IN, OPT_OUT, SIGN_OUT, keyword_language, web_keyword
from bot.core.phone import national
from bot.records.identity import clear_pending
from bot.services import Services
from bot.storage.audit import SYSTEM

logger = logging.getLogger(__name__)


async def sign_out(services: Services, conversation: str) -> None:
    """End ``conversation``'s verified session, any verification in progress and its binding to
    a number on file (the failures counted stay: signing out does not lift a lock-out)."""
    await asyncio.gather(services.identity.end(conversation), clear_pending(services.identity, conversation),
                         services.web_bindings.clear(conversation))
    await services.audit.record(SYSTEM, "web_signed_out", conversation, "ok", {})
    logger.info("web conversation %s signed out", conversation)


class WebCommands:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def answer(self, text: str, conversation: str, finishing: Writes,
                     received: Callable[[], Awaitable]) -> Optional[List[str]]:
        """The chat's own answer to ``text``, or None to let it go on (the caller then records
        ``received``). Like the keyword gate's, these answers keep no number for staff."""
        keyword = web_keyword(text)
        if keyword is None:
            return None
        if keyword == SIGN_OUT:
            await asyncio.gather(received(), sign_out(self.services, conversation))
            return [own_replies.signed_out()]
        office, audit = self.services.office, self.services.audit
        language = keyword_language(text)
        texts_from = national(self.services.cfg.sms_from_number)
        finishing.insert(0, received)  # nothing changes: the event goes with the last writes
        # Audited: the compliance report can show that a STOP in the chat changed no consent.
        finishing.append(lambda: audit.record(SYSTEM, "web_keyword", conversation, "consent_unchanged",
                                              {"keyword": keyword}))
        if keyword == OPT_OUT:
            return [own_replies.web_stop(office, texts_from, language)]
        if keyword == OPT_IN:
            return [own_replies.web_start(office, texts_from, language)]
        return [own_replies.web_help(office, language)]  # HELP
