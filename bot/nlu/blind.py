"""The understanding figures on the independent in-scope set (tests/nlu/blind/).

``python -m bot.nlu.blind [--model PATH] [--as-before] [--out results/]``

Every message of the set (written by people who never saw data/, never trained on) goes
through the gateway's early answers and the model's NLU, and gets an outcome
(bot.nlu.outcomes): on topic, clarified (the bot asked and offered the right reading), fallback,
wrong topic, diverted. ``--as-before`` replays the NLU as the project stood before the
clarifying question and the date guard (a fallback instead of any question, hours and prices
free to read as a date of birth), from the same parse.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from bot.core import clarify
from bot.config import NLU_THRESHOLDS_FILE, ROOT
from bot.nlu.outcomes import OUTCOMES, Parsed, Summary, summarise, tradeoff

BLIND = ROOT / "tests" / "nlu" / "blind"
TARGETS = {"on_topic": 0.95, "fallback": 0.03, "wrong": 0.02}


def blind_files(directory: Path = BLIND) -> List[Path]:
    return sorted(directory.glob("*.jsonl"))


def parse_blind(model: Optional[Path] = None, directory: Path = BLIND) -> List[Parsed]:
    from bot.nlu.evaluate import load_labelled_messages, parse_labelled
    from bot.nlu.training import model_path

    return parse_labelled(model or model_path(), load_labelled_messages(blind_files(directory)))


def as_before(parsed: Sequence[Parsed]) -> tuple:
    """(messages, thresholds) replaying the NLU without questions and without the date guard."""
    never_ask = clarify.Thresholds(answer=0.5, ambiguity=0.1, ask=1.01, option=1.01)
    return [replace(p, has_date=True) for p in parsed], never_ask


def to_markdown(s: Summary, title: str, curve: Optional[List[Dict[str, float]]] = None) -> str:
    lines = [f"## {title}", "",
             f"{s.n} messages: **on topic {s.rate('on_topic'):.1%}** at once, clarified {s.rate('clarified'):.1%} "
             f"(on topic after one reply: {s.on_topic_eventually:.1%}), fallback {s.rate('fallback'):.1%}, "
             f"**wrong topic {s.rate('wrong'):.1%}**, diverted {s.rate('diverted'):.1%}",
             "", "| intent | n | " + " | ".join(OUTCOMES) + " |", "|---|---:|" + "---:|" * len(OUTCOMES)]
    for intent, counts in s.per_intent.items():
        lines.append(f"| {intent} | {sum(counts.values())} | " + " | ".join(str(counts[o]) for o in OUTCOMES) + " |")
    for name in ("wrong", "fallback", "diverted", "clarified"):
        if s.examples.get(name):
            lines += ["", f"### {name}", "", "| label | answered as | text (synthetic) |", "|---|---|---|"]
            lines += [f"| {label} | {answered} | {text} |" for label, answered, text in s.examples[name]]
    if curve:
        lines += ["", "### Trade-off (answer threshold moved, the others held)", "",
                  "| answer threshold | on topic | on topic after a reply | wrong topic | fallback |",
                  "|---:|---:|---:|---:|---:|"]
        lines += [f"| {p['answer']:.2f} | {p['on_topic']:.1%} | {p['eventually']:.1%} | {p['wrong']:.1%} | "
                  f"{p['fallback']:.1%} |" for p in curve]
    return "\n".join(lines) + "\n"


def plot_tradeoff(curves: Dict[str, List[Dict[str, float]]], chosen: float, out: Path) -> Path:
    """On-topic rate against wrong-topic rate, one line per set, the chosen threshold marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, curve in curves.items():
        xs, ys = [p["wrong"] * 100 for p in curve], [p["eventually"] * 100 for p in curve]
        ax.plot(xs, ys, marker=".", label=name)
        at = min(curve, key=lambda p: abs(p["answer"] - chosen))
        ax.scatter([at["wrong"] * 100], [at["eventually"] * 100], s=60, zorder=3)
    ax.axvline(TARGETS["wrong"] * 100, linestyle=":", color="grey")
    ax.axhline(TARGETS["on_topic"] * 100, linestyle=":", color="grey")
    ax.set_xlabel("wrong-topic answers (%)")
    ax.set_ylabel("on topic, at once or after one reply (%)")
    ax.set_title(f"Answer threshold trade-off (dots: chosen {chosen:.2f})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--as-before", action="store_true", help="replay the NLU without questions and date guard")
    parser.add_argument("--out", type=Path, default=None, help="write blind.md (and blind.json) here")
    args = parser.parse_args(argv)
    parsed = parse_blind(args.model)
    t = clarify.thresholds(NLU_THRESHOLDS_FILE)
    if args.as_before:
        parsed, t = as_before(parsed)
    s = summarise(parsed, t)
    report = to_markdown(s, "Understanding on the independent set" + (" (as before)" if args.as_before else ""),
                         tradeoff(parsed, t))
    print(report)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "blind.md").write_text(report, encoding="utf-8")
        (args.out / "blind.json").write_text(json.dumps({"n": s.n, "counts": s.counts, "per_intent": s.per_intent},
                                                        indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
