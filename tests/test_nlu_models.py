"""Model rollout gate, releases, rollback and the evaluation report's arithmetic.

No Rasa here (the end-to-end loop in tests/test_nlu_loop_e2e.py loads real models into a
running Rasa): model files are stand-in bytes, evaluations are fixed figures.
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bot.nlu.models import ModelRegistry, RolloutError, gate, push_to_rasa
from bot.nlu.report import confusion, to_markdown


@pytest.mark.parametrize("candidate,deployed,margin,allowed", [
    (0.95, 0.96, 0.01, True), (0.949, 0.96, 0.01, False), (0.97, 0.96, 0.0, True), (0.96, 0.96, 0.0, True),
    (0.50, None, 0.01, True),
])
def test_gate(candidate, deployed, margin, allowed):
    result = gate(candidate, deployed, margin)
    assert result.allowed is allowed
    assert ("beyond" in result.explain()) is (not allowed)


def _model(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def _nlu(f1: float, sha: str) -> dict:
    return {"model": "patientbot.tar.gz", "sha256": sha, "n": 10, "accuracy": f1, "macro_f1": f1,
            "per_intent": {"ask_hours": {"precision": f1, "recall": f1, "f1": f1, "n": 10}}, "errors": []}


@pytest.fixture
def fake_eval(monkeypatch):
    """evaluate_nlu by model content: b"good" scores 0.97, b"live" 0.96, b"bad" 0.90."""
    from bot.nlu import report as nlu_report
    from bot.nlu.training import file_sha256

    scores = {b"good": 0.97, b"live": 0.96, b"bad": 0.90}
    monkeypatch.setattr(nlu_report, "evaluate_nlu", lambda model, project: _nlu(scores[model.read_bytes()],
                                                                                file_sha256(model)))


def _audit_events(prefix):
    from bot.storage.audit import AuditLog
    from bot.storage.crypto import keyring
    from bot.storage.redis_client import async_redis

    async def run():
        client = async_redis()
        try:
            return await AuditLog(client, keyring(), prefix).events()
        finally:
            await client.close()

    return asyncio.run(run())


def test_rollout_refuses_a_worse_model_and_keeps_the_live_one(tmp_path, settings_env, prefix, fake_eval):
    from bot.cli.models import rollout
    from bot.config import settings

    models = tmp_path / "models"
    live = _model(models / "patientbot.tar.gz", b"live")
    bad = _model(tmp_path / "candidate" / "patientbot.tar.gz", b"bad")
    with pytest.raises(RolloutError, match=r"candidate macro F1 0.900, deployed 0.960 \(-0.060; beyond"):
        rollout(bad, tmp_path, models, 0.01, settings(), "admin:cli:test")
    assert live.read_bytes() == b"live" and not (models / "releases").exists()
    (event,) = _audit_events(prefix)
    assert (event.action, event.outcome, event.details["candidate_macro_f1"]) == ("model_rollout", "refused", 0.9)


def test_rollout_then_rollback_with_rasa_not_running(tmp_path, settings_env, prefix, fake_eval, monkeypatch):
    from bot.cli.models import rollback, rollout
    from bot.config import settings
    from bot.nlu.training import file_sha256

    monkeypatch.setenv("RASA_PORT", "1")  # nothing listens: the model is used at the next start
    from bot import config

    config.reset_cache()
    models = tmp_path / "models"
    _model(models / "patientbot.tar.gz", b"live")
    (models / "patientbot.fingerprint").write_text("fp-live\n")
    good = _model(tmp_path / "candidate" / "patientbot.tar.gz", b"good")
    (tmp_path / "candidate" / "patientbot.fingerprint").write_text("fp-good\n")

    done = rollout(good, tmp_path, models, 0.01, settings(), "admin:cli:test")
    assert done["loaded"] == []
    registry = ModelRegistry(models)
    assert registry.live.read_bytes() == b"good"
    assert (models / "patientbot.fingerprint").read_text() == "fp-good\n"
    history = registry.history()
    assert [(h["action"], h["fingerprint"], h["macro_f1"]) for h in history] == [
        ("found", "fp-live", 0.96), ("rollout", "fp-good", 0.97)]
    assert history[0]["sha256"] == file_sha256(models / "releases" / history[0]["model"])

    back = rollback(models, settings(), "admin:cli:test")
    assert registry.live.read_bytes() == b"live"
    assert (models / "patientbot.fingerprint").read_text() == "fp-live\n"
    assert back["entry"]["action"] == "rollback"
    # Rolling back again undoes the rollback (the deployment before the live one).
    rollback(models, settings(), "admin:cli:test")
    assert registry.live.read_bytes() == b"good"
    assert [e.action for e in _audit_events(prefix)] == ["model_rollout", "model_rollback", "model_rollback"]


def test_rollback_without_history_refuses(tmp_path, settings_env):
    from bot.cli.models import rollback
    from bot.config import settings

    _model(tmp_path / "patientbot.tar.gz", b"live")
    with pytest.raises(RolloutError, match="no earlier deployment"):
        rollback(tmp_path, settings(), "admin:cli:test")


def test_push_to_rasa_loads_nothing_when_rasa_is_down(tmp_path, settings_env, monkeypatch):
    from bot import config

    monkeypatch.setenv("RASA_PORT", "1")
    from bot.ops.stack import rasa_urls

    config.reset_cache()
    cfg = config.settings()
    assert push_to_rasa(cfg, _model(tmp_path / "m.tar.gz", b"x"), rasa_urls(cfg), timeout=2) == []


def test_confusion_and_report_from_evaluation_figures():
    nlu = _nlu(0.9, "a" * 64)
    nlu["per_intent"] = {"ask_hours": {"precision": 1.0, "recall": 0.5, "f1": 0.67, "n": 4},
                         "greet": {"precision": 0.75, "recall": 1.0, "f1": 0.86, "n": 3}}
    nlu["errors"] = [{"intent": "ask_hours", "predicted": "greet", "text": "hrs?"},
                     {"intent": "ask_hours", "predicted": "nlu_fallback", "text": "wen"}]
    labels, matrix = confusion(nlu)
    assert labels == ["ask_hours", "greet", "nlu_fallback"]
    assert matrix == [[2, 1, 1], [0, 3, 0], [0, 0, 0]]
    base = _nlu(0.8, "b" * 64)
    report = {"candidate": nlu, "baseline": base, "stories": {"stories": 5, "failed": 1, "failed_stories": ["x"]},
              "safety": {"emergencies": 10, "recall": 1.0, "false_positive_rate": 0.0, "misses": 0,
                         "wrong_redirects": 0}}
    text = to_markdown(report)
    assert "| difference | | +0.100 | +0.100 |" in text
    assert "| ask_hours | 1.00 | 0.50 | 0.67 | 4 | 0.80 | -0.13 |" in text
    assert "| greet | 0.75 | 1.00 | 0.86 | 3 | n/a | new |" in text
    assert "4 of 5 test stories pass." in text and "Recall 1.000 over 10 emergencies" in text
    json.dumps(report)  # what evaluation.json holds is plain JSON


def test_plots_are_written(tmp_path):
    from bot.nlu.report import plots

    nlu = _nlu(0.9, "a" * 64)
    paths = plots(nlu, _nlu(0.8, "b" * 64), tmp_path)
    assert [p.name for p in paths] == ["confusion.png", "f1.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in paths)


def test_cross_validation_summary_report_and_plot(tmp_path):
    """Rasa's accumulated report (sklearn's classification report) and error list become the
    figures, the Markdown section and cv_f1.png; intents with too few examples are named."""
    from bot.nlu.report import cv_markdown, plots, summarise_cross_validation

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "nlu.yml").write_text(
        'version: "3.1"\nnlu:\n  - intent: ask_hours\n    examples: |\n      - hours?\n'
        '  - intent: greet\n    examples: |\n      - hi\n  - intent: rare\n    examples: |\n      - once\n')
    rasa_report = {
        "ask_hours": {"precision": 1.0, "recall": 0.5, "f1-score": 0.667, "support": 4},
        "greet": {"precision": 0.6, "recall": 1.0, "f1-score": 0.75, "support": 3},
        "accuracy": 0.714,
        "macro avg": {"precision": 0.8, "recall": 0.75, "f1-score": 0.708, "support": 7},
        "weighted avg": {"precision": 0.83, "recall": 0.71, "f1-score": 0.702, "support": 7},
    }
    errors = [{"text": "x", "intent": "ask_hours", "intent_prediction": {"name": "greet", "confidence": 0.6}},
              {"text": "y", "intent": "ask_hours", "intent_prediction": {"name": "greet", "confidence": 0.5}}]
    cv = summarise_cross_validation(rasa_report, errors, folds=3, project=tmp_path, seconds=12.3, trainings=3)
    assert cv["macro_f1"] == 0.708 and cv["accuracy"] == 0.714 and cv["n"] == 7
    assert set(cv["per_intent"]) == {"ask_hours", "greet"} and cv["per_intent"]["greet"]["f1"] == 0.75
    assert cv["left_out"] == ["rare"]
    assert cv["confusions"] == [{"intent": "ask_hours", "predicted": "greet", "count": 2}]
    text = "\n".join(cv_markdown(cv))
    assert "3 folds over 7 training examples" in text and "macro F1 **0.708**" in text
    assert "| ask_hours | 1.00 | 0.50 | 0.67 | 4 |" in text and "Left out (fewer than 3 examples): rare." in text
    assert "| ask_hours | greet | 2 |" in text
    assert "not run (--folds 0)" in "\n".join(cv_markdown(None))
    cv["deployed_macro_f1"] = 0.7
    assert "The deployed model's data scored 0.700 when it was rolled out (+0.008)." in "\n".join(cv_markdown(cv))
    paths = plots(_nlu(0.9, "a" * 64), None, tmp_path, cv)
    assert [p.name for p in paths] == ["confusion.png", "f1.png", "cv_f1.png"]
    assert paths[-1].read_bytes().startswith(b"\x89PNG")


def test_rollout_uses_an_evaluation_only_of_the_same_two_models(tmp_path, settings_env, monkeypatch):
    from bot import config
    from bot.nlu import report as nlu_report
    from bot.cli.models import rollout
    from bot.nlu.training import file_sha256

    monkeypatch.setenv("RASA_PORT", "1")
    config.reset_cache()
    monkeypatch.setattr(nlu_report, "evaluate_nlu", lambda *a: pytest.fail("should use the evaluation file"))
    models = tmp_path / "models"
    live = _model(models / "patientbot.tar.gz", b"live")
    good = _model(tmp_path / "candidate" / "patientbot.tar.gz", b"good")
    other = _model(tmp_path / "other" / "patientbot.tar.gz", b"other")
    evaluation = tmp_path / "evaluation.json"
    evaluation.write_text(json.dumps({"candidate": _nlu(0.97, file_sha256(good)),
                                      "baseline": _nlu(0.96, file_sha256(live)),
                                      "cross_validation": {"folds": 5, "macro_f1": 0.941}}))
    with pytest.raises(RolloutError, match="evaluates other model files"):
        rollout(other, tmp_path, models, 0.01, config.settings(), "admin:cli:test", evaluation)
    assert live.read_bytes() == b"live"
    done = rollout(good, tmp_path, models, 0.01, config.settings(), "admin:cli:test", evaluation)
    assert (done["gate"].candidate_f1, done["gate"].deployed_f1) == (0.97, 0.96)
    assert live.read_bytes() == b"good"
    # The cross-validated figure is kept with the deployment, for the next evaluation to compare.
    assert ModelRegistry(models).entry_for(live)["cv_macro_f1"] == 0.941
    assert "cv_macro_f1" not in ModelRegistry(models).history()[0]  # the model found live had none


def test_rollout_reaches_every_rasa_server_of_a_scaled_out_stack(tmp_path, settings_env, monkeypatch):
    """Scale-out (bot.ops.stack): one Rasa server per instance; a rollout must load into each."""
    from bot import config
    from bot.ops.stack import rasa_urls

    monkeypatch.setenv("PATIENTBOT_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("RASA_PORT", "5105")
    monkeypatch.setenv("RASA_PORT_3", "5999")
    config.reset_cache()
    assert rasa_urls(config.settings()) == ["http://127.0.0.1:5105"]
    (tmp_path / "rasa-3.pid").write_text("1\n")  # an instance 3 was started: the scale is 3
    assert rasa_urls(config.settings()) == ["http://127.0.0.1:5105", "http://127.0.0.1:5106",
                                            "http://127.0.0.1:5999"]
