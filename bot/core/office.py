"""The office's own configuration (``office.yml``): name, phone, hours, FAQ answers.

The office edits one YAML file; every FAQ reply and every office detail the bot speaks comes
from it, so changing an answer never means changing code.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from functools import lru_cache
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from bot.core.emergency_numbers import US, EmergencyNumbers

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_NAMES = {"mon": "Mon", "tue": "Tue", "wed": "Wed", "thu": "Thu", "fri": "Fri", "sat": "Sat", "sun": "Sun"}
REQUIRED = ("name", "phone", "address", "timezone", "hours", "faq")


class OfficeConfigError(ValueError):
    """office.yml is missing a field or holds a malformed value (the message says which)."""


@dataclass(frozen=True)
class Office:
    name: str
    phone: str
    address: str
    timezone: ZoneInfo
    hours: Mapping[str, Tuple[time, time]]
    faq: Mapping[str, str]
    portal_url: str = ""
    after_hours_reply_by: str = "the next business day"
    late_policy: str = ""
    emergency: EmergencyNumbers = US  # help lines named in emergency redirects

    def hours_text(self) -> str:
        """Opening hours as one short line, consecutive days with equal hours grouped."""
        groups = []
        for day in DAYS:
            span = self.hours.get(day)
            if span is None:
                continue
            label = f"{span[0]:%H:%M}-{span[1]:%H:%M}"
            if groups and groups[-1][2] == label and DAYS.index(groups[-1][1]) == DAYS.index(day) - 1:
                groups[-1][1] = day
            else:
                groups.append([day, day, label])
        parts = []
        for first, last, label in groups:
            days = _DAY_NAMES[first] if first == last else f"{_DAY_NAMES[first]}-{_DAY_NAMES[last]}"
            parts.append(f"{days} {label}")
        return ", ".join(parts)

    def is_open(self, at: datetime) -> bool:
        """Whether the office is open at the (timezone-aware) instant ``at``."""
        local = at.astimezone(self.timezone)
        span = self.hours.get(DAYS[local.weekday()])
        return span is not None and span[0] <= local.time() < span[1]

    def faq_answer(self, topic: str) -> Optional[str]:
        """The configured answer for ``topic`` (an intent name), placeholders filled in."""
        template = self.faq.get(topic)
        if template is None:
            return None
        return template.format(
            name=self.name,
            phone=self.phone,
            address=self.address,
            hours=self.hours_text(),
            portal_url=self.portal_url,
        )


def _parse_time(value: str, where: str) -> time:
    try:
        return datetime.strptime(str(value), "%H:%M").time()
    except ValueError:
        raise OfficeConfigError(f"office.yml {where}: expected HH:MM, got {value!r}") from None


def _emergency_numbers(doc) -> EmergencyNumbers:
    if doc is not None and not isinstance(doc, Mapping):
        raise OfficeConfigError("office.yml emergency_numbers: expected a mapping")
    try:
        return EmergencyNumbers.from_mapping(doc)
    except ValueError as exc:
        raise OfficeConfigError(f"office.yml emergency_numbers: {exc}") from None


def parse_office(doc: Mapping) -> Office:
    """Validate a loaded office.yml document and build an :class:`Office`."""
    if not isinstance(doc, Mapping):
        raise OfficeConfigError("office.yml must be a mapping of settings")
    missing = [key for key in REQUIRED if not doc.get(key)]
    if missing:
        raise OfficeConfigError(f"office.yml is missing: {', '.join(missing)}")
    try:
        tz = ZoneInfo(str(doc["timezone"]))
    except (ZoneInfoNotFoundError, ValueError):
        raise OfficeConfigError(f"office.yml timezone: unknown zone {doc['timezone']!r}") from None
    for section in ("hours", "faq"):
        if not isinstance(doc[section], Mapping):
            raise OfficeConfigError(f"office.yml {section}: expected a mapping (one entry per line)")
    hours: Dict[str, Tuple[time, time]] = {}
    for day, span in dict(doc["hours"]).items():
        if day not in DAYS:
            raise OfficeConfigError(f"office.yml hours: unknown day {day!r} (use {', '.join(DAYS)})")
        if not isinstance(span, (list, tuple)) or len(span) != 2:
            raise OfficeConfigError(f"office.yml hours.{day}: expected [open, close]")
        opens, closes = _parse_time(span[0], f"hours.{day}"), _parse_time(span[1], f"hours.{day}")
        if closes <= opens:
            raise OfficeConfigError(f"office.yml hours.{day}: closes before it opens")
        hours[day] = (opens, closes)
    faq = {str(k): str(v) for k, v in dict(doc["faq"]).items()}
    office = Office(
        name=str(doc["name"]),
        phone=str(doc["phone"]),
        address=str(doc["address"]),
        timezone=tz,
        hours=hours,
        faq=faq,
        portal_url=str(doc.get("portal_url", "")),
        after_hours_reply_by=str(doc.get("after_hours_reply_by", "the next business day")),
        late_policy=str(doc.get("late_policy", "")),
        emergency=_emergency_numbers(doc.get("emergency_numbers")),
    )
    for topic in faq:  # fail at start-up, not when a patient asks, if a placeholder is wrong
        try:
            office.faq_answer(topic)
        except (KeyError, IndexError, ValueError) as exc:
            raise OfficeConfigError(f"office.yml faq.{topic}: bad placeholder {exc}") from None
    return office


@lru_cache(maxsize=8)
def load_office(path: Path) -> Office:
    """Load and validate the office configuration at ``path`` (cached per path)."""
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OfficeConfigError(f"office configuration not found at {path} (set OFFICE_CONFIG)") from None
    return parse_office(doc)
