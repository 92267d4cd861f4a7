"""``patientbot evaluate`` and ``patientbot model status|rollout|rollback`` (see bot.nlu.models).

A gated rollout trains into a staging directory first, so the live model is untouched until
the gate passes:

    patientbot nlu train --models models/candidate
    patientbot evaluate models/candidate/patientbot.tar.gz      # report: results/evaluation/report.md
                                                                # (--folds 5 cross-validation by default)
    patientbot model rollout models/candidate/patientbot.tar.gz --evaluation results/evaluation/evaluation.json
    patientbot model rollback                                   # if it misbehaves
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict, Optional

from bot.cli.common import audited, cli_actor, fail
from bot.nlu.models import ModelRegistry, RolloutError, fingerprint_beside, gate, push_to_rasa, running_models
from bot.nlu.training import file_sha256, stamp_file
from bot.ops.stack import rasa_urls


def _paths(args: argparse.Namespace):
    from bot.config import ROOT, settings

    project = Path(args.project).resolve() if getattr(args, "project", None) else ROOT
    models = Path(args.models).resolve() if getattr(args, "models", None) else settings().model_path.parent
    return project, models


def cmd_evaluate(args: argparse.Namespace) -> int:
    from bot.config import ROOT
    from bot.nlu.report import build_report

    project, models = _paths(args)
    live = ModelRegistry(models).live
    candidate = Path(args.model).resolve() if args.model else live
    if not candidate.is_file():
        return fail(f"no model at {candidate}")
    baseline = live if live.is_file() and live.resolve() != candidate else None
    out = Path(args.out).resolve() if args.out else ROOT / "results" / "evaluation"
    if args.folds == 1 or args.folds < 0:
        return fail("--folds is 0 (no cross-validation) or at least 2")
    deployed_entry = ModelRegistry(models).entry_for(live) if baseline else None
    report = build_report(candidate, project, out, baseline, stories=not args.no_stories, folds=args.folds,
                          deployed_cv_macro_f1=(deployed_entry or {}).get("cv_macro_f1"))
    cand, base = report["candidate"], report["baseline"]
    u = report["understanding"]["rates"]
    print(f"independent set ({report['understanding']['n']} messages): on topic {u['on_topic']:.1%}, "
          f"clarified {u['clarified']:.1%}, fallback {u['fallback']:.1%}, wrong topic {u['wrong']:.1%}, "
          f"diverted {u['diverted']:.1%}")
    print(f"candidate {candidate.name}: held-out macro F1 {cand['macro_f1']:.3f}, accuracy {cand['accuracy']:.3f}")
    if base:
        print(f"deployed  {live.name}: held-out macro F1 {base['macro_f1']:.3f}, accuracy {base['accuracy']:.3f} "
              f"(change {cand['macro_f1'] - base['macro_f1']:+.3f})")
    cv = report["cross_validation"]
    if cv:
        print(f"cross-validation: {cv['error']}" if cv.get("error") else
              f"cross-validation ({cv['folds']} folds over the training data): macro F1 {cv['macro_f1']:.3f}, "
              f"accuracy {cv['accuracy']:.3f} ({cv['seconds']:.0f} s)")
    if report["stories"] and report["stories"].get("failed") is not None:
        s = report["stories"]
        print(f"conversation tests: {s['stories'] - s['failed']} of {s['stories']} pass")
    print(f"emergency detector: recall {report['safety']['recall']:.3f}, "
          f"false alarms {report['safety']['false_positive_rate']:.3f}")
    print(f"report written to {out / 'report.md'}")
    return 0


def _figures(candidate: Path, live: Path, project: Path, evaluation: Optional[Path]):
    """Held-out figures of the candidate and the live model: from ``patientbot evaluate``'s
    evaluation.json when given (it must be of exactly these two model files), else fresh.
    The candidate's cross-validated macro F1 comes along when the evaluation has it."""
    from bot.nlu.report import evaluate_nlu

    if evaluation is None:
        return evaluate_nlu(candidate, project), evaluate_nlu(live, project) if live.is_file() else None
    report = json.loads(evaluation.read_text(encoding="utf-8"))
    base = report.get("baseline")
    if report["candidate"]["sha256"] != file_sha256(candidate) or \
            (base or {}).get("sha256") != (file_sha256(live) if live.is_file() else None):
        raise RolloutError(f"{evaluation} evaluates other model files; run patientbot evaluate again")
    cv = report.get("cross_validation") or {}
    return {**report["candidate"], "cv_macro_f1": cv.get("macro_f1")}, base


