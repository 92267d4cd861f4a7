"""What a channel hands the conversation core: one authenticated, normalised message, and the
two ways the core can refuse it before anything is processed."""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Callable, Optional

from redis.asyncio.client import Pipeline

from bot.core.dates import mask_dates

MAX_TEXT_CHARS = 1600  # longest SMS concatenation carriers deliver

# A channel's rate limit: queues its count on the pipeline that makes a message's first
# round trip, and returns the reader of its verdict (True: admitted) from the results.
Admit = Callable[[Pipeline], Callable[[list], bool]]


class RateLimited(Exception):
    """The sender is over its rate limit; nothing was processed (the channel answers 429)."""


class RetryLater(Exception):
    """Nothing was processed and the sender should retry (the channel answers 503)."""


@dataclass(frozen=True)
class Inbound:
    channel: str  # "sms" | "web"
    sender: str  # E.164 number for SMS, session id for web chat
    text: str
    message_id: str
    media: int = 0  # attachments (MMS): never processed, the patient is told so


@dataclass(frozen=True)
class Pending:
    """A conversation's state the deterministic steps before the NLU need."""
    escalated: bool  # waiting for staff or held by them
    verification: Optional[str]  # the intent a pending date-of-birth question was asked for
    reminder: Optional[str]  # the appointment a pending reminder awaits an answer about


def for_rasa(text: str) -> str:
    """What the bot may see of a patient's text: no leading "/" (Rasa would read "/intent{...}"
    as a command, so a patient could inject intents and slots), full dates masked (a date of
    birth never reaches the tracker), and at most one concatenated SMS long."""
    return mask_dates(text.lstrip("/ \t"))[:MAX_TEXT_CHARS]


def clean_text(text: str) -> str:
    """Drop control and format characters (keep newlines) and trim. The whole text is kept:
    the detector reads all of it and the audit stores all of it; only Rasa gets a capped copy."""
    kept = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C")
    return kept.strip()
