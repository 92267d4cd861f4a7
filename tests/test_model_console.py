"""The Model page of the staff console (admin role): train and evaluate a candidate, roll it out,
as background jobs (bot.nlu.jobs) that run patientbot's own commands as the admin.

The runner's mechanics are tested with stand-in commands (``python -c``); the console with a
stand-in job, a real refused training (a phone number in a copy of the data: refused before
Rasa starts) and one real short training on a copy of the project (TED 1 epoch),
evaluated and rolled out into a temporary models directory. Runs on the in-process gateway of
tests/test_staff_console.py, whose every-route-with-every-role test covers these routes too.
"""
from __future__ import annotations

import asyncio
import json
import re
import shutil
import sys
import time
from pathlib import Path

import pytest
import redis

from bot.config import ROOT
from bot.nlu.jobs import TERMINAL, JobRunner, JobStore, Step, parse_line
from bot.nlu.models import ModelRegistry
from tests.conftest import TEST_REDIS_URL, redis_dump
from tests.test_e2e import _free_port
from tests.test_sms_outbound import stack  # noqa: F401 - the gateway + stand-in Rasa + provider stand-in
from tests.test_staff_console import _audit, _plain_http_cookies, console  # noqa: F401 - fixtures
from channels.staff.app_keys import MODEL_JOBS

PHONE = "555-010-0142"  # synthetic
EPOCH_LINE = "Epochs:  45%|████▌     | 45/100 [00:10<00:12,  4.41it/s, t_loss=1.23, i_acc=0.912]"


def _py(code: str) -> list:
    return [sys.executable, "-c", code]


@pytest.fixture(autouse=True)
def project(tmp_path, monkeypatch):
    """A copy of the project and temporary model and evaluation directories: the console never
    trains into, evaluates into or rolls out of the repository's own."""
    project = tmp_path / "project"
    shutil.copytree(ROOT / "data", project / "data", ignore=shutil.ignore_patterns("demo"))
    for name in ("domain.yml", "config.yml"):
        shutil.copy(ROOT / name, project / name)
    (project / "tests" / "nlu").mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "nlu" / "holdout.yml", project / "tests" / "nlu" / "holdout.yml")
    for key, value in {"NLU_PROJECT_DIR": project, "MODEL_PATH": tmp_path / "models" / "patientbot.tar.gz",
                       "MODEL_CANDIDATE_DIR": tmp_path / "models" / "candidate",
                       "EVALUATION_DIR": tmp_path / "evaluation"}.items():
        monkeypatch.setenv(key, str(value))
    return project


@pytest.fixture
async def rc():
    client = redis.asyncio.Redis.from_url(TEST_REDIS_URL)
    yield client
    await client.close()


async def _until_ended(store: JobStore, timeout: float = 60.0, seen: list = None) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = await store.state()
        if seen is not None:
            seen.append(state)
        if state.get("stage") in TERMINAL and await store.redis.get(store.lock) is None:
            return state
        await asyncio.sleep(0.2)
    raise AssertionError(f"the job did not end within {timeout} s: {await store.state()}")


# -- parsing the commands' output ------------------------------------------------------------------
@pytest.mark.parametrize("line,stage,expected", [
    (EPOCH_LINE, "training", {"epoch": "45", "epochs": "100"}),
    ("2026-11-26 00:01:02 INFO rasa.engine.training.hooks - Starting to train component 'DIETClassifier'.",
     "checking", {"component": "DIETClassifier", "epoch": "0", "epochs": "", "stage": "training"}),
    ("cross-validation: fold 2 of 5 ...", "evaluating",
     {"fold": "2", "folds": "5", "line": "cross-validation: fold 2 of 5 ..."}),
    ("  data/nlu.yml: intent greet, example 3: contains phone", "checking",
     {"line": "  data/nlu.yml: intent greet, example 3: contains phone"}),
    ("candidate patientbot.tar.gz: held-out macro F1 0.912, accuracy 0.930", "evaluating",
     {"line": "candidate patientbot.tar.gz: held-out macro F1 0.912, accuracy 0.930"}),
    # rasa data validate's findings quote examples: never kept (they stay in the log file)
    ("  UserWarning: The example 'call me at 555-010-0142' was found in two intents", "checking", {}),
    ("2026-11-26 00:01:02 INFO some rasa line quoting 'an example'", "training", {}),
])
def test_parse_line(line, stage, expected):
    assert parse_line(line, stage) == expected


