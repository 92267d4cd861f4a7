"""The safety layers in order, as one verdict: what the gateway and the NLU ask.

1. the rules (bot.safety.rules), explainable, English and Spanish;
2. the statistical risk classifier (bot.safety.model), on what the rules let pass;
3. the NLU's emergency intent (channels.rasa_bridge.safety_guards inside Rasa, with :func:`nlu_verdict`);
4. the safety net (bot.safety.net): danger words no layer classified get the safety check.

Layers 1, 2 and 4 are pure and in-process: the gateway runs them on every message before
anything else, so they work with Rasa and Redis down. Layer 3 needs the NLU, so it runs inside
Rasa; when Rasa cannot answer, a message the net flags still gets the safety check.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Mapping, Optional

from bot.core.language import detect_language
from bot.safety.detect import Emergency, detect_emergency
from bot.safety.model import RiskClassifier
from bot.safety.net import danger_concern, has_risk_words, not_now

_WORD = re.compile(r"[^\W\d_]{2,}")
EMERGENCY_INTENT = "emergency"
# The NLU's emergency intent redirects when its confidence anywhere in the ranking reaches this
# ("meaningful weight", not only first place) and the risk classifier does not rule the message
# out (its probability at least NLU_CORROBORATION, below its own threshold of 0.5). The NLU
# learns the intent from about 160 examples and no near-misses: on the development sets it put
# the intent first for 21% of harmless messages with alarming words ("dying to know my
# results"), four times the false-alarm budget, so alone it cannot decide; the classifier,
# trained on thousands of near-misses, is the check on it. Chosen on the development sets
# (README, Safety).
NLU_EMERGENCY_WEIGHT = 0.3
NLU_CORROBORATION = 0.4
REDIRECT, CHECK = "redirect", "check"  # what a safety reply is, as the action marks it
# A message without any word of the crisis vocabulary (bot.safety.net.RISK_VOCABULARY) needs
# this much from the classifier alone; below it the NLU's agreement can still redirect. Chosen on
# out-of-fold predictions: recall 97.9% -> 96.0%, false alarms on the NLU's held-out ordinary
# messages 1.3% -> 0% (README, Safety).
CLASSIFIER_ALONE = 0.7
# The classifier judges words in context: a message with fewer words than this (of two letters or
# more) gives it nothing to judge, and one letter or a carrier keyword scored as high as a crisis
# ("y", the Spanish "and" of many emergencies, 0.81; "END" 0.47). Such messages are left to the
# rules, which name the one-word emergencies ("kms", "fire!"). Across the corpus and every blind
# set, 2 of 286 one-word messages were emergencies, both now caught by rules.
MIN_WORDS_FOR_CLASSIFIER = 2
RISK_KEY = "safety_risk"  # the message metadata key the gateway passes the classifier's probability under


@dataclass(frozen=True)
class Screening:
    emergency: Optional[Emergency]  # layers 1-2: redirect now
    concern: Optional[str]  # layer 4's trigger when 1-2 found nothing: the kind of danger word
    language: str  # "en" | "es": the language of the message, for the reply
    risk: Optional[float] = None  # the classifier's probability of an emergency (passed to the NLU)


def words(text: str) -> int:
    """The words of two letters or more in ``text``."""
    return len(_WORD.findall(text))


def screen(text: str, classifier: Optional[RiskClassifier]) -> Screening:
    """Layers 1, 2 and the net's trigger for ``text``. Pure: no I/O."""
    emergency = detect_emergency(text)
    if emergency is not None and classifier is not None and not_now(text):
        emergency = None  # past, joking or hypothetical: the classifier decides (NOT_NOW)
    probability = None
    if emergency is None and classifier is not None:
        risk = classifier.risk(text)
        probability = risk.probability
        if (probability >= classifier.threshold and (probability >= CLASSIFIER_ALONE or has_risk_words(text))
                and words(text) >= MIN_WORDS_FOR_CLASSIFIER):
            emergency = Emergency(risk.category, f"classifier {risk.group} {probability:.2f}", "classifier")
    concern = danger_concern(text) if emergency is None else None
    return Screening(emergency, concern, detect_language(text), probability)


def emergency_weight(ranking: Iterable[Mapping]) -> float:
    """The emergency intent's confidence in an NLU intent ranking (0 when it is absent)."""
    return max((float(r.get("confidence") or 0.0) for r in ranking or () if r.get("name") == EMERGENCY_INTENT),
               default=0.0)


def nlu_verdict(text: str, ranking: Iterable[Mapping], top_intent: Optional[str] = None,
                risk: Optional[float] = None) -> Optional[str]:
    """Layers 3 and 4 inside the NLU: ``redirect`` when the emergency intent has meaningful
    weight (or came first) and the classifier's ``risk`` (None: unknown) does not rule it out;
    ``check`` when the message has danger words; else None (an ordinary message)."""
    ranking = list(ranking or ())
    first = top_intent == EMERGENCY_INTENT or bool(ranking and ranking[0].get("name") == EMERGENCY_INTENT)
    # Without a word of the crisis vocabulary the classifier must be as sure as it must be
    # alone: the NLU's intent, trained without near-misses, took "is my blue shield plan
    # something u guys take" for a crisis when the classifier gave it 0.54.
    needed = NLU_CORROBORATION if has_risk_words(text) else CLASSIFIER_ALONE
    corroborated = risk is None or risk >= needed
    if corroborated and (first or emergency_weight(ranking) >= NLU_EMERGENCY_WEIGHT):
        return REDIRECT
    if danger_concern(text) is not None:
        return CHECK
    return None


def risk_from(metadata: Optional[Mapping]) -> Optional[float]:
    """The classifier's probability the gateway sent with a message (None when absent)."""
    value = (metadata or {}).get(RISK_KEY)
    return float(value) if isinstance(value, (int, float)) else None


