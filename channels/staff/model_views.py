"""The Model page (admins): what is live, train and evaluate a candidate, roll it out or back.

The work is patientbot's own commands run as background jobs (bot.nlu.jobs): one at a time
across every gateway, at low CPU priority, audited by the commands themselves as the admin
(``PATIENTBOT_ACTOR``) and here as job started / finished. Every form names what the admin saw
(the candidate's SHA-256, the deployment rolled back to), so a page left open while something
changed acts on nothing. Reading the model files and asking Rasa what it runs block, so they
run in an executor, never on the event loop.
"""
from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Dict, Optional, Tuple

from aiohttp import web
from multidict import MultiDictProxy

from bot.nlu.jobs import TERMINAL, JobRunner, JobStore, rollback_steps, rollout_steps, training_steps
from bot.nlu.models import ModelRegistry, gate, running_models
from bot.nlu.training import file_sha256, model_path
from bot.ops.stack import low_priority, rasa_urls
from channels.staff.auth import current_staff, route
from channels.staff.views import Done, form_action, page_flash, render, set_flash, staff_services
from channels.gateway.app_keys import SERVICES, SETTINGS
from channels.staff.app_keys import MODEL_JOBS

MODEL_PAGE = "/staff/admin/model"
FOLDS = (0, 3, 5)
FIGURES = ("confusion.png", "f1.png", "cv_f1.png")
STAGES = {"checking": "checking the data", "training": "training", "evaluating": "evaluating",
          "rolling out": "rolling out", "rolling back": "rolling back", "done": "done", "failed": "failed",
          "refused": "refused", "interrupted": "interrupted (the gateway running it stopped)"}
_hashes: Dict[Tuple[str, int, int], str] = {}


def add_job_runner(app: web.Application, cfg) -> None:
    """The gateway's job runner; a gateway that stops ends its job (shown as interrupted)."""

    async def start(app: web.Application) -> None:
        app[MODEL_JOBS] = JobRunner(JobStore(app[SERVICES].redis, cfg.redis_prefix), cfg.evaluation_dir / "console-job.log",
                                      priority=low_priority(cfg))

    async def stop(app: web.Application) -> None:
        if MODEL_JOBS in app:
            await app[MODEL_JOBS].stop()

    app.on_startup.append(start)
    app.on_shutdown.append(stop)  # before cleanup closes the Redis client the job's state needs


def _sha256(path: Path) -> Optional[str]:
    """A model file's SHA-256, remembered while the file is unchanged (models are large)."""
    try:
        st = path.stat()
    except OSError:
        return None
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _hashes:
        while len(_hashes) >= 8:  # only the latest few files matter
            _hashes.pop(next(iter(_hashes)))
        _hashes[key] = file_sha256(path)
    return _hashes[key]


def _evaluation(cfg) -> Optional[Dict]:
    """The candidate's evaluation figures, and whether they are still of the files on disk."""
    path = cfg.evaluation_dir / "evaluation.json"
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        cand, base = report["candidate"], report.get("baseline")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    live = ModelRegistry(cfg.model_path.parent).live
    candidate_sha, live_sha = _sha256(model_path(cfg.model_candidate_dir)), _sha256(live)
    changes = []
    for intent, scores in sorted(cand.get("per_intent", {}).items()):
        old = ((base or {}).get("per_intent") or {}).get(intent, {}).get("f1")
        changes.append({"intent": intent, "f1": scores["f1"], "old": old,
                        "change": None if old is None else scores["f1"] - old})
    cv = report.get("cross_validation")
    verdict = gate(cand["macro_f1"], base["macro_f1"] if base else None, cfg.rollout_margin)
    return {"candidate": cand, "baseline": base, "changes": changes, "stories": report.get("stories"),
            "safety": report.get("safety"), "cv": cv if isinstance(cv, dict) else None,
            "gate": verdict, "candidate_current": cand.get("sha256") == candidate_sha,
            "baseline_current": (base or {}).get("sha256") == live_sha,
            "figures": [f for f in FIGURES if (cfg.evaluation_dir / f).is_file()],
            "written": path.stat().st_mtime}


def _overview(cfg) -> Dict:
    registry = ModelRegistry(cfg.model_path.parent)
    history = registry.history()
    return {"running": running_models(cfg, rasa_urls(cfg)), "history": list(reversed(history[-20:])),
            "previous": registry.previous(), "evaluation": _evaluation(cfg),
            "live_sha": _sha256(registry.live)}


def _job_view(job: Dict, names: Dict[str, str]) -> Dict:
    if not job:
        return {}
    started = float(job.get("started") or 0)
    ended = float(job.get("finished") or 0) or (float(job.get("updated") or 0) if job.get("stage") == "interrupted"
                                                 else time.time())
    progress = ""
    if job.get("epochs"):
        progress = f"{job.get('component') or 'model'}: epoch {job.get('epoch', '0')} of {job['epochs']}"
    if job.get("folds") and job.get("stage") == "evaluating":
        progress = f"cross-validation fold {job.get('fold')} of {job['folds']}"
    return {"id": job.get("id"), "kind": job.get("kind"), "stage": job.get("stage"),
            "label": STAGES.get(job.get("stage", ""), job.get("stage")),
            "running": job.get("stage") not in TERMINAL, "elapsed_seconds": int(max(0.0, ended - started)),
            "started": started, "by": names.get(job.get("actor", ""), "an administrator"),
            "progress": progress, "lines": job.get("lines", []), "folds": job.get("cv_folds", "")}


