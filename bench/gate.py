"""In-process cost of the deterministic safety gate (emergency detector + keyword classifier).

    .venv/bin/python bench/gate.py

Runs every message of the evaluation set through both checks, several rounds, and prints the
median and p99 per message. No I/O is involved: this is the cost the gate adds to each message.
"""
from __future__ import annotations

import statistics
import time

from bot.keywords import classify_keyword
from bot.safety import detect_emergency
from bot.safety_eval import DEFAULT_SETS, load

ROUNDS = 5


def main() -> None:
    texts = [ex.text for ex in load(DEFAULT_SETS)] + ["STOP", "yes", "HELP", "cancel my appointment"]
    timings = []
    for _ in range(ROUNDS):
        for text in texts:
            start = time.perf_counter()
            detect_emergency(text)
            classify_keyword(text)
            timings.append(time.perf_counter() - start)
    timings.sort()
    p99 = timings[int(len(timings) * 0.99) - 1]
    print(f"{len(timings)} gate checks: median {statistics.median(timings) * 1e6:.0f} us, "
          f"p99 {p99 * 1e6:.0f} us, max {timings[-1] * 1e6:.0f} us")


if __name__ == "__main__":
    main()
