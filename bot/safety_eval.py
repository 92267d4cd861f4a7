"""Evaluate the emergency detector on a labelled set and write a report.

    python -m bot.safety_eval [tests/safety/emergency_eval.jsonl ...]

Each line of a set is ``{"text": ..., "label": <category or "none">}``. An emergency counts as
caught when the detector flags it at all (every redirect names 911); the report also shows
whether the reply points to the right help line: 988 for suicide and self-harm, Poison Help for
poisoning. The sets are synthetic and written for this purpose (tests/safety/README.md).
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, List, Optional, Sequence

from bot.safety import CATEGORIES, POISON, SUICIDE, detect_emergency

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SETS = (ROOT / "tests/safety/emergency_eval.jsonl",)
NONE = "none"
# Labels whose help line differs from plain 911: the reply must name it.
REQUIRED_REDIRECT = {"suicide": SUICIDE, "poisoning": POISON}


@dataclass(frozen=True)
class Example:
    text: str
    label: str


@dataclass
class Result:
    total: Counter = field(default_factory=Counter)
    caught: Counter = field(default_factory=Counter)
    right_redirect: Counter = field(default_factory=Counter)
    false_alarms: Counter = field(default_factory=Counter)  # by the category that fired
    misses: List[Example] = field(default_factory=list)
    wrong_redirects: List[Example] = field(default_factory=list)
    false_alarm_examples: List[Example] = field(default_factory=list)

    @property
    def emergencies(self) -> int:
        return sum(n for label, n in self.total.items() if label != NONE)

    @property
    def recall(self) -> float:
        return sum(n for label, n in self.caught.items() if label != NONE) / max(self.emergencies, 1)

    @property
    def false_positive_rate(self) -> float:
        return sum(self.false_alarms.values()) / max(self.total[NONE], 1)


def load(paths: Iterable[Path]) -> List[Example]:
    examples = []
    for path in paths:
        for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if row["label"] != NONE and row["label"] not in CATEGORIES:
                raise ValueError(f"{path}:{number}: unknown label {row['label']!r}")
            examples.append(Example(row["text"], row["label"]))
    return examples


def evaluate(examples: Sequence[Example]) -> Result:
    result = Result()
    for ex in examples:
        result.total[ex.label] += 1
        found = detect_emergency(ex.text)
        if ex.label == NONE:
            if found:
                result.false_alarms[found.category] += 1
                result.false_alarm_examples.append(ex)
            continue
        if not found:
            result.misses.append(ex)
            continue
        result.caught[ex.label] += 1
        wanted = REQUIRED_REDIRECT.get(ex.label)
        if wanted is None or found.redirect == wanted:
            result.right_redirect[ex.label] += 1
        else:
            result.wrong_redirects.append(ex)
    return result


def report(result: Result, sources: Sequence[Path]) -> str:
    rows = ["| category | messages | caught | recall | right help line | false alarms raised as this category |",
            "|---|---:|---:|---:|---:|---:|"]
    for name in CATEGORIES:
        n = result.total[name]
        if not n and not result.false_alarms[name]:
            continue
        recall = f"{result.caught[name] / n:.1%}" if n else "-"
        rows.append(f"| {name} | {n} | {result.caught[name]} | {recall} | {result.right_redirect[name]}/{n} "
                    f"| {result.false_alarms[name]} |")
    lines = [
        "# Emergency detector evaluation",
        "",
        "Sets: " + ", ".join(str(Path(p).relative_to(ROOT)) if Path(p).is_relative_to(ROOT) else str(p)
                             for p in sources),
        "",
        f"- Emergency messages: {result.emergencies}; caught {sum(result.caught.values())} "
        f"(recall {result.recall:.1%}).",
        f"- Non-emergency messages (alarming words used harmlessly): {result.total[NONE]}; "
        f"false alarms {sum(result.false_alarms.values())} (rate {result.false_positive_rate:.1%}).",
        f"- Suicide/self-harm and poisoning messages whose reply names the wrong help line: "
        f"{len(result.wrong_redirects)}.",
        "",
        *rows,
    ]
    for title, items in (("Missed", result.misses), ("Wrong help line", result.wrong_redirects),
                         ("False alarms", result.false_alarm_examples)):
        if items:
            lines += ["", f"## {title}", ""] + [f"- [{ex.label}] {ex.text}" for ex in items]
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="*", type=Path, default=list(DEFAULT_SETS))
    parser.add_argument("--out", type=Path, default=ROOT / "results/safety_eval.md")
    args = parser.parse_args(argv)
    result = evaluate(load(args.sets))
    text = report(result, args.sets)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
