"""Training, evaluation, rollout and rollback as background jobs (the console's Model page).

One job at a time across every gateway instance: a Redis lock taken with ``SET NX`` whose TTL
is refreshed while the job runs, so a gateway that dies mid-job frees it within ``lock_ttl``
seconds and readers then see the job as interrupted. A job runs patientbot's own commands as
subprocesses (the command lines are data: tests substitute stand-ins) at low CPU priority
(bot.ops.stack.low_priority: SCHED_IDLE or ``nice``), with ``PATIENTBOT_ACTOR`` set to the admin, so the CLI's checks, gate and audit
apply unchanged and name the admin (bot.cli.common.cli_actor).

The job's state is a Redis hash of non-PHI fields only: kind, stage, times, actor, exit code,
progress, and the summary lines the commands print about results and refusals (``SAFE_LINE``:
figures, intent names, kinds of findings). Everything else they print (``rasa data validate``
quotes training examples) goes only to the job's log file.
"""
from __future__ import annotations

import asyncio
import codecs
import json
import logging
import os
import re
import signal
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable, Dict, List, Optional, Sequence

from bot.config import ROOT
from bot.nlu.training import model_path

logger = logging.getLogger(__name__)

TERMINAL = ("done", "failed", "refused", "interrupted")
MAX_LINES = 40
LOG_MAX_BYTES = 5_000_000

# What a command prints that may be kept and shown (patientbot's own summaries and refusals).
SAFE_LINE = re.compile(
    r"^(patientbot[: ]|checking the training data|trained in |model is up to date"
    r"|  data/nlu\.yml: (intent \w+, example \d+: contains |an example is under more than one intent)"
    r"|  rasa data validate --fail-on-warnings failed"
    r"|candidate \S+: held-out|deployed  \S+: held-out|cross-validation|conversation tests: |emergency detector: "
    r"|candidate macro F1|no deployed model|rolled out |rolled back )")
EPOCHS = re.compile(r"Epochs:\s*\d+%\|.*?\|\s*(\d+)/(\d+)")
COMPONENT = re.compile(r"Starting to train component '(\w+)'")
FOLD = re.compile(r"cross-validation: fold (\d+) of (\d+)")
TRAINING_STARTED = re.compile(r"Epochs:|Starting to train component|Training model|rasa\.engine")
REFUSED = re.compile(r"^patientbot: (training refused|rollout refused)")

_REFRESH = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('expire', KEYS[1], ARGV[2]) end
return 0"""
_UPDATE = """
if redis.call('hget', KEYS[1], 'id') == ARGV[1] then redis.call('hset', KEYS[1], unpack(ARGV, 2)) end
return 0"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0"""


@dataclass(frozen=True)
class Step:
    stage: str  # what the page shows while it runs
    argv: List[str]


def patientbot(*args) -> List[str]:
    """A ``patientbot`` command line with this interpreter (the gateway's virtualenv)."""
    return [sys.executable, "-m", "bot.cli", *map(str, args)]


def training_steps(cfg, folds: int, stories: bool = True) -> List[Step]:
    """Check and train a candidate, then evaluate it against the live model."""
    evaluate = patientbot("evaluate", model_path(cfg.model_candidate_dir), "--project", cfg.nlu_project_dir,
                          "--models", cfg.model_path.parent, "--out", cfg.evaluation_dir, "--folds", folds)
    return [Step("checking", patientbot("nlu", "train", "--project", cfg.nlu_project_dir,
                                        "--models", cfg.model_candidate_dir)),
            Step("evaluating", evaluate + ([] if stories else ["--no-stories"]))]


def rollout_steps(cfg) -> List[Step]:
    return [Step("rolling out", patientbot("model", "rollout", model_path(cfg.model_candidate_dir),
                                           "--evaluation", cfg.evaluation_dir / "evaluation.json",
                                           "--project", cfg.nlu_project_dir, "--models", cfg.model_path.parent))]


def rollback_steps(cfg) -> List[Step]:
    return [Step("rolling back", patientbot("model", "rollback", "--models", cfg.model_path.parent))]


