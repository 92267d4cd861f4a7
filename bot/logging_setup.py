"""Logging for every patientbot process: one format, and a redaction filter as a last line.

The code never logs message text, names or numbers on purpose, at any level. Libraries do:
Rasa's debug output prints every user message, its parse and the tracker, and rasa_sdk's
prints the tracker it receives. So below INFO only this project's own loggers are let
through, whatever LOG_LEVEL says; at INFO and above, phone-number-like and date-like strings
are masked in every record (a number in an exception message, say).

The Rasa process configures its own logging; :func:`guard_all_handlers`, called when Rasa
loads our connector, puts the same filter on every handler it has.
"""
from __future__ import annotations

import logging
import re

_PHONE = re.compile(r"(?<!\w)\+?\d[\d\s().-]{8,}\d(?!\w)")  # not digits inside a pseudonym
_DATE = re.compile(r"\b(?:\d{1,2}[/-]\d{1,2}[/-]\d{2,4}|\d{4}-\d{2}-\d{2})\b")


OWN_PACKAGES = frozenset({"bot", "channels", "actions", "devtools", "__main__"})


class RedactingFilter(logging.Filter):
    """Drops libraries' debug records; masks number- and date-like strings in the rest."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO and record.name.split(".")[0] not in OWN_PACKAGES:
            return False
        message = record.getMessage()
        redacted = _DATE.sub("[date]", _PHONE.sub("[number]", message))
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def configure_logging(level: str = "INFO") -> None:
    """Configure the root logger once for a process."""
    root = logging.getLogger()
    root.setLevel(level)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root.handlers[:] = [handler]


def guard_all_handlers() -> None:
    """Put the filter on every handler of every logger in this process (idempotent)."""
    loggers = [logging.getLogger()] + [l for l in logging.root.manager.loggerDict.values()
                                      if isinstance(l, logging.Logger)]
    for each in loggers:
        for handler in each.handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())
