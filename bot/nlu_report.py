"""``patientbot evaluate``: how good a model is, next to the one deployed, before rollout.

The report has three parts: intent classification on the held-out set (per-intent precision,
recall and F1, the confusion between intents; bot.nlu_eval), the conversation tests
(``rasa test core`` over tests/test_*.yml: how many stories pass) and the emergency
detector's figures (bot.safety_eval; the detector is rules, not the model, so these say
whether the safety net itself is intact). The same held-out set is run through the currently
deployed model, so a regression shows as a negative difference per intent before rollout.

Written to ``results/evaluation/`` (``report.md``, ``evaluation.json`` which the rollout
gate reads, ``confusion.png`` and ``f1.png``). Held-out texts are synthetic, like all test data.
"""
from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import yaml

from bot.nlu_train import file_sha256
from bot.training import rasa_bin, rasa_env


def evaluate_nlu(model: Path, project: Path) -> Dict:
    """Held-out intent scores of ``model``, tagged with the model file's SHA-256."""
    from bot import nlu_eval

    result = nlu_eval.evaluate(model, project / "tests" / "nlu" / "holdout.yml")
    return {"model": f"{model.parent.name}/{model.name}", "sha256": file_sha256(model), **result}


def confusion(nlu: Dict) -> Tuple[List[str], List[List[int]]]:
    """(labels, matrix[true][predicted]) rebuilt from per-intent counts and the errors."""
    labels = sorted(set(nlu["per_intent"]) | {e["predicted"] for e in nlu["errors"]})
    at = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for intent, scores in nlu["per_intent"].items():
        matrix[at[intent]][at[intent]] += scores["n"]
    for e in nlu["errors"]:
        matrix[at[e["intent"]]][at[e["intent"]]] -= 1
        matrix[at[e["intent"]]][at[e["predicted"]]] += 1
    return labels, matrix