def parse_line(line: str, stage: str) -> Dict[str, str]:
    """The state fields a line of output changes (progress, stage, a summary line)."""
    update: Dict[str, str] = {}
    epochs = EPOCHS.search(line)
    if epochs:
        update.update(epoch=epochs.group(1), epochs=epochs.group(2))
    component = COMPONENT.search(line)
    if component:
        update.update(component=component.group(1), epoch="0", epochs="")
    fold = FOLD.search(line)
    if fold:
        update.update(fold=fold.group(1), folds=fold.group(2))
    if stage == "checking" and TRAINING_STARTED.search(line):
        update["stage"] = "training"
    if SAFE_LINE.match(line):
        update["line"] = line.rstrip()[:300]
    return update


class JobStore:
    """The lock and the state of the one job, in Redis under the configured prefix."""

    def __init__(self, redis, prefix: str, lock_ttl: int = 60) -> None:
        self.redis = redis
        self.key = f"{prefix}nlu-job:state"
        self.lock = f"{prefix}nlu-job:lock"
        self.lock_ttl = lock_ttl

    async def acquire(self, job_id: str) -> bool:
        return bool(await self.redis.set(self.lock, job_id, nx=True, ex=self.lock_ttl))

    async def refresh(self, job_id: str) -> bool:
        return bool(await self.redis.eval(_REFRESH, 1, self.lock, job_id, self.lock_ttl))

    async def release(self, job_id: str) -> None:
        await self.redis.eval(_RELEASE, 1, self.lock, job_id)

    async def update(self, job_id: str, fields: Dict[str, str]) -> None:
        """Write the state of ``job_id`` unless a newer job has replaced it (a stale runner's late write)."""
        flat = [x for kv in fields.items() for x in kv]
        await self.redis.eval(_UPDATE, 1, self.key, job_id, *flat)

    async def state(self) -> Dict:
        """The latest job's state; a job whose lock is gone without an ending was interrupted
        (its gateway stopped or died)."""
        raw = await self.redis.hgetall(self.key)
        if not raw:
            return {}
        state = {_text(k): _text(v) for k, v in raw.items()}
        if state.get("stage") not in TERMINAL and _text(await self.redis.get(self.lock)) != state.get("id"):
            state["stage"] = "interrupted"
        state["lines"] = json.loads(state.get("lines") or "[]")
        return state


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")


Finished = Callable[[Dict], Awaitable[None]]


