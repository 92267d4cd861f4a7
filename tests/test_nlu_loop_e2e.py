"""The admins' training loop end to end, against the whole stack.

Messages the model misunderstands are texted in (signed webhooks, as a provider sends them);
they land in the review inbox, sealed, and an admin sees them only scrubbed; they are labelled
into a copy of the project's data, a candidate is trained, evaluated against the live model,
rolled out into the running Rasa without a restart, and the same messages are then answered;
a rollback brings the old model back. A message with a name, a phone number and a date of
birth never reaches data/ with any of them.

Why two real trainings: the loop's point is that retraining on labelled inbox items fixes
them, which only a trained model can show. Both models are trained from a temporary copy of
the project with fewer epochs (TED 10: enough to learn the training examples, not
for the held-out bar, which tests/test_rasa_project.py holds the real model to), so they are
comparable with each other and the repository's models/ is never touched. The whole test takes
about 7 minutes on 2 cores.
"""
from __future__ import annotations

import asyncio
import json
import re
import secrets
import shutil
import time
from pathlib import Path
from typing import Dict, Iterator, List

import pytest
import redis

from bot.records.appointments import AppointmentStore
from bot.config import ROOT
from bot.storage.crypto import keyring
from bot.records.fhir import load_bundle_file
from bot.nlu.data import NluFile
from bot.nlu.training import file_sha256, train
from bot.ops.stack import Stack, rasa_urls
from tests.conftest import TEST_REDIS_URL, make_test_env, purge
from tests.test_e2e import _free_port, text

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1200)]

# (message, what the admin sees, the intent it means, a fragment of that intent's answer in
# office.yml). Phrasings far from the training data, checked below to be misunderstood by the
# baseline model (it falls back: asks which reading was meant, or to rephrase).
MISSES = [
    ("is there somewhere i can stash the minivan", "is there somewhere i can stash the minivan",
     "ask_parking", "Free parking is in the lot behind"),
    ("got a thing in the mail with a number on it", "got a thing in the mail with a number on it",
     "ask_billing", "For billing questions"),
]
# A message with a name, a number and a date of birth. The gateway masks the date before Rasa;
# the scrubber takes the name and the number. The model takes it for a date-of-birth answer
# (above 0.95 confident since the emergency and Spanish examples were added), so it reaches the
# inbox because this office reviews everything below 0.99 (NLU_REVIEW_THRESHOLD).
PHI_MESSAGE = ("Alex Demopatient 555-010-0177 dob 01/01/1980 where can i stash my minivan",
               "[name] [name] [phone] dob [date] where can i stash my minivan", "ask_parking")
PHI = ("Alex", "Demopatient", "555-010-0177", "5550100177", "01/01/1980")


def _project_copy(root: Path) -> Path:
    project = root / "project"
    shutil.copytree(ROOT / "data", project / "data")
    for name in ("domain.yml", "config.yml"):
        shutil.copy(ROOT / name, project / name)
    (project / "tests" / "nlu").mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "nlu" / "holdout.yml", project / "tests" / "nlu" / "holdout.yml")
    for story_file in (ROOT / "tests").glob("test_*.yml"):
        shutil.copy(story_file, project / "tests" / story_file.name)
    config = (project / "config.yml").read_text()
    fewer = re.sub(r"(TEDPolicy\n\s+max_history: \d+\n\s+epochs:) \d+", r"\1 10", config)
    assert fewer.count("epochs: 10") == 1, "config.yml layout changed"
    (project / "config.yml").write_text(fewer)
    return project


