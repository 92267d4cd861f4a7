"""``patientbot evaluate``: how good a model is, next to the one deployed, before rollout.

The report opens with the understanding figures on the independent in-scope set
(bot.nlu.blind: on topic, clarified, fallback, wrong topic, with the trade-off plot
``understanding.png``). Then four parts: intent classification on the held-out set (per-intent precision,
recall and F1, the confusion between intents; bot.nlu.evaluate), a cross-validated intent report
over the training data (``rasa test nlu --cross-validation``: each fold trains the NLU on the
other folds, so every training example is predicted once by a model that never saw it), the
conversation tests
(``rasa test core`` over tests/test_*.yml: how many stories pass) and the emergency
detector's figures (bot.nlu.safety_eval; the detector is rules, not the model, so these say
whether the safety net itself is intact). The same held-out set is run through the currently
deployed model, so a regression shows as a negative difference per intent before rollout.

Written to ``results/evaluation/`` (``report.md``, ``evaluation.json`` which the rollout
gate reads, ``confusion.png``, ``f1.png`` and, when cross-validated, ``cv_f1.png`` and
``cross_validation.log``). Held-out texts and training examples are synthetic, like all test
data (and training data has passed the PHI scrubber).
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import yaml

from bot.nlu.training import file_sha256, rasa_bin, rasa_env


def evaluate_nlu(model: Path, project: Path) -> Dict:
    """Held-out intent scores of ``model``, tagged with the model file's SHA-256."""
    from bot.nlu import evaluate as nlu_eval

    result = nlu_eval.evaluate(model, project / "tests" / "nlu" / "holdout.yml")
    return {"model": f"{model.parent.name}/{model.name}", "sha256": file_sha256(model), **result}


# The line Rasa logs as a fold's intent classifier starts training (config.yml's classifier).
INTENT_CLASSIFIER_STARTS = "Starting to train component 'TfidfLogisticIntentClassifier'"


def understanding(model: Path, project: Path, out: Path) -> Dict:
    """The outcomes on the independent in-scope set (bot.nlu.blind) with the calibrated
    thresholds, and understanding.png: on topic against wrong topic as the answer threshold
    moves, on the validation split (from calibration) and on the independent set."""
    from dataclasses import asdict

    from bot.core import clarify

    from bot.nlu import blind as nlu_blind
    from bot.nlu.outcomes import summarise, tradeoff

    parsed = nlu_blind.parse_blind(model, project / "tests" / "nlu" / "blind")
    thresholds_file = project / "data" / "nlu_thresholds.yml"
    t = clarify.thresholds(thresholds_file)
    s = summarise(parsed, t)
    curve = tradeoff(parsed, t)
    curves = {"independent set": curve}
    if thresholds_file.is_file():
        curves = {"validation split": (yaml.safe_load(thresholds_file.read_text()) or {}).get("tradeoff", []),
                  **curves}
    nlu_blind.plot_tradeoff(curves, t.answer, out / "understanding.png")
    return {"n": s.n, "rates": {k: s.rate(k) for k in s.counts}, "on_topic_eventually": s.on_topic_eventually,
            "per_intent": s.per_intent, "thresholds": asdict(t), "tradeoff": curve,
            "markdown": nlu_blind.to_markdown(s, "Understanding (independent in-scope set, tests/nlu/blind/)", curve)}


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


