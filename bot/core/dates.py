"""Dates in patients' messages: a date of birth read from what people text ("3/4/85", "March 4th
1985"), full dates masked before the bot sees them, and whether a message holds a date at all.
Pure: no I/O."""
from __future__ import annotations

import re
from datetime import date
from typing import List, Optional, Tuple

MONTHS = {m: i for i, m in enumerate(
    ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
     "november", "december"], start=1)}
MONTHS.update({name[:3]: number for name, number in list(MONTHS.items())})
MONTHS["sept"] = 9


class InvalidDate(ValueError):
    """The text looks like a date but is not a possible date of birth (the message says why)."""


def _year(raw: str, today: date) -> int:
    year = int(raw)
    if len(raw) == 2:  # 62 -> 1962, 05 -> 2005: the most recent year not in the future
        year += 2000 if 2000 + year <= today.year else 1900
    return year


def parse_dob(text: str, today: Optional[date] = None) -> Optional[date]:
    """A date of birth in a common format, None if the text holds no date at all.

    Accepts 03/14/1962, 3-14-62, 3.14.1962, March 14 1962, Mar 14, 1962, 14 March 1962 and
    1962-03-14 (US month-first for numeric dates). Raises :class:`InvalidDate` for a date that
    cannot be a birth date (31/02, month 13, in the future, more than 130 years ago).
    """
    today = today or date.today()
    t = " ".join(text.lower().replace(",", " ").split())
    candidates: List[Tuple[int, int, int]] = []
    m = re.search(r"\b(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})\b", t)
    if m:
        candidates.append((int(m.group(1)), int(m.group(2)), int(m.group(3))))
    m = m or re.search(r"\b(\d{1,2})[-/.](\d{1,2})[-/.](\d{2}|\d{4})\b", t)
    if m and not candidates:
        candidates.append((_year(m.group(3), today), int(m.group(1)), int(m.group(2))))
    if not candidates:
        m = re.search(r"\b([a-z]{3,9})\.? (\d{1,2})(?:st|nd|rd|th)? (\d{2}|\d{4})\b", t)
        if m and m.group(1) in MONTHS:
            candidates.append((_year(m.group(3), today), MONTHS[m.group(1)], int(m.group(2))))
    if not candidates:
        m = re.search(r"\b(\d{1,2})(?:st|nd|rd|th)? (?:of )?([a-z]{3,9})\.? (\d{2}|\d{4})\b", t)
        if m and m.group(2) in MONTHS:
            candidates.append((_year(m.group(3), today), MONTHS[m.group(2)], int(m.group(1))))
    if not candidates:
        return None
    year, month, day = candidates[0]
    try:
        born = date(year, month, day)
    except ValueError:
        raise InvalidDate("that date doesn't exist; please use the format MM/DD/YYYY") from None
    if born > today:
        raise InvalidDate("that date is in the future; please use the format MM/DD/YYYY")
    if today.year - born.year > 130:
        raise InvalidDate("that date is too long ago; please use the format MM/DD/YYYY")
    return born


MONTH_NAME = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"  # "Mar", "march", "Sept."
DATE_LIKE = re.compile(
    r"\b\d{1,4}[-/.]\d{1,2}[-/.]\d{2,4}\b"
    rf"|\b{MONTH_NAME} \d{{1,2}}(?:st|nd|rd|th)?,? \d{{2,4}}\b"
    rf"|\b\d{{1,2}}(?:st|nd|rd|th)? (?:of )?{MONTH_NAME},? \d{{2,4}}\b",
    re.IGNORECASE,
)


def mask_dates(text: str) -> str:
    """``text`` with every full date replaced by ``[date]``: what the bot's NLU and tracker get,
    so a date of birth typed out of turn is never kept."""
    return DATE_LIKE.sub("[date]", text)


# The mask, a full date left unmasked (as in ``rasa shell``), a month with a day or a year.
_DATE_SHAPE = re.compile(
    rf"\[date\]|\b{MONTH_NAME} \d{{1,2}}(?:st|nd|rd|th)?\b|\b\d{{1,2}}(?:st|nd|rd|th)? (?:of )?{MONTH_NAME}"
    rf"|\b{MONTH_NAME},? (?:19|20)\d\d\b|\b(?:19|20)\d\d-\d\d-\d\d\b",
    re.IGNORECASE,
)


def has_date(text: str) -> bool:
    """Whether ``text`` holds something a date of birth could be."""
    return bool(_DATE_SHAPE.search(text) or DATE_LIKE.search(text))


# The words that may stand around a date of birth given on its own ("my dob is 6/15/2012",
# "born June 15 2012", "and her date of birth: 06/15/2012").
_DOB_WORDS = frozenset(
    "my his her their our the patient patient's kid's child's son's daughter's dob d o b is date of birth "
    "birthday birthdate born on i was it it's its for now and what about this that here please pls ok okay "
    "thanks thank you try".split()
)


def standalone_dob(text: str, today: Optional[date] = None) -> Optional[date]:
    """A date of birth given on its own: a full date with, around it, only words that introduce
    a date of birth; None for anything else, an impossible date included (a date inside a
    sentence, "I was seen on 01/05/2024", is not taken for one)."""
    rest = DATE_LIKE.sub(" ", text.lower().replace("\u2019", "'"))
    if any(word not in _DOB_WORDS for word in re.findall(r"[a-z']+|\d+", rest)):
        return None
    try:
        return parse_dob(text, today)
    except InvalidDate:
        return None