# -- the runner, with stand-in commands ------------------------------------------------------------
STAND_IN_TRAINING = (
    "import sys, time\n"
    "print('checking the training data (PHI scrubber, conflicts, rasa data validate) ...', flush=True)\n"
    "print('a line quoting a synthetic example: call me at " + PHONE + "', flush=True)\n"
    "for n in range(1, 5):\n"
    "    sys.stderr.write('\\rEpochs:  %d%%|##| %d/4 [00:01<00:01]' % (n * 25, n))\n"
    "    sys.stderr.flush(); time.sleep(0.3)\n"
    "print('\\ntrained in 1 s -> candidate', flush=True)\n")


async def test_runner_publishes_stage_progress_and_safe_lines_only(rc, prefix, tmp_path):
    store = JobStore(rc, prefix)
    runner = JobRunner(store, tmp_path / "job.log", priority=["nice", "-n", "5"], flush_every=0.2)
    finished = []

    async def on_finish(state):
        finished.append(state)

    seen = []
    job = await runner.start("train", [Step("checking", _py(STAND_IN_TRAINING)),
                                       Step("evaluating", _py("print('conversation tests: 9 of 9 pass')"))],
                             "staff:test-admin", on_finish)
    assert job and 0 < await rc.ttl(store.lock) <= 60  # a dead gateway's lock expires
    while runner.running:
        seen.append(await store.state())
        await asyncio.sleep(0.1)
    state = await _until_ended(store)
    assert state["stage"] == "done" and state["exit_checking"] == "0" and state["exit_evaluating"] == "0"
    assert ("training", "4") in {(s.get("stage"), s.get("epochs")) for s in seen}  # from \r-redrawn progress
    assert state["actor"] == "staff:test-admin" and state["epoch"] == "4"
    assert state["lines"] == ["checking the training data (PHI scrubber, conflicts, rasa data validate) ...",
                              "trained in 1 s -> candidate", "conversation tests: 9 of 9 pass"]
    assert finished and finished[0]["stage"] == "done"
    assert PHONE in (tmp_path / "job.log").read_text()  # the full output is in the log file only
    assert (tmp_path / "job.log").stat().st_mode & 0o077 == 0
    assert PHONE.encode() not in redis_dump(prefix)


async def test_one_job_at_a_time_and_a_failing_step_ends_it(rc, prefix, tmp_path):
    store = JobStore(rc, prefix)
    first, second = (JobRunner(store, tmp_path / "job.log", priority=(), flush_every=0.2) for _ in range(2))
    gate = tmp_path / "go"
    waiting = _py(f"import os, time\nwhile not os.path.exists({str(gate)!r}): time.sleep(0.05)")
    assert await first.start("train", [Step("checking", waiting)], "staff:a")
    # another gateway instance (another runner, same Redis) is refused while it runs
    assert await second.start("rollback", [Step("rolling back", _py("pass"))], "staff:b") is None
    gate.touch()
    assert (await _until_ended(store))["stage"] == "done"
    assert await second.start("train", [Step("checking", _py("import sys; sys.exit(3)")),
                                        Step("evaluating", _py("open('never', 'w')"))], "staff:b")
    state = await _until_ended(store)
    assert state["stage"] == "failed" and state["exit_checking"] == "3" and "exit_evaluating" not in state
    assert await second.start("rollout", [Step("rolling out", _py(
        "import sys; print('patientbot: rollout refused: candidate macro F1 0.500, deployed 0.900', file=sys.stderr);"
        " sys.exit(1)"))], "staff:b")
    state = await _until_ended(store)
    assert state["stage"] == "refused" and state["lines"] == [
        "patientbot: rollout refused: candidate macro F1 0.500, deployed 0.900"]