class JobRunner:
    """Runs jobs in this process; at most one at a time anywhere (JobStore's lock)."""

    def __init__(self, store: JobStore, log_path: Path, priority: Sequence[str] = (), flush_every: float = 2.0,
                 cwd: Path = ROOT) -> None:
        self.store = store
        self.log_path = log_path
        self.priority = list(priority)  # command prefix lowering the CPU priority (bot.ops.stack.low_priority)
        self.flush_every = flush_every
        self.cwd = cwd
        self.task: Optional[asyncio.Task] = None

    async def start(self, kind: str, steps: List[Step], actor: str, on_finish: Optional[Finished] = None,
                    details: Optional[Dict[str, str]] = None) -> Optional[str]:
        """Start a job; its id, or None when another job holds the lock."""
        job_id = uuid.uuid4().hex
        if not await self.store.acquire(job_id):
            return None
        now = f"{time.time():.0f}"
        async with self.store.redis.pipeline(transaction=True) as tx:
            tx.delete(self.store.key)
            tx.hset(self.store.key, mapping={"id": job_id, "kind": kind, "stage": steps[0].stage, "actor": actor,
                                             "started": now, "updated": now, "lines": "[]", **(details or {})})
            await tx.execute()
        self.task = asyncio.create_task(self._run(job_id, steps, actor, on_finish))
        return job_id

    async def _run(self, job_id: str, steps: List[Step], actor: str, on_finish: Optional[Finished]) -> None:
        state: Dict[str, str] = {}
        lines: List[str] = []
        stage, code = "failed", -1
        heartbeat = asyncio.create_task(self._heartbeat(job_id, state, lines))
        try:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            # Appended (a rollout keeps the training's log), restarted when large; may quote examples.
            fresh = self.log_path.is_file() and self.log_path.stat().st_size > LOG_MAX_BYTES
            fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if fresh else os.O_APPEND), 0o600)
            with os.fdopen(fd, "a", encoding="utf-8", errors="replace") as log:
                log.write(f"\n=== job {job_id} ({', '.join(s.stage for s in steps)}) by {actor} at "
                          f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} ===\n")
                for step in steps:
                    state.update(stage=step.stage)
                    await self.store.update(job_id, state)
                    code = await self._step(step, actor, state, lines, log)
                    state[f"exit_{step.stage.replace(' ', '_')}"] = str(code)
                    if code != 0:
                        break
            stage = "done" if code == 0 else "refused" if any(REFUSED.match(x) for x in lines) else "failed"
        except asyncio.CancelledError:
            stage = "interrupted"
            raise
        except Exception as exc:  # noqa: BLE001 - the job failed; the page says so, the log says why
            state["error"] = type(exc).__name__
        finally:
            heartbeat.cancel()
            state.update(stage=stage, finished=f"{time.time():.0f}", lines=json.dumps(lines[-MAX_LINES:]))
            await asyncio.shield(self._finish(job_id, state, on_finish))

    async def _finish(self, job_id: str, state: Dict[str, str], on_finish: Optional[Finished]) -> None:
        try:
            await self.store.update(job_id, state)
            if on_finish is not None:
                await on_finish({**state, "lines": json.loads(state["lines"])})
        except Exception as exc:  # noqa: BLE001 - the lock is released regardless; the gap is logged
            logger.error("model job %s: recording its end failed (%s)", job_id, type(exc).__name__)
        finally:
            await self.store.release(job_id)

    async def _heartbeat(self, job_id: str, state: Dict[str, str], lines: List[str]) -> None:
        """Keep the lock while the job runs (a silent command too) and publish its progress."""
        while True:
            await asyncio.sleep(self.flush_every)
            if not await self.store.refresh(job_id):  # expired (this loop starved): stop rather than overlap
                if self.task is not None:
                    self.task.cancel()
                return
            await self.store.update(job_id, {**state, "updated": f"{time.time():.0f}", "lines": json.dumps(lines)})

    async def _step(self, step: Step, actor: str, state: Dict[str, str], lines: List[str], log) -> int:
        argv = self.priority + step.argv
        env = {**os.environ, "PATIENTBOT_ACTOR": actor, "PYTHONUNBUFFERED": "1"}
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=str(self.cwd), env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True)  # its own group: stop() ends rasa too
        pending, decoder = "", codecs.getincrementaldecoder("utf-8")("replace")  # chunks split characters
        try:
            while True:
                chunk = await proc.stdout.read(4096)
                if not chunk:
                    break
                text = decoder.decode(chunk)
                log.write(text)
                # tqdm redraws with carriage returns: each redraw is a line of progress.
                *complete, pending = re.split(r"\r\n|\r|\n", pending + text)
                for line in complete:
                    self._apply(parse_line(line, state["stage"]), state, lines)
            if pending:
                self._apply(parse_line(pending, state["stage"]), state, lines)
            return await proc.wait()
        finally:
            if proc.returncode is None:
                await _end_group(proc)
            log.flush()

    @staticmethod
    def _apply(update: Dict[str, str], state: Dict[str, str], lines: List[str]) -> None:
        line = update.pop("line", None)
        if line is not None:
            lines.append(line)
            del lines[:-MAX_LINES]
        state.update(update)

    async def stop(self) -> None:
        """End the running job (gateway shutdown): its processes stop, its state says interrupted."""
        if self.task is not None and not self.task.done():
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()


async def _end_group(proc: asyncio.subprocess.Process, grace: float = 10.0) -> None:
    """SIGTERM the command's process group (rasa under patientbot), SIGKILL if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            await asyncio.wait_for(proc.wait(), grace)
            return
        except asyncio.TimeoutError:
            continue
