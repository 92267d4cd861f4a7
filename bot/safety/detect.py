"""Emergency and crisis detection: deterministic, explainable, and independent of the ML model.

Every inbound message passes through :func:`detect_emergency` before anything else the bot
does (DESIGN.md, step 5). It is a pure function of the text: no I/O, no model, so it works
when Redis, Rasa or the action server are down, and it says which rule fired.

The text is read as :mod:`bot.safety.normalise` prepares it (and as :mod:`bot.safety.rules_es`
prepares it for Spanish); the rules of :mod:`bot.safety.rules` then run in priority order and
the first match decides the reply; last, the backstop (a danger word with a sign of urgency).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Optional, Pattern

from bot.safety.normalise import prepare
from bot.safety.rules import CATEGORIES, DANGER_WORDS, RULES, SAFE_RANGES, URGENCY
from bot.safety.rules_es import SPANISH_RULES, prepare_es

_DANGER = tuple((cat, re.compile(r"\b(?:" + words + r")\b")) for cat, words in DANGER_WORDS)
_URGENT = re.compile(URGENCY)


@dataclass(frozen=True)
class _Rule:
    category: str
    name: str
    pattern: Pattern[str]


_RULES = tuple(_Rule(cat, name, re.compile(pattern)) for cat, name, pattern in RULES)
_RULES_ES = tuple(_Rule(cat, name, re.compile(pattern)) for cat, name, pattern in SPANISH_RULES)
assert {r.category for r in _RULES} == set(CATEGORIES) - {"crisis"}, "every category needs a rule and every rule a category"
assert {r.category for r in _RULES_ES} <= set(CATEGORIES), "a Spanish rule names an unknown category"


@dataclass(frozen=True)
class Emergency:
    """An emergency a safety layer found: its category, and which rule or layer said so."""

    category: str  # one of CATEGORIES
    rule: str  # which rule fired (or which layer decided), for the audit and the evaluation report
    layer: str = "rules"  # rules | classifier | nlu | net: the safety layer that caught it

    @property
    def redirect(self) -> str:
        """Which help line the reply points to (``medical``, ``suicide``, ``poison``, ...)."""
        return CATEGORIES[self.category].redirect

    @property
    def label(self) -> str:
        """What staff see in the alert."""
        return CATEGORIES[self.category].label


def _fires(rule: _Rule, text: str) -> bool:
    for match in rule.pattern.finditer(text):
        readings = [(name, value) for name, value in match.groupdict().items() if value is not None]
        if not readings or any(not (SAFE_RANGES[n][0] <= int(v) <= SAFE_RANGES[n][1]) for n, v in readings):
            return True
    return False


def _backstop(prepared: str, urgent: bool) -> List[Emergency]:
    if not urgent:
        return []
    return [Emergency(cat, "danger word + urgency") for cat, words in _DANGER if words.search(prepared)]


def _urgent(text: str, prepared: str) -> bool:
    return bool(_URGENT.search(text.lower()) or _URGENT.search(prepared))


def detect_all(text: str) -> List[Emergency]:
    """Every rule that fires on ``text``, in priority order (for the evaluation and the audit)."""
    prepared, prepared_es = prepare(text), prepare_es(text)
    found = [Emergency(rule.category, rule.name) for rule in _RULES if _fires(rule, prepared)]
    found += [Emergency(rule.category, "es: " + rule.name) for rule in _RULES_ES if _fires(rule, prepared_es)]
    return found + _backstop(prepared, _urgent(text, prepared))


def detect_emergency(text: str) -> Optional[Emergency]:
    """The highest-priority emergency the rules find in ``text``, English first, then Spanish;
    or None. Pure: safe to call with no services up."""
    prepared = prepare(text)
    for rule in _RULES:
        if _fires(rule, prepared):
            return Emergency(rule.category, rule.name)
    prepared_es = prepare_es(text)
    for rule in _RULES_ES:
        if _fires(rule, prepared_es):
            return Emergency(rule.category, "es: " + rule.name)
    backstop = _backstop(prepared, _urgent(text, prepared))
    return backstop[0] if backstop else None