async def _job(request: web.Request) -> Dict:
    job = await request.app[MODEL_JOBS].store.state()
    names = {}
    if job.get("actor", "").startswith("staff:"):
        member = await staff_services(request).accounts.get(job["actor"][len("staff:"):])
        if member is not None:
            names[member.actor] = member.username
    return _job_view(job, names)


@route("GET", "/admin/model", "admin")
async def model_page(request: web.Request) -> web.Response:
    """The Model page: what is live, the candidate's figures, the running job."""
    cfg = request.config_dict[SETTINGS]
    overview = await asyncio.get_running_loop().run_in_executor(None, _overview, cfg)
    flash = await page_flash(request)
    return render(request, "model.html", flash=flash, job=await _job(request), folds=FOLDS,
                   margin=cfg.rollout_margin, **overview)


@route("GET", "/api/model/job", "admin", kind="api", touch=False)
async def job_api(request: web.Request) -> web.Response:
    """The running (or last) job, for the page's live progress."""
    return web.json_response(await _job(request))


@route("GET", "/admin/model/report", "admin")
async def report(request: web.Request) -> web.StreamResponse:
    """The evaluation report; ``?figure=NAME`` one of its plots (a fixed list: no paths)."""
    cfg = request.config_dict[SETTINGS]
    figure = request.query.get("figure")
    if figure is not None:
        if figure not in FIGURES or not (cfg.evaluation_dir / figure).is_file():
            raise web.HTTPNotFound(text="no such figure")
        return web.FileResponse(cfg.evaluation_dir / figure, headers={"Content-Type": "image/png"})
    path = cfg.evaluation_dir / "report.md"
    text = path.read_text(encoding="utf-8") if path.is_file() else None
    figures = [f for f in FIGURES if (cfg.evaluation_dir / f).is_file()]
    return render(request, "model_report.html", report=text, figures=figures)


async def _start(request: web.Request, kind: str, steps, details: Dict[str, str]) -> bool:
    services = staff_services(request)
    me = current_staff(request)

    async def finished(state: Dict) -> None:
        await services.audit.record(me.actor, "model_job_finished", kind, state["stage"],
                                    {k: v for k, v in state.items() if k.startswith("exit_")})

    job_id = await request.app[MODEL_JOBS].start(kind, steps, me.actor, finished, details)
    await services.audit.record(me.actor, "model_job_started", kind, "ok" if job_id else "busy",
                                {"job": job_id or "", **details})
    if job_id is None:
        await set_flash(request, "Another training, evaluation or rollout is running; wait for it to finish.")
    return job_id is not None


@route("POST", "/admin/model/train", "admin")
async def train(request: web.Request) -> web.Response:
    """Train a candidate and evaluate it against the live model (with the chosen cross-validation folds)."""
    cfg = request.config_dict[SETTINGS]

    async def work(form: MultiDictProxy) -> Done:
        folds = str(form.get("folds", ""))
        if folds not in {str(n) for n in FOLDS}:
            return Done("Choose the number of cross-validation folds.")
        if await _start(request, "train", training_steps(cfg, int(folds), stories=form.get("stories") == "on"),
                        {"cv_folds": folds}):
            return Done("Training started. This page shows its progress.")
        return Done()  # _start said why not

    await form_action(request, MODEL_PAGE, work)


@route("POST", "/admin/model/rollout", "admin")
async def rollout(request: web.Request) -> web.Response:
    """Roll out the evaluated candidate the page showed."""
    cfg = request.config_dict[SETTINGS]

    async def work(form: MultiDictProxy) -> Done:
        seen = str(form.get("candidate", ""))
        evaluation = await asyncio.get_running_loop().run_in_executor(None, _evaluation, cfg)
        if not seen or evaluation is None or not evaluation["candidate_current"] \
                or evaluation["candidate"]["sha256"] != seen:
            return Done("The candidate changed since this page was loaded (or has no evaluation); "
                        "nothing was rolled out. Check the figures below and try again.",
                        "refused", {"reason": "not the evaluated candidate"})
        if await _start(request, "rollout", rollout_steps(cfg), {"candidate_sha256": seen}):
            return Done("Rollout started: the gate compares the figures, then Rasa loads the model.",
                        "ok", {"candidate_sha256": seen})
        return Done()  # _start said why not

    await form_action(request, MODEL_PAGE, work, "model_rollout_requested")


@route("POST", "/admin/model/rollback", "admin")
async def rollback(request: web.Request) -> web.Response:
    """Roll back to the previous deployment the page showed."""
    cfg = request.config_dict[SETTINGS]

    async def work(form: MultiDictProxy) -> Done:
        seen = str(form.get("to", ""))
        previous = await asyncio.get_running_loop().run_in_executor(
            None, lambda: ModelRegistry(cfg.model_path.parent).previous())
        if not seen or previous is None or previous["sha256"] != seen:
            return Done("The deployment history changed since this page was loaded; nothing was rolled back.",
                        "refused", {"reason": "not the deployment shown"})
        if await _start(request, "rollback", rollback_steps(cfg), {"to_sha256": seen}):
            return Done(f"Rolling back to {previous['model']}.", "ok", {"to_sha256": seen})
        return Done()  # _start said why not

    await form_action(request, MODEL_PAGE, work, "model_rollback_requested")
