"""Ask instead of guessing: what the bot does with a message it is not sure about.

When the NLU's best intent is below the fallback threshold, or the two best are too close
(config.yml's FallbackClassifier), the message is not understood well enough to answer. If the
best readings are still credible, the bot asks which one the patient meant ("Did you mean 1)
our office hours or 2) parking? Reply 1 or 2."), numbered for SMS and as buttons on the web
(both send back the number); otherwise it asks the patient to say it another way.

The thresholds are calibrated on a validation split (``patientbot nlu calibrate``, written to
``data/nlu_thresholds.yml``), never set by hand. Pure: no I/O beyond reading that file.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import yaml

MAX_OPTIONS = 3
# Where the readings a question offered travel with the reply (its custom JSON): the Rasa-side
# connector reads them back from the tracker to turn "2" into the second one.
CLARIFY_KEY = "clarify"

# What each intent is called when the bot offers it as a reading. Only topics a patient could
# mean are offered: small talk, dates of birth and emergencies never are (emergencies are
# never a question: the safety layers decide them before this point).
LABELS: Dict[str, Dict[str, str]] = {
    "en": {
        "confirm_appointment": "confirm your appointment",
        "cancel_appointment": "cancel your appointment",
        "reschedule_appointment": "reschedule your appointment",
        "ask_appointment_details": "when your appointment is",
        "ask_appointment_specifics": "what to know before your visit",
        "running_late": "running late",
        "ask_hours": "our office hours",
        "ask_location": "our address and directions",
        "ask_parking": "parking",
        "ask_insurance": "insurance we accept",
        "ask_billing": "a bill or payment",
        "ask_refill": "a prescription refill",
        "ask_portal": "the patient portal",
        "ask_flu_shot": "vaccines and flu shots",
        "request_human": "talking to a staff member",
        "ask_clinical_question": "a medical question for our clinical team",
        "ask_test_results": "test results",
        "bot_challenge": "who you are texting with",
    },
}


@dataclass(frozen=True)
class Thresholds:
    """``answer``: the FallbackClassifier's threshold (below it, a message is not understood);
    ``ambiguity``: its ambiguity threshold (two best closer than this are not understood);
    ``ask``: the least confidence of the best reading for the bot to ask rather than fall back;
    ``option``: the least confidence of any further reading offered beside the best."""
    answer: float = 0.5
    ambiguity: float = 0.1
    ask: float = 0.2
    option: float = 0.08


@lru_cache(maxsize=4)
def thresholds(path: Path) -> Thresholds:
    """The calibrated thresholds in ``path`` (bot.config.NLU_THRESHOLDS_FILE; defaults if the file
    is missing, as on a new project)."""
    if not path.is_file():
        return Thresholds()
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return Thresholds(**{k: float(v) for k, v in (doc.get("thresholds") or {}).items()})


def readings(ranking: Iterable[Dict]) -> List[Tuple[str, float]]:
    """The ranking as (intent, confidence), best first, without the fallback pseudo-intent."""
    out = [(str(r.get("name")), float(r.get("confidence") or 0.0)) for r in ranking
           if r.get("name") and r.get("name") != "nlu_fallback"]
    return sorted(out, key=lambda pair: -pair[1])


def understood(ranking: Sequence[Tuple[str, float]], t: Thresholds) -> bool:
    """Whether the FallbackClassifier lets the best reading through (as config.yml sets it)."""
    if not ranking or ranking[0][1] < t.answer:
        return False
    return len(ranking) < 2 or ranking[0][1] - ranking[1][1] >= t.ambiguity


def options(ranking: Sequence[Tuple[str, float]], t: Thresholds, language: str = "en") -> List[str]:
    """The readings to offer for a message that was not understood: [] means ask to rephrase.

    Only topics are offered (a reading of small talk or a date is never a question worth
    asking): the best topic must be credible (``t.ask``), and up to two more are offered if they
    have at least ``t.option``. A single credible topic is asked as a yes-or-rephrase question
    (see :func:`question`)."""
    labels = LABELS.get(language, LABELS["en"])
    topics = [(intent, confidence) for intent, confidence in ranking if intent in labels]
    if not topics or topics[0][1] < t.ask:
        return []
    return [topics[0][0]] + [intent for intent, confidence in topics[1:MAX_OPTIONS] if confidence >= t.option]


QUESTION = {"en": "I want to be sure I answer the right question. Did you mean:"}
REPLY_WITH = {"en": "Reply with a number, or say it another way."}
ONE = {"en": "I want to be sure I understood. Did you mean {label}? Reply 1 for yes, or say it another way."}
YES = {"en": "Yes, {label}"}


def question(chosen: Sequence[str], language: str = "en") -> Tuple[str, List[Dict[str, str]]]:
    """The numbered question for SMS and the same choices as buttons (each sends its number)."""
    labels = LABELS.get(language, LABELS["en"])
    titles = [labels[intent] for intent in chosen]
    if len(titles) == 1:
        text = ONE.get(language, ONE["en"]).format(label=titles[0])
        return text, [{"title": YES.get(language, YES["en"]).format(label=titles[0]), "payload": "1"}]
    lines = [QUESTION.get(language, QUESTION["en"])]
    lines += [f"{n}) {title}" for n, title in enumerate(titles, start=1)]
    lines.append(REPLY_WITH.get(language, REPLY_WITH["en"]))
    buttons = [{"title": title, "payload": str(n)} for n, title in enumerate(titles, start=1)]
    return "\n".join(lines), buttons


_YES = {"yes", "y", "yeah", "yep", "si", "sí"}
_ORDINALS = {**{word: 1 for word in _YES}, "one": 1, "first": 1, "two": 2, "second": 2, "three": 3, "third": 3,
             "uno": 1, "primero": 1, "primera": 1, "dos": 2, "segundo": 2, "segunda": 2,
             "tres": 3, "tercero": 3, "tercera": 3}
_CHOICE = re.compile(
    r"^\s*(?:(?:option|number|no\.?|#|opcion|opción|numero|número)\s*)?"
    r"(?:the\s+|la\s+|el\s+)?([1-3]|yes|y|yeah|yep|si|sí|one|two|three|first|second|third|uno|dos|tres|primer[oa]|segund[oa]|tercer[oa])"
    r"(?:\s+(?:one|option|please|pls|opcion|opción))?\s*[).!]*\s*$",
    re.IGNORECASE,
)


def choice_number(text: str) -> Optional[int]:
    """The number a reply picks ("2", "#2", "option 2", "the second one"), or None."""
    m = _CHOICE.match(text or "")
    if not m:
        return None
    word = m.group(1).casefold()
    return int(word) if word.isdigit() else _ORDINALS[word]


def chosen_intent(text: str, offered: Sequence[str]) -> Optional[str]:
    """The intent a reply picks among ``offered`` (in the order they were numbered); None when
    the reply is not a pick or picks a number that was not offered. "yes" picks 1, which is
    what a single reading's question asks for."""
    n = choice_number(text)
    if n is None or n > len(offered):
        return None
    if len(offered) > 1 and text.strip(" .!").casefold() in _YES:  # "yes" to a list picks nothing
        return None
    return offered[n - 1]
