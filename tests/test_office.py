"""bot/core/office.py: the repository's office.yml, hours, opening times across time zones, FAQ text,
and a precise OfficeConfigError for each kind of mistake."""
from __future__ import annotations

import copy
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from bot.config import ROOT
from bot.core.office import OfficeConfigError, load_office, parse_office

UTC = timezone.utc
BASE = {
    "name": "Synthetic Clinic",
    "phone": "(555) 010-0199",
    "address": "1 Example Road",
    "timezone": "America/Chicago",
    "hours": {"mon": ["09:00", "17:00"]},
    "faq": {"ask_hours": "Open {hours}.", "ask_location": "{name}, {address}, call {phone}, see {portal_url}"},
    "portal_url": "https://portal.example.org",
}


def doc(**changes):
    d = copy.deepcopy(BASE)
    d.update(changes)
    return d


@pytest.fixture(scope="module")
def office():
    return load_office(ROOT / "office.yml")


def test_repository_office_yml_parses(office):
    assert office.name == "Maple Street Family Medicine"
    assert office.phone == "(555) 010-0199"
    assert office.timezone == ZoneInfo("America/Chicago")
    assert set(office.hours) == {"mon", "tue", "wed", "thu", "fri"}
    assert office.hours["thu"][1].strftime("%H:%M") == "19:00"
    assert office.after_hours_reply_by == "the next business day by noon"
    assert "15 minutes" in office.late_policy
    assert load_office(ROOT / "office.yml") is office  # cached per path


def test_hours_text_groups_consecutive_equal_days(office):
    assert office.hours_text() == "Mon-Wed 08:00-17:00, Thu 08:00-19:00, Fri 08:00-16:00"
    gaps = parse_office(doc(hours={"mon": ["09:00", "17:00"], "wed": ["09:00", "17:00"], "thu": ["09:00", "17:00"],
                                   "sat": ["10:00", "12:00"], "sun": ["10:00", "12:00"]}))
    # Equal hours on non-adjacent days are not merged across a closed day.
    assert gaps.hours_text() == "Mon 09:00-17:00, Wed-Thu 09:00-17:00, Sat-Sun 10:00-12:00"
    # Order in the YAML does not matter: the week order does.
    shuffled = parse_office(doc(hours={"fri": ["08:00", "12:00"], "mon": ["08:00", "12:00"]}))
    assert shuffled.hours_text() == "Mon 08:00-12:00, Fri 08:00-12:00"


@pytest.mark.parametrize("instant,is_open", [
    (datetime(2030, 1, 15, 14, 0, tzinfo=UTC), True),    # Tue 08:00 CST: opening minute
    (datetime(2030, 1, 15, 13, 59, tzinfo=UTC), False),  # Tue 07:59 CST
    (datetime(2030, 1, 15, 22, 59, tzinfo=UTC), True),   # Tue 16:59 CST
    (datetime(2030, 1, 15, 23, 0, tzinfo=UTC), False),   # Tue 17:00 CST: closing time is closed
    (datetime(2030, 1, 18, 0, 30, tzinfo=UTC), True),    # Fri 00:30 UTC is still Thu 18:30 CST
    (datetime(2030, 1, 18, 22, 30, tzinfo=UTC), False),  # Fri 16:30 CST (Friday closes at 16:00)
    (datetime(2030, 1, 19, 16, 0, tzinfo=UTC), False),   # Sat 10:00 CST: closed all day
    (datetime(2030, 7, 15, 13, 30, tzinfo=UTC), True),   # Mon 08:30 CDT (summer time, UTC-5)
    (datetime(2030, 7, 15, 22, 30, tzinfo=UTC), False),  # Mon 17:30 CDT; would be 16:30 in CST
    (datetime(2030, 1, 15, 9, 0, tzinfo=ZoneInfo("America/New_York")), True),  # 08:00 Chicago
])
def test_is_open_uses_the_office_time_zone(office, instant, is_open):
    assert office.is_open(instant) is is_open


def test_faq_placeholders_are_filled(office):
    assert office.faq_answer("ask_hours") == (
        "We're open Mon-Wed 08:00-17:00, Thu 08:00-19:00, Fri 08:00-16:00. Closed on weekends and holidays."
    )
    location = office.faq_answer("ask_location")
    assert office.address in location and office.phone in location and "{" not in location
    assert "https://portal.example.org" in office.faq_answer("ask_billing")
    assert office.faq_answer("no_such_topic") is None
    custom = parse_office(doc())
    assert custom.faq_answer("ask_location") == (
        "Synthetic Clinic, 1 Example Road, call (555) 010-0199, see https://portal.example.org"
    )


@pytest.mark.parametrize("field", ["name", "phone", "address", "timezone", "hours", "faq"])
def test_missing_required_field_is_named(field):
    broken = doc()
    del broken[field]
    with pytest.raises(OfficeConfigError, match=f"missing: {field}$"):
        parse_office(broken)
    with pytest.raises(OfficeConfigError, match=field):
        parse_office(doc(**{field: ""}))


def test_several_missing_fields_are_all_named():
    with pytest.raises(OfficeConfigError, match="missing: phone, faq"):
        parse_office({k: v for k, v in BASE.items() if k not in ("phone", "faq")})


@pytest.mark.parametrize("span,problem", [
    (["9am", "17:00"], r"hours\.tue: expected HH:MM, got '9am'"),
    (["09:00", "25:00"], r"hours\.tue: expected HH:MM, got '25:00'"),
    (["09:00"], r"hours\.tue: expected \[open, close\]"),
    ("09:00-17:00", r"hours\.tue: expected \[open, close\]"),
    (["17:00", "09:00"], r"hours\.tue: closes before it opens"),
    (["09:00", "09:00"], r"hours\.tue: closes before it opens"),
])
def test_bad_hours_are_named(span, problem):
    with pytest.raises(OfficeConfigError, match=problem):
        parse_office(doc(hours={"mon": ["09:00", "17:00"], "tue": span}))


def test_unknown_day_is_named():
    with pytest.raises(OfficeConfigError, match="unknown day 'monday'"):
        parse_office(doc(hours={"monday": ["09:00", "17:00"]}))


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "America", "../etc/passwd", "Chicago"])
def test_unknown_timezone_is_named(zone):
    with pytest.raises(OfficeConfigError, match=f"timezone: unknown zone {zone!r}"):
        parse_office(doc(timezone=zone))


@pytest.mark.parametrize("template", ["Call {fax}.", "Call {0}.", "Call {phone.", "Open {hours:%Y}"])
def test_bad_placeholder_is_named_at_load_time(template):
    with pytest.raises(OfficeConfigError, match=r"faq\.ask_fax: bad placeholder"):
        parse_office(doc(faq={"ask_hours": "Open {hours}.", "ask_fax": template}))


def test_not_a_mapping_and_missing_file(tmp_path):
    with pytest.raises(OfficeConfigError, match="must be a mapping"):
        parse_office(["name", "phone"])
    with pytest.raises(OfficeConfigError, match="not found"):
        load_office(tmp_path / "office.yml")


@pytest.mark.parametrize("field", ["hours", "faq"])
def test_hours_or_faq_that_is_not_a_mapping_is_named(field):
    with pytest.raises(OfficeConfigError, match=field):
        parse_office(doc(**{field: "mon-fri 9-5"}))