def story_results(model: Path, project: Path) -> Dict:
    """``rasa test core`` over the project's tests/test_*.yml: stories run and failed."""
    stories = []
    for path in sorted((project / "tests").glob("test_*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        stories += [s.get("story", "") for s in doc.get("stories", [])]
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run(
            [rasa_bin(), "test", "core", "--stories", str(project / "tests"), "--model", str(model), "--out", out],
            cwd=project, env=rasa_env(), capture_output=True, text=True,
        )
        failed_file = Path(out) / "failed_test_stories.yml"
        failed_doc = yaml.safe_load(failed_file.read_text(encoding="utf-8")) if failed_file.is_file() else None
    if done.returncode != 0:
        return {"error": f"rasa test core exited {done.returncode}", "stories": len(stories), "failed": None}
    failed = [s.get("story", "") for s in (failed_doc or {}).get("stories", [])] if isinstance(failed_doc, dict) else []
    return {"stories": len(stories), "failed": len(failed), "failed_stories": failed}


def safety_figures() -> Dict:
    """The emergency detector's recall and false-alarm rate on its evaluation set."""
    from bot import safety_eval

    result = safety_eval.evaluate(safety_eval.load(safety_eval.DEFAULT_SETS))
    return {"emergencies": result.emergencies, "recall": result.recall,
            "false_positive_rate": result.false_positive_rate, "misses": len(result.misses),
            "wrong_redirects": len(result.wrong_redirects)}


def plots(candidate: Dict, baseline: Optional[Dict], out: Path) -> List[Path]:
    """confusion.png (the candidate's intent confusion) and f1.png (per-intent F1, both models)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, matrix = confusion(candidate)
    fig, ax = plt.subplots(figsize=(max(6, len(labels) * 0.45), max(5, len(labels) * 0.4)))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true intent")
    for i, row in enumerate(matrix):
        for j, n in enumerate(row):
            if n:
                ax.text(j, i, str(n), ha="center", va="center", fontsize=6, color="black" if i != j else "white")
    ax.set_title(f"intent confusion, held-out set ({candidate['model']})")
    fig.tight_layout()
    confusion_png = out / "confusion.png"
    fig.savefig(confusion_png, dpi=110)
    plt.close(fig)

    intents = sorted(candidate["per_intent"])
    fig, ax = plt.subplots(figsize=(7, max(4, len(intents) * 0.3)))
    ys = range(len(intents))
    ax.barh([y + 0.2 for y in ys], [candidate["per_intent"][i]["f1"] for i in intents], height=0.4, label="candidate")
    if baseline:
        ax.barh([y - 0.2 for y in ys], [baseline["per_intent"].get(i, {}).get("f1", 0.0) for i in intents],
                height=0.4, label="deployed")
    ax.set_yticks(list(ys), intents, fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1 on the held-out set")
    ax.legend(loc="lower right")
    fig.tight_layout()
    f1_png = out / "f1.png"
    fig.savefig(f1_png, dpi=110)
    plt.close(fig)
    return [confusion_png, f1_png]


def to_markdown(report: Dict) -> str:
    cand, base = report["candidate"], report.get("baseline")
    lines = ["# Model evaluation", ""]
    lines.append(f"Candidate `{cand['model']}` (sha256 {cand['sha256'][:12]})"
                 + (f", compared with the deployed `{base['model']}` (sha256 {base['sha256'][:12]})." if base else
                    "; no deployed model to compare with."))
    lines += ["", "## Intent classification (held-out set)", "",
              "| | examples | accuracy | macro F1 |", "|---|---|---|---|",
              f"| candidate | {cand['n']} | {cand['accuracy']:.3f} | **{cand['macro_f1']:.3f}** |"]
    if base:
        lines.append(f"| deployed | {base['n']} | {base['accuracy']:.3f} | {base['macro_f1']:.3f} |")
        lines.append(f"| difference | | {cand['accuracy'] - base['accuracy']:+.3f} | "
                     f"{cand['macro_f1'] - base['macro_f1']:+.3f} |")
    lines += ["", "| intent | precision | recall | F1 | n |" + (" F1 deployed | change |" if base else ""),
              "|---|---|---|---|---|" + ("---|---|" if base else "")]
    for intent, s in sorted(cand["per_intent"].items()):
        row = f"| {intent} | {s['precision']:.2f} | {s['recall']:.2f} | {s['f1']:.2f} | {s['n']} |"
        if base:
            old = base["per_intent"].get(intent, {}).get("f1")
            row += " n/a | new |" if old is None else f" {old:.2f} | {s['f1'] - old:+.2f} |"
        lines.append(row)
    lines += ["", "![intent confusion](confusion.png)", "", "![per-intent F1](f1.png)", "",
              "### Misclassified (synthetic held-out examples)", "", "| expected | predicted | text |", "|---|---|---|"]
    lines += [f"| {e['intent']} | {e['predicted']} | {e['text']} |" for e in cand["errors"]] or ["| | | none |"]
    stories = report.get("stories")
    lines += ["", "## Conversation tests", ""]
    if not stories:
        lines.append("not run (--no-stories)")
    elif stories.get("error"):
        lines.append(f"could not run: {stories['error']}")
    else:
        lines.append(f"{stories['stories'] - stories['failed']} of {stories['stories']} test stories pass.")
        lines += [f"- failed: {name}" for name in stories["failed_stories"]]
    safety = report["safety"]
    lines += ["", "## Emergency detector", "",
              f"Recall {safety['recall']:.3f} over {safety['emergencies']} emergencies ({safety['misses']} missed, "
              f"{safety['wrong_redirects']} wrong redirects); false-alarm rate {safety['false_positive_rate']:.3f}. "
              "The detector runs before the model on every message and does not change with it."]
    return "\n".join(lines) + "\n"


def build_report(candidate_model: Path, project: Path, out: Path, baseline_model: Optional[Path] = None,
                 stories: bool = True) -> Dict:
    """Evaluate, compare, and write report.md, evaluation.json and the plots into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    report: Dict = {"candidate": evaluate_nlu(candidate_model, project), "baseline": None}
    if baseline_model is not None and baseline_model.is_file():
        report["baseline"] = evaluate_nlu(baseline_model, project)
    report["stories"] = story_results(candidate_model, project) if stories else None
    report["safety"] = safety_figures()
    plots(report["candidate"], report["baseline"], out)
    (out / "report.md").write_text(to_markdown(report), encoding="utf-8")
    (out / "evaluation.json").write_text(json.dumps(report, indent=2, sort_keys=True), encoding="utf-8")
    return report
