"""Phone numbers: everything is normalised to E.164 with ``phonenumbers`` before use."""
from __future__ import annotations

from typing import Optional

import phonenumbers


class InvalidPhoneNumber(ValueError):
    """The text is not a phone number we can route to (the message never echoes the input)."""


def to_e164(raw: str, default_region: str = "US") -> str:
    """Normalise ``raw`` (``"(555) 010-0123"``, ``"+1 555 010 0123"``...) to E.164.

    Numbers are accepted when ``phonenumbers`` deems them *possible* for their region; the
    stricter validity check would refuse the 555-01xx range reserved for fictional (demo and
    test) numbers, and SMS providers only ever hand us numbers they could deliver from.
    """
    if raw is None:
        raise InvalidPhoneNumber("no phone number given")
    text = str(raw).strip()
    if not text or len(text) > 32:
        raise InvalidPhoneNumber("not a phone number")
    try:
        parsed = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        raise InvalidPhoneNumber("not a phone number") from None
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidPhoneNumber("not a possible phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def try_e164(raw: str, default_region: str = "US") -> Optional[str]:
    """Like :func:`to_e164` but ``None`` for anything unusable."""
    try:
        return to_e164(raw, default_region)
    except InvalidPhoneNumber:
        return None


def local_timezone(e164: str, fallback: str) -> str:
    """The recipient's time zone from the number's area (phonenumbers' data) when the number
    maps to exactly one zone, else ``fallback`` (the office's zone)."""
    try:
        from phonenumbers import timezone as pn_timezone

        zones = pn_timezone.time_zones_for_number(phonenumbers.parse(e164, None))
    except phonenumbers.NumberParseException:
        return fallback
    zones = [z for z in zones if z != "Etc/Unknown"]
    return zones[0] if len(zones) == 1 else fallback
