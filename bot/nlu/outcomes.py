"""What a patient's message gets, judged by its topic: the understanding figures.

Each labelled message ends in one outcome:

* ``on_topic``   - answered on its topic at once (the intent, or a second request it made);
* ``clarified``  - the bot asked "did you mean ...?" and the right reading was among those
  offered: on topic after one reply;
* ``fallback``   - "say it another way" (or a question that did not offer the right reading);
* ``wrong``      - an answer on another topic;
* ``diverted``   - the gateway answered before the NLU (a safety answer, an opt-out keyword,
  the privacy reply about another person's record) on a message labelled otherwise.

The NLU's part is replayed from its raw ranking with given thresholds (bot.core.clarify), exactly as
the FallbackClassifier, the date guard and the fallback action decide, so one parse per message
serves every threshold of a sweep. Pure: no Rasa, no I/O.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from bot.core import clarify

OUTCOMES = ("on_topic", "clarified", "fallback", "wrong", "diverted")
# Gateway answers that are on topic for some intents: the privacy reply answers a question
# about someone else's appointment or results as designed.
DIVERSION_ON_TOPIC = {"someone_else": {"ask_appointment_details", "ask_appointment_specifics",
                                       "confirm_appointment", "cancel_appointment",
                                       "reschedule_appointment", "ask_test_results", "running_late"}}


@dataclass
class Parsed:
    """One labelled message and what the pipeline made of it."""
    text: str
    intent: str  # the label
    also: Tuple[str, ...] = ()  # further requests the message made (any of them is on topic)
    readings: List[Tuple[str, float]] = field(default_factory=list)  # the classifier's, best first
    final: str = ""  # the intent the NLU pipeline gave (after its guards), as parsed
    gateway: Optional[str] = None  # "safety" | "keyword" | "someone_else" when answered before the NLU
    has_date: bool = False  # whether the date guard lets "provide_dob" stand


def nlu_decision(p: Parsed, t: clarify.Thresholds) -> Tuple[str, List[str]]:
    """(intent answered, readings offered): ("nlu_fallback", options) when not understood."""
    if p.final == "emergency":
        return "emergency", []
    # The safety guard ruled the emergency intent out (channels/rasa_bridge/safety_guards.py): the next reading.
    ranking = [r for r in p.readings if r[0] != "emergency"]
    if ranking and ranking[0][0] == "provide_dob" and not p.has_date:
        ranking = [r for r in ranking if r[0] != "provide_dob"]  # the date guard's next reading
        if not ranking or ranking[0][1] < t.answer:
            return "nlu_fallback", clarify.options(ranking, t)
        return ranking[0][0], []
    if clarify.understood(ranking, t):
        return ranking[0][0], []
    return "nlu_fallback", clarify.options(ranking, t)


def outcome(p: Parsed, t: clarify.Thresholds) -> str:
    """The outcome of one message under thresholds ``t``."""
    right = {p.intent, *p.also}
    if p.gateway is not None:
        return "on_topic" if right & DIVERSION_ON_TOPIC.get(p.gateway, set()) else "diverted"
    answered, offered = nlu_decision(p, t)
    if answered == "emergency":
        return "diverted"
    if answered == "nlu_fallback":
        return "clarified" if right & set(offered) else "fallback"
    return "on_topic" if answered in right else "wrong"


@dataclass
class Summary:
    n: int
    counts: Dict[str, int]
    per_intent: Dict[str, Dict[str, int]]
    examples: Dict[str, List[Tuple[str, str, str]]]  # outcome -> (label, answered, text)

    def rate(self, name: str) -> float:
        return self.counts.get(name, 0) / self.n if self.n else 0.0

    @property
    def on_topic_eventually(self) -> float:
        """On topic at once or after one reply to the bot's question."""
        return self.rate("on_topic") + self.rate("clarified")


def summarise(parsed: Sequence[Parsed], t: clarify.Thresholds) -> Summary:
    counts: Counter = Counter()
    per_intent: Dict[str, Counter] = defaultdict(Counter)
    examples: Dict[str, List[Tuple[str, str, str]]] = defaultdict(list)
    for p in parsed:
        name = outcome(p, t)
        counts[name] += 1
        per_intent[p.intent][name] += 1
        if name != "on_topic":
            answered = p.gateway or nlu_decision(p, t)[0]
            examples[name].append((p.intent, answered, p.text))
    return Summary(len(parsed), {o: counts.get(o, 0) for o in OUTCOMES},
                   {i: {o: c.get(o, 0) for o in OUTCOMES} for i, c in sorted(per_intent.items())},
                   dict(examples))


def grid() -> Iterable[clarify.Thresholds]:
    """The thresholds a calibration tries."""
    for answer in [x / 100 for x in range(20, 91, 5)]:
        for ambiguity in (0.0, 0.05, 0.1, 0.15, 0.2, 0.3):
            for ask in [x / 100 for x in range(5, 51, 5)]:
                if ask > answer:
                    continue
                for option in (0.02, 0.05, 0.1, 0.15, 0.2):
                    yield clarify.Thresholds(answer, ambiguity, ask, option)


def score(s: Summary) -> float:
    """Patients on topic, a question counted a little below a direct answer (it costs a reply)."""
    return s.rate("on_topic") + 0.9 * s.rate("clarified")


def calibrate(parsed: Sequence[Parsed], max_wrong: float = 0.02) -> Tuple[clarify.Thresholds, Summary]:
    """The thresholds that put most messages on topic with at most ``max_wrong`` wrong-topic
    answers (the least wrong if none manages that); ties go to fewer questions, then to the
    middle of the grid's order (stable)."""
    best: Optional[Tuple[Tuple, clarify.Thresholds, Summary]] = None
    for t in grid():
        s = summarise(parsed, t)
        feasible = s.rate("wrong") <= max_wrong
        key = (feasible, score(s) if feasible else -s.rate("wrong"), -s.rate("clarified"))
        if best is None or key > best[0]:
            best = (key, t, s)
    assert best is not None
    return best[1], best[2]


def tradeoff(parsed: Sequence[Parsed], around: clarify.Thresholds) -> List[Dict[str, float]]:
    """On-topic against wrong-topic rate as the answer threshold moves (the others held)."""
    points = []
    for answer in [x / 100 for x in range(5, 100, 5)]:
        t = clarify.Thresholds(answer, around.ambiguity, min(around.ask, answer), around.option)
        s = summarise(parsed, t)
        points.append({"answer": answer, "on_topic": s.rate("on_topic"), "eventually": s.on_topic_eventually,
                       "wrong": s.rate("wrong"), "fallback": s.rate("fallback")})
    return points