async def test_a_stopped_or_dead_gateway_leaves_the_job_interrupted_and_the_lock_free(rc, prefix, tmp_path):
    store = JobStore(rc, prefix, lock_ttl=2)
    runner = JobRunner(store, tmp_path / "job.log", priority=(), flush_every=0.2)
    marker = tmp_path / "still-running"
    child = f"import time\nfor _ in range(200):\n    open({str(marker)!r}, 'a').write('.'); time.sleep(0.05)"
    assert await runner.start("train", [Step("checking", _py(child))], "staff:a")
    await asyncio.sleep(0.5)
    await runner.stop()  # graceful shutdown: the command is ended, the state says so
    state = await store.state()
    assert state["stage"] == "interrupted" and await rc.get(store.lock) is None
    size = marker.stat().st_size
    await asyncio.sleep(0.3)
    assert marker.stat().st_size == size  # its process is gone

    # A gateway that died: its state is never ended, its lock expires, readers say interrupted.
    assert await runner.start("train", [Step("checking", _py("import time; time.sleep(30)"))], "staff:a")
    runner.flush_every = 3600  # its heartbeat stops, as if the gateway had died
    await asyncio.sleep(0.4)
    await rc.expire(store.lock, 1)
    await asyncio.sleep(1.3)
    assert (await store.state())["stage"] == "interrupted"
    other = JobRunner(store, tmp_path / "job2.log", priority=())
    assert await other.start("rollback", [Step("rolling back", _py("pass"))], "staff:b")
    assert (await _until_ended(store))["stage"] == "done"
    await runner.stop()  # the stale job ending late does not overwrite the newer job's state
    state = await store.state()
    assert (state["stage"], state["kind"], state["actor"]) == ("done", "rollback", "staff:b")


# -- the console --------------------------------------------------------------------------------------
async def test_model_page_is_for_admins_and_its_forms_need_csrf(console):
    browser = await console["browser"]()
    resp, body = await browser.page("/staff/admin/model")
    assert resp.status == 303 and resp.headers["Location"].startswith("/staff/login")
    assert (await browser.client.get("/staff/api/model/job")).status == 401
    agent = await console["sign_in"]("alice")
    assert (await agent.page("/staff/admin/model"))[0].status == 403
    assert (await agent.post("/staff/admin/model/train", {"folds": "0"})).status == 403
    admin = await console["sign_in"]("ada")
    assert (await admin.post("/staff/admin/model/train", {"folds": "0"}, csrf=False)).status == 403
    assert (await admin.page("/staff/api/model/job"))[1] == "{}"  # nothing was started
    resp, body = await admin.page("/staff/admin/model")
    assert resp.status == 200 and '<a href="/staff/admin/model">Model</a>' in body
    assert "No job has run yet." in body and "No evaluated candidate yet." in body
    _, inbox = await admin.page("/staff/admin/nlu")
    assert "on the <a href=\"/staff/admin/model\">Model</a> page" in inbox
    resp, body = await admin.page("/staff/admin/model/report?figure=../../.env")
    assert resp.status == 404
    refused = [e.action for e in await _audit(console) if e.outcome == "refused"]
    assert refused.count("staff_forbidden") == 2 and refused.count("staff_csrf_refused") == 1


