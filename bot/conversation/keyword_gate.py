"""Opt-out, opt-in and HELP, deterministic and before the NLU: the consent change is made
before the answer, and an opted-out number gets nothing until it opts back in."""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, List, Optional

from bot.conversation.inbound import Inbound
from bot.conversation.safety_answers import Writes
from bot.core import replies
from bot.core.keywords import classify_keyword, is_opt_in_word, keyword_language
from bot.records.consent import ConsentState
from bot.services import Services
from bot.storage.audit import SYSTEM

logger = logging.getLogger(__name__)


class KeywordGate:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def answer(self, msg: Inbound, text: str, conversation: str, phone_idx: str, state: ConsentState,
                     finishing: Writes, received: Callable[[], Awaitable]) -> Optional[List[str]]:
        """The keyword gate's answer, or None to let the message go on to the bot (the caller
        then records ``received``). The gate's answers are known before any write, so the
        "received" event goes beside the consent change, or with the last writes when nothing
        changes; the consent change is made before the answer, its audit event and the end of
        a verified session go with the last writes, still before the answer is sent."""
        keyword = classify_keyword(text)
        language = keyword_language(text)
        office, consent, audit = self.services.office, self.services.consent, self.services.audit
        if keyword == "opt_out" and not state.opted_out:
            # Effective before the reply; the "received" event is chained first either way.
            await asyncio.gather(received(), consent.record_opt_out(phone_idx, "keyword", text))
            finishing.append(lambda: audit.record(SYSTEM, "consent_opt_out", conversation, "recorded",
                                                  {"source": "keyword"}))
            # An opt-out also ends a verified session.
            finishing.append(lambda: self.services.identity.end(conversation))
            logger.info("opt-out recorded for conversation %s", conversation)
            return [replies.opted_out(office, language)]
        if keyword == "opt_in" or (state.opted_out and is_opt_in_word(text)):
            await asyncio.gather(received(), consent.record_opt_in(phone_idx, "keyword", text))
            finishing.append(lambda: audit.record(SYSTEM, "consent_opt_in", conversation, "recorded",
                                                  {"source": "keyword"}))
            logger.info("opt-in recorded for conversation %s", conversation)
            return [replies.opted_in(office, language)]
        if state.opted_out:
            answer: List[str] = []  # no message of any kind until the number opts back in (a second STOP too)
        elif keyword == "help":
            answer = [replies.help_text(office, language)]
        else:
            return None
        finishing.insert(0, received)  # nothing changes: the event goes with the last writes
        return answer
