"""The PHI scrubber: what a patient's message must lose before an admin sees it or it becomes
training data.

``scrub(text)`` replaces phone numbers (found with phonenumbers, not a regex), dates, e-mail
addresses, MRN-like identifiers, street addresses and ZIP codes, and the names of the office's
patients with placeholders (``[phone]``, ``[date]``, ``[email]``, ``[id]``, ``[address]``,
``[name]``). ``findings(text)`` says which kinds it would replace; ``patientbot train`` refuses
data for which it finds anything. Placeholders themselves are never findings, and ``[date]`` is
what the gateway already gives the NLU for a date, so scrubbed examples match what it sees.

Findings name kinds only, never the matched text, so they are safe in logs and error messages.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import FrozenSet, Iterable, List, Set, Tuple

import phonenumbers

from bot.core.dates import DATE_LIKE

PLACEHOLDERS = ("[phone]", "[date]", "[email]", "[id]", "[address]", "[name]")

_MONTHS = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
# Partial dates too: a birthday without its year ("3/14", "march 14th") is still identifying.
_DATE_EXTRA = re.compile(
    rf"\b\d{{1,2}}/\d{{1,2}}\b|\b{_MONTHS} \d{{1,2}}(?:st|nd|rd|th)?\b|\b\d{{4}}-\d{{2}}-\d{{2}}\b"
    rf"|\b(?:19|20)\d{{2}}\b(?=\s*$|\s*[,.)])",
    re.IGNORECASE,
)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
# MRN-like: an explicit record label with a number, or any run of 6+ digits (with separators).
_MRN = re.compile(
    r"\b(?:mrn|mr#|medical record(?: number| no\.?| #)?|record (?:number|no\.?|#)|member id|patient id|"
    r"acct|account(?: number| no\.?| #)?|policy(?: number| no\.?| #)?|id)\s*[:#]?\s*[A-Z0-9-]*\d[A-Z0-9-]*\b"
    r"|\b[A-Z]{0,3}\d(?:[ -]?\d){5,}\b",
    re.IGNORECASE,
)
# Street types; short forms that are everyday words in a medical office's texts ("dr" is a
# doctor, "way") are left out.
_STREET = (r"(?:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|court|ct|place|"
           r"terrace|parkway|pkwy|highway|hwy|circle|square)")
# A house number is not a time or a quantity ("at 3 pm", "10 min late", "2 kids").
_NOT_A_HOUSE_NUMBER = r"(?!\s*(?:am|pm|a\.m\.|p\.m\.|min|mins|minutes|hours?|hrs?|days?|weeks?|months?|years?|kids|times)\b)"
_ADDRESS = re.compile(
    rf"\b\d{{1,6}}{_NOT_A_HOUSE_NUMBER}\s+(?:[A-Za-z0-9'.-]+\s+){{1,4}}{_STREET}\b\.?"
    r"(?:,?\s*(?:apt|apartment|unit|suite|ste|#)\s*\w+)?"
    r"|\bp\.?\s?o\.?\s+box\s+\d+\b"
    r"|\b(?:apt|apartment|unit|suite)\s*#?\s*\d+\w?\b"
    r"|\b\d{5}(?:-\d{4})?\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]+")
# Names that are everyday words are only taken for names when written with a capital.
_COMMON_WORDS = frozenset(
    "may will hope joy grace faith rose mark bill art june april august dawn summer sunny "
    "rich frank bob pat sue ray gay young long short brown green white black king hill "
    "wood stone well price cash bond love early late day night sage amber ivy holly".split()
)
_PLACEHOLDER_RE = re.compile("|".join(re.escape(p) for p in PLACEHOLDERS))


@dataclass
class Scrubber:
    """Scrubs text; ``names`` are the given and family names of the office's patients."""

    names: FrozenSet[str] = field(default_factory=frozenset)
    region: str = "US"

    def _spans(self, text: str) -> List[Tuple[int, int, str]]:
        spans: List[Tuple[int, int, str]] = []
        for match in phonenumbers.PhoneNumberMatcher(text, self.region, leniency=phonenumbers.Leniency.POSSIBLE):
            spans.append((match.start, match.end, "phone"))
        for pattern, kind in ((_EMAIL, "email"), (DATE_LIKE, "date"), (_DATE_EXTRA, "date"),
                              (_ADDRESS, "address"), (_MRN, "id")):
            spans += [(m.start(), m.end(), kind) for m in pattern.finditer(text)]
        for m in _WORD.finditer(text):
            word = m.group(0).strip("'-")
            low = word.lower()
            if low in self.names and (low not in _COMMON_WORDS or word[:1].isupper()):
                spans.append((m.start(), m.start() + len(word), "name"))
        # Placeholders are not findings: drop spans that lie inside one.
        guarded = [(m.start(), m.end()) for m in _PLACEHOLDER_RE.finditer(text)]
        return [s for s in spans if not any(g0 <= s[0] and s[1] <= g1 for g0, g1 in guarded)]

    def _merged(self, text: str) -> List[Tuple[int, int, str]]:
        """Non-overlapping findings: the earliest wins, then the longest; an overlapping one
        extends it (a name inside an e-mail address is part of the address)."""
        merged: List[Tuple[int, int, str]] = []
        for start, end, kind in sorted(self._spans(text), key=lambda s: (s[0], -(s[1] - s[0]))):
            if merged and start < merged[-1][1]:
                if end > merged[-1][1]:
                    merged[-1] = (merged[-1][0], end, merged[-1][2])
                continue
            merged.append((start, end, kind))
        return merged

    def findings(self, text: str) -> Set[str]:
        """The kinds of PHI found in ``text`` (kinds only, never the text)."""
        return {kind for _, _, kind in self._merged(text)}

    def scrub(self, text: str) -> str:
        """``text`` with every finding replaced by its placeholder."""
        out, pos = [], 0
        for start, end, kind in self._merged(text):
            out.append(text[pos:start])
            out.append(f"[{kind}]")
            pos = end
        out.append(text[pos:])
        return re.sub(r"\s{2,}", " ", "".join(out)).strip()


def names_from_patients(records: Iterable[dict]) -> FrozenSet[str]:
    """Lower-cased given and family names (each word of them) from patient records."""
    names: Set[str] = set()
    for record in records:
        for part in (record.get("given") or "", record.get("family") or ""):
            names.update(w.lower().strip("'-") for w in _WORD.findall(part) if len(w) >= 2)
    return frozenset(names)


async def patient_names(client, keys, prefix: str) -> FrozenSet[str]:
    """The names of every patient on file, opened from their sealed records (kept in memory
    only, for scrubbing; never logged or stored)."""
    records = []
    async for raw in client.scan_iter(match=f"{prefix}patient:*", count=500):
        key = raw.decode() if isinstance(raw, bytes) else raw
        token = await client.get(key)
        if token is None:
            continue
        records.append(json.loads(keys.decrypt_text(token.decode() if isinstance(token, bytes) else token, key)))
    return names_from_patients(records)


async def scrubber_for(client, keys, prefix: str, region: str = "US") -> Scrubber:
    """A scrubber that knows the names of the patients in Redis."""
    return Scrubber(await patient_names(client, keys, prefix), region)