def cross_validation(project: Path, folds: int, out: Path, progress=None) -> Dict:
    """``rasa test nlu --cross-validation`` over ``project``'s data/nlu.yml with its config.yml.

    Rasa trains the NLU ``folds`` times (stratified folds; intents with fewer examples than
    folds are left out by Rasa, and named here). Rasa's output goes to
    ``out/cross_validation.log``; ``progress(fold, folds)`` is called as each fold starts.
    """
    progress = progress or (lambda fold, total: print(f"cross-validation: fold {fold} of {total} ...",
                                                      file=sys.stderr))
    log = out / "cross_validation.log"
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, log.open("w", encoding="utf-8") as log_file:
        cmd = [rasa_bin(), "test", "nlu", "--cross-validation", "--folds", str(folds),
               "--config", str(project / "config.yml"), "--nlu", str(project / "data" / "nlu.yml"),
               "--out", tmp, "--no-plot"]
        proc = subprocess.Popen(cmd, cwd=project, env=rasa_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace")
        fold = 0
        for line in proc.stdout:
            log_file.write(line)
            if INTENT_CLASSIFIER_STARTS in line:
                fold += 1
                progress(fold, folds)
        if proc.wait() != 0:
            return {"folds": folds, "error": f"rasa test nlu --cross-validation exited {proc.returncode} "
                                             f"(see {log.name})"}
        report = json.loads((Path(tmp) / "intent_report.json").read_text(encoding="utf-8"))
        errors_file = Path(tmp) / "intent_errors.json"
        errors = json.loads(errors_file.read_text(encoding="utf-8")) if errors_file.is_file() else []
    return summarise_cross_validation(report, errors, folds, project, time.monotonic() - started, fold)


def summarise_cross_validation(report: Dict, errors: List[Dict], folds: int, project: Path,
                               seconds: float, trainings: int) -> Dict:
    """Rasa's accumulated intent report (sklearn's classification report) and its error list,
    reduced to the figures the report shows: per-intent scores, macro F1, the intents left
    out, and the most frequent confusions (counts only, no example texts)."""
    from bot.nlu.data import NluFile

    per_intent = {label: {"precision": s["precision"], "recall": s["recall"], "f1": s["f1-score"],
                          "n": int(s["support"])}
                  for label, s in report.items()
                  if isinstance(s, dict) and "support" in s and label not in ("macro avg", "weighted avg", "micro avg")}
    confused = Counter((e["intent"], (e.get("intent_prediction") or {}).get("name") or "none") for e in errors)
    trained = {i for i, examples in NluFile(project / "data" / "nlu.yml").intents.items() if examples}
    return {
        "folds": folds, "trainings": trainings, "seconds": round(seconds, 1),
        "n": sum(s["n"] for s in per_intent.values()),
        "accuracy": report.get("accuracy", report.get("micro avg", {}).get("f1-score")),
        "macro_f1": report["macro avg"]["f1-score"], "weighted_f1": report["weighted avg"]["f1-score"],
        "per_intent": per_intent,
        "left_out": sorted(trained - set(per_intent)),
        "confusions": [{"intent": a, "predicted": b, "count": n} for (a, b), n in confused.most_common(10)],
    }


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
    from bot.nlu import safety_eval

    result = safety_eval.evaluate(safety_eval.load(safety_eval.DEFAULT_SETS))
    return {"emergencies": result.emergencies, "recall": result.recall,
            "false_positive_rate": result.false_positive_rate, "misses": len(result.misses),
            "wrong_redirects": len(result.wrong_redirects)}


def plots(candidate: Dict, baseline: Optional[Dict], out: Path, cv: Optional[Dict] = None) -> List[Path]:
    """confusion.png (the candidate's intent confusion), f1.png (per-intent F1, both models)
    and, when cross-validated, cv_f1.png."""
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
    made = [confusion_png, f1_png]
    if cv and not cv.get("error"):
        made.append(_cv_plot(plt, cv, out))
    return made


def _cv_plot(plt, cv: Dict, out: Path) -> Path:
    """cv_f1.png: per-intent F1 across the folds, worst first."""
    ranked = sorted(cv["per_intent"].items(), key=lambda kv: (kv[1]["f1"], kv[0]))
    fig, ax = plt.subplots(figsize=(7, max(4, len(ranked) * 0.3)))
    ax.barh(range(len(ranked)), [s["f1"] for _, s in ranked], color="tab:green")
    ax.set_yticks(range(len(ranked)), [name for name, _ in ranked], fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"F1, {cv['folds']}-fold cross-validation over the training data")
    fig.tight_layout()
    path = out / "cv_f1.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def to_markdown(report: Dict) -> str:
    cand, base = report["candidate"], report.get("baseline")
    lines = ["# Model evaluation", ""]
    lines.append(f"Candidate `{cand['model']}` (sha256 {cand['sha256'][:12]})"
                 + (f", compared with the deployed `{base['model']}` (sha256 {base['sha256'][:12]})." if base else
                    "; no deployed model to compare with."))
    if report.get("understanding"):  # evaluations written before the independent set have none
        lines += ["", report["understanding"]["markdown"], "![on topic against wrong topic](understanding.png)"]
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
    lines += cv_markdown(report.get("cross_validation"))
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


def cv_markdown(cv: Optional[Dict]) -> List[str]:
    lines = ["", "## Intent classification, cross-validated over the training data", ""]
    if not cv:
        return lines + ["not run (--folds 0)"]
    if cv.get("error"):
        return lines + [f"could not run: {cv['error']}"]
    lines += [f"{cv['folds']} folds over {cv['n']} training examples ({cv['trainings']} NLU trainings, "
              f"{cv['seconds']:.0f} s): macro F1 **{cv['macro_f1']:.3f}**, weighted F1 {cv['weighted_f1']:.3f}, "
              f"accuracy {cv['accuracy']:.3f}. Each example is predicted by a model trained on the other folds."
              + (f" The deployed model's data scored {cv['deployed_macro_f1']:.3f} when it was rolled out "
                 f"({cv['macro_f1'] - cv['deployed_macro_f1']:+.3f})." if cv.get("deployed_macro_f1") is not None
                 else ""),
              "", "| intent | precision | recall | F1 | n |", "|---|---|---|---|---|"]
    for intent, s in sorted(cv["per_intent"].items(), key=lambda kv: (kv[1]["f1"], kv[0])):
        lines.append(f"| {intent} | {s['precision']:.2f} | {s['recall']:.2f} | {s['f1']:.2f} | {s['n']} |")
    if cv["left_out"]:
        lines += ["", f"Left out (fewer than {cv['folds']} examples): {', '.join(cv['left_out'])}."]
    lines += ["", "![cross-validated per-intent F1](cv_f1.png)", "", "Most frequent confusions:", "",
              "| expected | predicted | examples |", "|---|---|---|"]
    lines += [f"| {c['intent']} | {c['predicted']} | {c['count']} |" for c in cv["confusions"]] or ["| | | none |"]
    return lines


def build_report(candidate_model: Path, project: Path, out: Path, baseline_model: Optional[Path] = None,
                 stories: bool = True, folds: int = 0, deployed_cv_macro_f1: Optional[float] = None) -> Dict:
    """Evaluate, compare, and write report.md, evaluation.json and the plots into ``out``.
    ``folds`` > 1 adds the cross-validated report (that many NLU trainings)."""
    out.mkdir(parents=True, exist_ok=True)
    report: Dict = {"candidate": evaluate_nlu(candidate_model, project), "baseline": None,
                    "understanding": understanding(candidate_model, project, out)}
    if baseline_model is not None and baseline_model.is_file():
        report["baseline"] = evaluate_nlu(baseline_model, project)
    report["cross_validation"] = cross_validation(project, folds, out) if folds > 1 else None
    if report["cross_validation"] is not None:
        # Recorded when the deployed model was rolled out from a cross-validated evaluation.
        report["cross_validation"]["deployed_macro_f1"] = deployed_cv_macro_f1
    report["stories"] = story_results(candidate_model, project) if stories else None
    report["safety"] = safety_figures()
    plots(report["candidate"], report["baseline"], out, report["cross_validation"])
    (out / "report.md").write_text(to_markdown(report), encoding="utf-8")
    (out / "evaluation.json").write_text(json.dumps(report, indent=2, sort_keys=True), encoding="utf-8")
    return report
