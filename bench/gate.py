"""In-process cost of the safety gate per message: the rules (English and Spanish), the risk
classifier, the safety net's trigger, the language detector and the keyword classifier.

    .venv/bin/python bench/gate.py

Runs every message of the development sets through the whole in-process gate, several rounds,
and prints the median and p99 per message, and the same for the rules and the classifier alone.
No I/O is involved: this is the cost the gate adds to each message (target: rules plus
classifier under 2 ms at p99).
"""
from __future__ import annotations

import statistics
import time
from typing import Callable, List

from bot.core.keywords import classify_keyword
from bot.safety.detect import detect_emergency
from bot.nlu.safety_eval import DEFAULT_SETS, load
from bot.safety.model import classifier
from bot.safety.screen import screen

ROUNDS = 5


def timed(texts: List[str], check: Callable[[str], object]) -> List[float]:
    timings = []
    for _ in range(ROUNDS):
        for text in texts:
            start = time.perf_counter()
            check(text)
            timings.append(time.perf_counter() - start)
    return sorted(timings)


def line(name: str, timings: List[float]) -> str:
    p99 = timings[int(len(timings) * 0.99) - 1]
    return (f"{name:<40} median {statistics.median(timings) * 1e6:5.0f} us, p99 {p99 * 1e6:5.0f} us, "
            f"max {timings[-1] * 1e6:6.0f} us")


def main() -> None:
    texts = [ex.text for ex in load(DEFAULT_SETS)] + ["STOP", "yes", "HELP", "cancel my appointment"]
    clf = classifier()
    print(f"{len(texts) * ROUNDS} checks per row ({len(texts)} messages x {ROUNDS} rounds)")
    print(line("rules", timed(texts, detect_emergency)))
    print(line("classifier", timed(texts, clf.risk)))
    print(line("rules + classifier", timed(texts, lambda t: detect_emergency(t) or clf.assess(t))))
    print(line("whole gate (screen + keywords)", timed(texts, lambda t: (screen(t, clf), classify_keyword(t)))))


if __name__ == "__main__":
    main()