async def test_a_second_start_while_a_job_runs_is_refused(console, monkeypatch, tmp_path):
    from channels.staff import model_views

    gate = tmp_path / "go"
    monkeypatch.setattr(model_views, "training_steps", lambda cfg, folds, stories: [Step("checking", _py(
        f"import os, time\nwhile not os.path.exists({str(gate)!r}): time.sleep(0.05)\nprint('trained in 0 s')"))])
    admin = await console["sign_in"]("ada")
    assert (await admin.post("/staff/admin/model/train", {"folds": "3"})).status == 303
    _, body = await admin.page("/staff/admin/model")
    assert 'data-job-running="1"' in body and "Training started." in body
    assert re.search(r'<dd id="job-stage">checking the data</dd>', body)
    assert re.search(r"<button type=\"submit\" disabled>Train and evaluate</button>", body)
    assert (await admin.post("/staff/admin/model/train", {"folds": "0"})).status == 303
    _, body = await admin.page("/staff/admin/model")
    assert "Another training, evaluation or rollout is running" in body
    job = json.loads((await admin.page("/staff/api/model/job"))[1])
    assert job["running"] and job["by"] == "ada" and job["folds"] == "3"
    gate.touch()
    state = await _until_ended(console["stack"][4][MODEL_JOBS].store)
    assert state["stage"] == "done"
    ada = f"staff:{console['staff']['ada'].member.id}"
    events = [(e.action, e.outcome, e.actor) for e in await _audit(console) if e.action.startswith("model_job")]
    assert events == [("model_job_started", "ok", ada), ("model_job_started", "busy", ada),
                      ("model_job_finished", "done", ada)]


async def test_training_refused_for_a_phone_number_in_the_data(console, project):
    nlu = project / "data" / "nlu.yml"
    nlu.write_text(nlu.read_text().replace("      - hiya\n", f"      - hiya call me at {PHONE}\n", 1))
    admin = await console["sign_in"]("ada")
    assert (await admin.post("/staff/admin/model/train", {"folds": "0"})).status == 303
    state = await _until_ended(console["stack"][4][MODEL_JOBS].store, timeout=60)
    assert state["stage"] == "refused", state
    _, body = await admin.page("/staff/admin/model")
    assert "data/nlu.yml: intent greet, example" in body and "contains phone" in body
    assert "Training was refused" in body and PHONE not in body
    ada = f"staff:{console['staff']['ada'].member.id}"
    events = {(e.action, e.outcome): e.actor for e in await _audit(console)}
    assert events[("model_training_refused", "refused")] == ada  # audited by the command, as the admin
    assert events[("model_job_finished", "refused")] == ada
    assert PHONE.encode() not in redis_dump(console["stack"][3].redis_prefix)
    assert not (project.parent / "models" / "candidate" / "patientbot.tar.gz").exists()


async def test_a_rollback_from_a_stale_page_does_nothing_and_is_audited(console):
    admin = await console["sign_in"]("ada")
    assert (await admin.post("/staff/admin/model/rollback", {"to": "0" * 64})).status == 303
    _, body = await admin.page("/staff/admin/model")
    assert "nothing was rolled back" in body
    assert (await admin.page("/staff/api/model/job"))[1] == "{}"  # no job was started
    ada = f"staff:{console['staff']['ada'].member.id}"
    events = {(e.action, e.outcome): e.actor for e in await _audit(console)}
    assert events[("model_rollback_requested", "refused")] == ada


def _fewer_epochs(project: Path) -> None:
    config = (project / "config.yml").read_text()
    fewer = re.sub(r"(TEDPolicy\n\s+max_history: \d+\n\s+epochs:) \d+", r"\1 1", config)
    assert fewer.count("epochs: 1\n") == 1, "config.yml layout changed"
    (project / "config.yml").write_text(fewer)


