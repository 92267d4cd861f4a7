"""Logging for every patientbot process: one format, and a redaction filter as a last line.

The code never logs message text, names or numbers on purpose; the filter is the safety net
for what a library might print (a phone number in an exception, say).
"""
from __future__ import annotations

import logging
import re

_PHONE = re.compile(r"\+?\d[\d\s().-]{8,}\d")
_DATE = re.compile(r"\b(?:\d{1,2}[/-]\d{1,2}[/-]\d{2,4}|\d{4}-\d{2}-\d{2})\b")


class RedactingFilter(logging.Filter):
    """Replaces phone-number-like and date-like strings in every record."""

    def filter(self, record: logging.LogRecord) -> bool:
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
