"""Evaluate the trained model's intent classification on the held-out set.

``python -m bot.nlu.evaluate [--model PATH] [--data tests/nlu/holdout.yml] [--out results/]``
parses every held-out example with the trained model and reports per-intent precision,
recall and F1, and the macro F1 (a prediction of ``nlu_fallback`` counts as a miss). The
held-out examples are written separately from the training data and never trained on.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import structlog
import yaml

from bot.config import ROOT
from bot.nlu.training import model_path, rasa_env

HOLDOUT = ROOT / "tests" / "nlu" / "holdout.yml"


def load_examples(path: Path) -> List[Tuple[str, str]]:
    """(text, intent) pairs from a Rasa NLU YAML file."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    pairs = []
    for block in doc.get("nlu", []):
        if "intent" not in block:
            continue
        for line in str(block.get("examples", "")).splitlines():
            text = line.strip()
            if text.startswith("- "):
                pairs.append((text[2:].strip(), block["intent"]))
    return pairs


async def _parse(model: Path, texts: List[str], risks: Optional[List[Optional[float]]] = None) -> List[Dict]:
    """Parses as Rasa makes them behind the gateway: the text as it is passed on and, when
    ``risks`` are given, the safety classifier's probability in the metadata (bot.safety.screen)."""
    from rasa.core.agent import Agent
    from rasa.core.channels.channel import UserMessage

    from bot.safety.screen import RISK_KEY

    agent = Agent.load(str(model))
    out = []
    for n, text in enumerate(texts):
        risk = risks[n] if risks is not None else None
        metadata = {RISK_KEY: risk} if risk is not None else None
        out.append(await agent.processor.parse_message(UserMessage(as_nlu_sees(text), metadata=metadata)))
    return out


async def _predict(model: Path, texts: List[str]) -> List[str]:
    return [(parsed.get("intent") or {}).get("name") or "none" for parsed in await _parse(model, texts)]


def as_nlu_sees(text: str) -> str:
    """The text as the gateway hands it to Rasa: no leading "/", full dates masked."""
    from bot.core.dates import mask_dates

    return mask_dates(text.lstrip("/ \t"))


def quiet_rasa() -> None:
    """Rasa's environment, with its logs down to warnings, for an in-process parse."""
    import os

    os.environ.update({k: v for k, v in rasa_env().items() if k not in os.environ})
    logging.getLogger("rasa").setLevel(logging.ERROR)
    # Rasa also logs through structlog, which prints every debug event (each text it parses)
    # unless configured; `rasa run` configures it, an in-process evaluation must.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def load_labelled_messages(paths) -> List[Tuple[str, str, Tuple[str, ...]]]:
    """(text, intent, further intents) from JSON lines ``{"text", "intent", "also"?}``."""
    import json

    rows = []
    for path in paths:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                rows.append((row["text"], row["intent"], tuple(row.get("also") or ())))
    return rows


def gateway_answer(text: str) -> Tuple[Optional[str], Optional[float]]:
    """What the gateway answers before the NLU, if anything: "safety" (a redirect or the
    safety check), "keyword" (opt-out, opt-in, help) or "someone_else" (the privacy reply); and
    the safety classifier's probability the gateway passes on to the NLU."""
    from bot.core import phi
    from bot.core.keywords import classify_keyword
    from bot.safety.model import classifier
    from bot.safety.screen import screen

    screening = screen(text, classifier())
    if screening.emergency is not None:
        return "safety", screening.risk
    if classify_keyword(text) is not None:
        return "keyword", screening.risk
    if screening.concern is None and phi.mentions_someone_else(text):
        return "someone_else", screening.risk
    # A message with danger words goes on to the NLU's safety layers (its final intent says).
    return None, screening.risk


def parse_labelled(model: Path, rows: List[Tuple[str, str, Tuple[str, ...]]], gateway: bool = True) -> List["Parsed"]:
    """Every labelled message through the gateway's early answers (unless ``gateway`` is
    False: the NLU alone) and the model's NLU."""
    from bot.core import clarify
    from bot.nlu.outcomes import Parsed
    from bot.core.dates import has_date

    quiet_rasa()
    early = [gateway_answer(text) for text, _, _ in rows]
    parses = asyncio.run(_parse(model, [text for text, _, _ in rows], [risk for _, risk in early]))
    out = []
    for (text, intent, also), (answer, _), parsed in zip(rows, early, parses):
        final = (parsed.get("intent") or {}).get("name") or "nlu_fallback"
        out.append(Parsed(text, intent, also, clarify.readings(parsed.get("intent_ranking") or []), final,
                          answer if gateway else None, has_date(as_nlu_sees(text))))
    return out


def evaluate(model: Optional[Path] = None, data: Path = HOLDOUT) -> Dict:
    """Per-intent and macro scores of ``model`` on ``data``."""
    from sklearn.metrics import precision_recall_fscore_support

    quiet_rasa()
    examples = load_examples(data)
    texts, truth = [t for t, _ in examples], [i for _, i in examples]
    predicted = asyncio.run(_predict(model or model_path(), texts))
    labels = sorted(set(truth))
    p, r, f, n = precision_recall_fscore_support(truth, predicted, labels=labels, zero_division=0)
    per_intent = {label: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "n": int(n[i])}
                  for i, label in enumerate(labels)}
    errors = [{"intent": t, "predicted": y, "text": x} for x, t, y in zip(texts, truth, predicted) if t != y]
    return {
        "n": len(examples),
        "accuracy": sum(t == y for t, y in zip(truth, predicted)) / max(len(examples), 1),
        "macro_f1": float(sum(f) / max(len(f), 1)),
        "per_intent": per_intent,
        "errors": errors,
    }


def to_markdown(result: Dict) -> str:
    lines = [
        "# NLU evaluation on the held-out set",
        "",
        f"{result['n']} held-out examples; accuracy {result['accuracy']:.3f}; **macro F1 {result['macro_f1']:.3f}**",
        "",
        "| intent | precision | recall | F1 | n |",
        "|---|---|---|---|---|",
    ]
    for intent, s in result["per_intent"].items():
        lines.append(f"| {intent} | {s['precision']:.2f} | {s['recall']:.2f} | {s['f1']:.2f} | {s['n']} |")
    lines += ["", "## Misclassified", "", "| expected | predicted | text (synthetic) |", "|---|---|---|"]
    for e in result["errors"]:
        lines.append(f"| {e['intent']} | {e['predicted']} | {e['text']} |")
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--data", type=Path, default=HOLDOUT)
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    args = parser.parse_args(argv)
    result = evaluate(args.model, args.data)
    args.out.mkdir(parents=True, exist_ok=True)
    report = to_markdown(result)
    (args.out / "nlu_holdout.md").write_text(report, encoding="utf-8")
    try:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"held-out NLU: macro F1 {result['macro_f1']:.3f} over {result['n']} examples")
        for col in ("intent", "precision", "recall", "F1", "n"):
            table.add_column(col, justify="left" if col == "intent" else "right")
        for intent, s in result["per_intent"].items():
            table.add_row(intent, f"{s['precision']:.2f}", f"{s['recall']:.2f}", f"{s['f1']:.2f}", str(s["n"]))
        Console().print(table)
    except ImportError:
        print(report)
    print(f"report written to {args.out / 'nlu_holdout.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