@pytest.mark.slow
@pytest.mark.timeout(900)  # a training on a loaded machine: a long holding deadline
async def test_train_evaluate_and_roll_out_from_the_console(console, project, monkeypatch):
    from bot.nlu.jobs import training_steps
    from channels.staff import model_views

    _fewer_epochs(project)
    models = project.parent / "models"

    def with_a_live_model(cfg, folds, stories):
        """The real steps, with the candidate copied in as the live model before the evaluation,
        so it is compared with a live model (one training instead of two)."""
        train, evaluate = training_steps(cfg, folds, stories)
        copy = _py(f"import shutil; shutil.copy({str(models / 'candidate' / 'patientbot.tar.gz')!r}, "
                   f"{str(models / 'patientbot.tar.gz')!r})")
        return [train, Step("evaluating", copy), evaluate]

    monkeypatch.setattr(model_views, "training_steps", with_a_live_model)
    monkeypatch.setenv("ROLLOUT_MARGIN", "1.0")  # any candidate passes the gate: the outcome is certain
    monkeypatch.setenv("RASA_PORT", str(_free_port()))  # no Rasa runs: "used at its next start"
    admin = await console["sign_in"]("ada")
    store = console["stack"][4][MODEL_JOBS].store
    started, seen = time.monotonic(), []
    assert (await admin.post("/staff/admin/model/train", {"folds": "0"})).status == 303  # no conversation tests
    state = await _until_ended(store, timeout=840, seen=seen)
    print(f"train and evaluate: {time.monotonic() - started:.0f} s")
    log = (project.parent / "evaluation" / "console-job.log").read_text()
    assert state["stage"] == "done", (state, log[-3000:])
    stages = [s.get("stage") for s in seen]
    assert stages.index("checking") < stages.index("training") < stages.index("evaluating")
    # Epoch progress: the training's output carries it, and the job's parser reads it (whether a
    # poll happens to see it depends on how long the 1-epoch training takes, so not asserted).
    from bot.nlu.jobs import parse_line
    assert any(parse_line(line, "training").get("epochs") for line in re.split(r"[\r\n]", log))
    _, body = await admin.page("/staff/admin/model")
    assert re.search(r"<th scope=\"row\">Candidate</th><td>\d\.\d{3}</td>", body)
    assert re.search(r"<th scope=\"row\">Change</th><td>\+0\.000</td>", body)  # the same model, twice
    assert "passes: candidate macro F1" in body and 'id="model-cv">not run' in body
    assert '<td>greet</td>' in body and 'id="model-stories">not run' in body
    sha = re.search(r'name="candidate" value="([0-9a-f]{64})"', body).group(1)
    resp, report = await admin.page("/staff/admin/model/report")
    assert "# Model evaluation" in report and "?figure=f1.png" in report
    resp = await admin.client.get("/staff/admin/model/report?figure=f1.png")
    assert resp.status == 200 and (await resp.read()).startswith(b"\x89PNG")

    assert (await admin.post("/staff/admin/model/rollout", {"candidate": "0" * 64})).status == 303
    _, body = await admin.page("/staff/admin/model")
    assert "nothing was rolled out" in body
    assert (await admin.post("/staff/admin/model/rollout", {"candidate": sha})).status == 303
    state = await _until_ended(store, timeout=60)
    assert state["stage"] == "done" and any("Rasa is not running: used at its next start" in x for x in state["lines"])
    ada = f"staff:{console['staff']['ada'].member.id}"
    history = ModelRegistry(models).history()
    assert [(e["action"], e["actor"]) for e in history] == [("found", ada), ("rollout", ada)]
    _, body = await admin.page("/staff/admin/model")
    assert re.search(r"<td>rollout</td><td><code>patientbot-[0-9a-f]{12}\.tar\.gz</code>", body)
    events = {(e.action, e.outcome): e.actor for e in await _audit(console)}
    for event in [("model_trained", "ok"), ("model_rollout", "ok"), ("model_rollout_requested", "ok"),
                  ("model_job_finished", "done")]:
        assert events[event] == ada, event
    assert "=== job " in log and log.count("=== job ") == 1
    assert (project.parent / "evaluation" / "console-job.log").read_text().count("=== job ") == 2
