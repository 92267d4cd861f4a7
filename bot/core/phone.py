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


def find_number(text: str, default_region: str = "US") -> Optional[str]:
    """The first whole phone number (area code included) in ``text``, in E.164, or None.

    Read with phonenumbers' matcher, which skips dates and other runs of digits; a local
    number without its area code is not a number we could have on file.
    """
    for match in phonenumbers.PhoneNumberMatcher(text[:200], default_region, leniency=phonenumbers.Leniency.POSSIBLE):
        if phonenumbers.is_possible_number_with_reason(match.number) == phonenumbers.ValidationResult.IS_POSSIBLE:
            return phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
    return None


def looks_like_a_number(text: str) -> bool:
    """Whether ``text`` holds as many digits as a phone number (so it is kept from the bot
    even when it is not a number we can read)."""
    return sum(ch.isdigit() for ch in text) >= 7


def national(e164: str) -> str:
    """``+15550100000`` as people write it in its own country: ``(555) 010-0000``."""
    try:
        return phonenumbers.format_number(phonenumbers.parse(e164, None), phonenumbers.PhoneNumberFormat.NATIONAL)
    except phonenumbers.NumberParseException:
        return e164


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