@pytest.fixture(scope="module")
def loop(tmp_path_factory) -> Iterator[Dict]:
    root = tmp_path_factory.mktemp("nlu-loop")
    project = _project_copy(root)
    models = root / "models"
    baseline = train(project, models, quiet=True)
    prefix = f"pbnlu{secrets.token_hex(3)}:"
    env = make_test_env(
        prefix,
        GATEWAY_PORT=str(_free_port()), RASA_PORT=str(_free_port()), ACTION_PORT=str(_free_port()),
        SMS_API_BASE=f"http://127.0.0.1:{_free_port()}", SMS_RATE_LIMIT_PER_MINUTE="100000",
        SMS_HOLDING_AFTER_SECONDS="60", NLU_REVIEW_THRESHOLD="0.99",  # every answer on the webhook's own response, never a holding text
        MODEL_PATH=str(models / "patientbot.tar.gz"), PATIENTBOT_RUN_DIR=str(root / "run"), LOG_LEVEL="DEBUG",
    )
    env["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{env['GATEWAY_PORT']}"
    stack = Stack.from_env(env)
    client = redis.asyncio.Redis.from_url(TEST_REDIS_URL)
    asyncio.run(AppointmentStore(client, keyring(stack.cfg), prefix).import_bundle(
        load_bundle_file(ROOT / "data" / "demo" / "synthetic_bundle.json"), "test"))
    stack.up(timeout=300, train=False)
    try:
        yield {"root": root, "project": project, "models": models, "stack": stack, "env": env,
               "baseline": baseline}
    finally:
        stack.down(say=lambda *_: None)
        purge(redis.Redis.from_url(TEST_REDIS_URL), prefix)


def _cli(args: List[str], capsys) -> str:
    from bot.cli import main

    capsys.readouterr()
    code = main(args)
    out = capsys.readouterr()
    assert code == 0, out.err[-2000:]
    return out.out


def test_misunderstood_messages_are_labelled_retrained_rolled_out_and_understood(loop, monkeypatch, capsys):
    from bot import config
    from bot.storage import crypto
    from bot.nlu.models import running_model
    from bot.core.replies import rephrase
    from bot.core.office import load_office

    stack, project, models = loop["stack"], loop["project"], loop["models"]
    for key, value in loop["env"].items():
        monkeypatch.setenv(key, value)
    config.reset_cache()
    crypto.reset_keyrings()
    rephrase_reply = rephrase(load_office(stack.cfg.office_config))

    def misunderstood(replies) -> bool:
        """The bot fell back: it asked which reading was meant (bot.core.clarify), or to rephrase."""
        return len(replies) == 1 and (replies[0] == rephrase_reply or replies[0].startswith("I want to be sure"))

    # 1. The baseline model misunderstands them: the patient is asked, not answered.
    for (message, _, _, _), number in zip(MISSES, ["+15550100171", "+15550100172"]):
        assert misunderstood(text(stack, message, number)), message
    text(stack, PHI_MESSAGE[0], "+15550100177")

    # 2. They are in the inbox, scrubbed; nothing identifying in what the admin sees.
    listing = _cli(["nlu", "inbox", "--json"], capsys)
    items = [json.loads(line) for line in listing.splitlines()]
    for fragment in PHI:
        assert fragment not in listing
    by_text = {item["text"]: item for item in items}
    assert set(by_text) == {shown for _, shown, _, _ in MISSES} | {PHI_MESSAGE[1]}
    assert all(by_text[shown]["reason"] == "fallback" for _, shown, _, _ in MISSES)
    assert (by_text[PHI_MESSAGE[1]]["reason"], by_text[PHI_MESSAGE[1]]["predicted"]) == ("low_confidence",
                                                                                         "provide_dob")

    # 3. Labelled into the project copy's data/: scrubbed text only.
    for _, shown, intent, _ in MISSES + [(None, PHI_MESSAGE[1], PHI_MESSAGE[2], None)]:
        _cli(["nlu", "label", by_text[shown]["id"], intent, "--project", str(project)], capsys)
    data = (project / "data" / "nlu.yml").read_text()
    for fragment in PHI:
        assert fragment not in data
    assert "is there somewhere i can stash the minivan" in data and PHI_MESSAGE[1] in data
    assert _cli(["nlu", "inbox"], capsys).strip() == "the review inbox is empty"

    # 4. Retrain (checks first), into a staging directory.
    started = time.monotonic()
    _cli(["nlu", "train", "--project", str(project), "--models", str(loop["root"] / "candidate")], capsys)
    trained_in = time.monotonic() - started
    candidate = loop["root"] / "candidate" / "patientbot.tar.gz"

    # 5. Evaluate against the live model: report, plots, figures before and after.
    out = loop["root"] / "report"
    # Two folds (two more NLU trainings) keep the test short; the command's default is five.
    _cli(["evaluate", str(candidate), "--project", str(project), "--models", str(models), "--out", str(out),
          "--folds", "2"], capsys)
    report = json.loads((out / "evaluation.json").read_text())
    assert (out / "report.md").is_file() and (out / "confusion.png").is_file() and (out / "f1.png").is_file()
    cv = report["cross_validation"]
    assert (cv["folds"], cv["trainings"]) == (2, 2), cv  # Rasa trained once per fold
    assert not cv["left_out"] and set(cv["per_intent"]) == set(NluFile(project / "data" / "nlu.yml").intents)
    assert cv["n"] == sum(len(set(e)) for e in NluFile(project / "data" / "nlu.yml").intents.values())
    assert 0.5 < cv["macro_f1"] <= 1.0 and (out / "cv_f1.png").is_file()
    assert "cross-validated over the training data" in (out / "report.md").read_text()
    assert report["baseline"]["sha256"] == loop["baseline"].sha256
    assert report["stories"]["failed"] is not None, report["stories"]  # the conversation tests ran
    with capsys.disabled():  # the figures the README quotes
        print(f"\nbaseline trained in {loop['baseline'].seconds:.0f} s, candidate (incl. checks) in {trained_in:.0f} s; "
              f"held-out macro F1 {report['baseline']['macro_f1']:.3f} -> {report['candidate']['macro_f1']:.3f}, "
              f"accuracy {report['baseline']['accuracy']:.3f} -> {report['candidate']['accuracy']:.3f}; "
              f"cross-validated ({cv['folds']} folds, {cv['seconds']:.0f} s) macro F1 {cv['macro_f1']:.3f}; "
              f"stories {report['stories']['stories'] - report['stories']['failed']}/{report['stories']['stories']}")

    # 6. Roll out into the running Rasa, no restart. Margin 0.05: these short trainings move the
    # held-out F1 by a point or two either way; the gate itself is tested in test_nlu_models.py.
    _cli(["model", "rollout", str(candidate), "--project", str(project), "--models", str(models),
          "--margin", "0.05", "--evaluation", str(out / "evaluation.json")], capsys)
    assert running_model(stack.cfg, rasa_urls(stack.cfg))["sha256"] == file_sha256(candidate)
    assert file_sha256(models / "patientbot.tar.gz") == file_sha256(candidate)
    assert stack.healthz() == 200

    # 7. The same messages, from new numbers, are now understood.
    for (message, _, _, answer), number in zip(MISSES, ["+15550100181", "+15550100182"]):
        replies = text(stack, message, number)
        assert any(answer in r for r in replies), (message, replies)

    # 8. Rollback: the baseline is live again, in the running Rasa too.
    _cli(["model", "rollback", "--models", str(models)], capsys)
    assert running_model(stack.cfg, rasa_urls(stack.cfg))["sha256"] == loop["baseline"].sha256
    assert misunderstood(text(stack, MISSES[0][0], "+15550100191"))

    # Audited: labels, the training, the rollout and the rollback, by the CLI's operator.
    from bot.storage.audit import AuditLog
    from bot.storage.redis_client import async_redis

    async def events():
        client = async_redis()
        try:
            return await AuditLog(client, keyring(), stack.cfg.redis_prefix).events()
        finally:
            await client.close()

    actions = [e.action for e in asyncio.run(events()) if e.actor.startswith("admin:cli:")]
    assert actions.count("nlu_labelled") == len(MISSES) + 1
    assert [a for a in actions if a.startswith("model_")] == ["model_trained", "model_rollout", "model_rollback"]

    # The stack ran at DEBUG: no process logged the synthetic patient's name, number or date.
    for log in sorted(stack.run_dir.glob("*.log")):
        content = log.read_text(errors="replace")
        assert not [f for f in PHI if f in content], log.name