def rollout(candidate: Path, project: Path, models: Path, margin: float, cfg, actor: str,
            evaluation: Optional[Path] = None) -> Dict:
    """Gate, keep, load into every running Rasa, activate, record; audited as ``actor``.
    Raises RolloutError when refused."""
    registry = ModelRegistry(models)
    cand, deployed = _figures(candidate, registry.live, project, evaluation)
    verdict = gate(cand["macro_f1"], deployed["macro_f1"] if deployed else None, margin)
    details = {"candidate_sha256": cand["sha256"], "candidate_macro_f1": round(cand["macro_f1"], 4),
               "deployed_sha256": deployed["sha256"] if deployed else None,
               "deployed_macro_f1": round(deployed["macro_f1"], 4) if deployed else None, "margin": margin}
    if not verdict.allowed:
        audited("model_rollout", "", "refused", details, actor)
        raise RolloutError(f"rollout refused: {verdict.explain()}")
    last = registry.deployed()
    if deployed and (last is None or last["sha256"] != deployed["sha256"]):
        # The live model was never deployed through here (first rollout, or trained in place): keep it.
        kept = registry.keep(registry.live)
        fp = stamp_file(models).read_text().strip() if stamp_file(models).is_file() else None
        registry.record("found", kept, fp, deployed["macro_f1"], actor)
    release = registry.keep(candidate)
    loaded = push_to_rasa(cfg, release, rasa_urls(cfg))
    registry.activate(release, fingerprint_beside(candidate))
    entry = registry.record("rollout", release, fingerprint_beside(candidate), cand["macro_f1"], actor,
                            cv_macro_f1=cand.get("cv_macro_f1"))
    audited("model_rollout", "", "ok", {**details, "release": release.name, "loaded_into_rasa_servers": len(loaded)},
            actor)
    return {"entry": entry, "gate": verdict, "loaded": loaded}


def rollback(models: Path, cfg, actor: str) -> Dict:
    """Back to the model deployed before the live one, in every running Rasa; audited as ``actor``."""
    registry = ModelRegistry(models)
    target = registry.previous()
    if target is None:
        raise RolloutError("no earlier deployment to roll back to")
    release = registry.releases / target["model"]
    loaded = push_to_rasa(cfg, release, rasa_urls(cfg))
    registry.activate(release, target.get("fingerprint"))
    entry = registry.record("rollback", release, target.get("fingerprint"), target.get("macro_f1"), actor)
    audited("model_rollback", "", "ok", {"release": release.name, "sha256": entry["sha256"],
                                         "loaded_into_rasa_servers": len(loaded)}, actor)
    return {"entry": entry, "loaded": loaded}


def cmd_rollout(args: argparse.Namespace) -> int:
    from bot.config import settings

    cfg = settings()
    project, models = _paths(args)
    candidate = Path(args.candidate).resolve()
    if not candidate.is_file():
        return fail(f"no model at {candidate}")
    margin = cfg.rollout_margin if args.margin is None else args.margin
    try:
        done = rollout(candidate, project, models, margin, cfg, cli_actor(),
                       Path(args.evaluation).resolve() if args.evaluation else None)
    except RolloutError as exc:
        return fail(str(exc))
    print(done["gate"].explain())
    where = _where_loaded(done)
    print(f"rolled out {done['entry']['model']} ({where}); previous model kept for 'patientbot model rollback'")
    return 0


def _where_loaded(done: dict) -> str:
    return (f"loaded into {len(done['loaded'])} running Rasa server(s)" if done["loaded"]
            else "Rasa is not running: used at its next start")


def cmd_rollback(args: argparse.Namespace) -> int:
    from bot.config import settings

    _, models = _paths(args)
    try:
        done = rollback(models, settings(), cli_actor())
    except RolloutError as exc:
        return fail(str(exc))
    where = _where_loaded(done)
    print(f"rolled back to {done['entry']['model']} ({where})")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from bot.config import settings
    _, models = _paths(args)
    registry = ModelRegistry(models)
    cfg = settings()
    print(json.dumps({"running": running_models(cfg, rasa_urls(cfg)), "history": registry.history()}, indent=2))
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``evaluate`` and ``model status | rollout | rollback``."""
    p = sub.add_parser("evaluate", help="evaluation report of a model, compared with the deployed one")
    p.add_argument("model", nargs="?", help="the candidate model (default: the deployed one)")
    p.add_argument("--project", help="project directory (its tests/ and held-out set; default: this one)")
    p.add_argument("--models", help="models directory (default: MODEL_PATH's)")
    p.add_argument("--out", help="report directory (default: results/evaluation)")
    p.add_argument("--no-stories", action="store_true", help="skip the conversation tests (rasa test core)")
    p.add_argument("--folds", type=int, default=5,
                   help="cross-validation folds over the training data, each an NLU training (default 5; 0: skip)")
    p.set_defaults(func=cmd_evaluate)
    model = sub.add_parser("model", help="deployed models: status, rollout, rollback").add_subparsers(
        dest="model_cmd", required=True)
    p = model.add_parser("status", help="the running model and the deployment history")
    p.add_argument("--models")
    p.set_defaults(func=cmd_status)
    p = model.add_parser("rollout", help="deploy a model if it is not worse than the live one beyond the margin")
    p.add_argument("candidate")
    p.add_argument("--margin", type=float, default=None, help="allowed macro F1 drop (default: ROLLOUT_MARGIN)")
    p.add_argument("--evaluation", help="evaluation.json of 'patientbot evaluate' for these two models "
                                        "(default: evaluate again)")
    p.add_argument("--project")
    p.add_argument("--models")
    p.set_defaults(func=cmd_rollout)
    p = model.add_parser("rollback", help="back to the model deployed before")
    p.add_argument("--models")
    p.set_defaults(func=cmd_rollback)
