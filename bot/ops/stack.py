"""Start and stop the whole stack in the background, on loopback: action server, Rasa, gateway
(and, in development, the SMS provider stand-in from devtools/).

``up`` trains first if the model is out of date, starts each process in its own process group
with its log in the run directory (``.run/`` by default, ``PATIENTBOT_RUN_DIR`` to change),
and returns once the gateway's ``/healthz`` answers 200, which it does only when Redis, Rasa
with its encrypted tracker store, and the action server are all up. If a process dies or the
stack is not healthy in time, it shows the end of that process's log, stops everything and
fails. ``down`` stops what ``up`` started.

Scale-out: ``up`` with ``scale=N`` runs N action servers, N Rasa servers and N gateways against
the one Redis (tracker store, lock store and every other state are shared there), and one SMS
stand-in. Instance 1 is the stack as it always was (names ``actions``, ``rasa``, ``gateway``,
the settings' ports); instance i > 1 is named ``gateway-i`` and so on (its own log and pid
file) and listens on ``GATEWAY_PORT_i``, ``RASA_PORT_i``, ``ACTION_PORT_i`` if set, else on
the base port + i - 1. Gateway i talks to Rasa i, Rasa i to action server i; every gateway
checks signatures against the one ``PUBLIC_BASE_URL`` (the load balancer's address).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional
from urllib.parse import urlparse

from bot.config import ROOT, Settings, load_settings, merged_environ
from bot.safety import model as safety_model
from bot.nlu.training import is_current, model_path, rasa_bin, rasa_env, train_command

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def low_priority(cfg: Settings) -> List[str]:
    """The command prefix for CPU-heavy work beside the gateway (Rasa, the action server,
    trainings): SCHED_IDLE where Linux offers it (``NLU_SCHED_IDLE``; a process waking in the
    gateway or Redis takes the CPU from it at once), else niceness ``NLU_NICE``."""
    if cfg.nlu_sched_idle and sys.platform.startswith("linux") and shutil.which("chrt"):
        return ["chrt", "--idle", "0"]
    return ["nice", "-n", str(cfg.nlu_nice)] if cfg.nlu_nice else []


class StackError(RuntimeError):
    """The stack could not be started; the message says which part and why."""


ROLES = ("actions", "rasa", "gateway")  # the processes of one instance, in start order


@dataclass(frozen=True)
class Instance:
    """One gateway with its own Rasa server and action server."""

    number: int  # 1, 2, ...
    gateway_port: int
    rasa_port: int
    action_port: int

    def name(self, role: str) -> str:
        return role if self.number == 1 else f"{role}-{self.number}"


@dataclass
class Stack:
    cfg: Settings
    run_dir: Path
    env: Dict[str, str]  # the settings environment every process of the stack gets
    scale: int = 1  # instances (gateway + Rasa + action server) to run

    @classmethod
    def from_env(cls, env: Optional[Dict[str, str]] = None, scale: Optional[int] = None) -> "Stack":
        """The stack the settings describe; ``scale`` None means as many instances as run now (at least 1)."""
        env = merged_environ() if env is None else dict(env)
        run_dir = Path(env.get("PATIENTBOT_RUN_DIR", str(ROOT / ".run")))
        stack = cls(load_settings(env), run_dir, env)
        stack.scale = stack.running_scale() if scale is None else scale
        if stack.scale < 1:
            raise StackError("the scale is the number of instances to run: 1 or more")
        return stack

    # -- instances --------------------------------------------------------------------------
    def instance(self, number: int) -> Instance:
        def port(setting: str, base: int) -> int:
            explicit = self.env.get(f"{setting}_{number}")
            return int(explicit) if explicit else base + number - 1

        if number == 1:
            return Instance(1, self.cfg.gateway_port, self.cfg.rasa_port, self.cfg.action_port)
        return Instance(number, port("GATEWAY_PORT", self.cfg.gateway_port), port("RASA_PORT", self.cfg.rasa_port),
                        port("ACTION_PORT", self.cfg.action_port))

    @property
    def instances(self) -> List[Instance]:
        return [self.instance(n) for n in range(1, self.scale + 1)]

    def running_scale(self) -> int:
        """How many instances have a pid file in the run directory (1 if none)."""
        numbers = [1]
        for pid_file in self.run_dir.glob("*-*.pid"):
            role, _, number = pid_file.stem.rpartition("-")
            if role in ROLES and number.isdigit():
                numbers.append(int(number))
        return max(numbers)

    # -- process environment ----------------------------------------------------------------
    def child_env(self, instance: int = 1) -> Dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        env.update({k: v for k, v in rasa_env().items() if k not in self.env})
        env.update({
            "REDIS_PREFIX": self.cfg.redis_prefix,
            "ACTION_PORT": str(self.cfg.action_port),
            "SANIC_HOST": "127.0.0.1",
            "PYTHONUNBUFFERED": "1",
        })
        if instance > 1:
            inst = self.instance(instance)
            env.update({
                "GATEWAY_PORT": str(inst.gateway_port),
                "RASA_PORT": str(inst.rasa_port),  # the gateway's Rasa
                "ACTION_PORT": str(inst.action_port),  # Rasa's action server (endpoints.yml) and its own port
                # Signatures are computed over the address the provider calls, the same for all.
                "PUBLIC_BASE_URL": self.cfg.public_base_url,
            })
        return env

    def instance_commands(self, inst: Instance) -> Dict[str, List[str]]:
        py = sys.executable
        # The NLU path (Rasa, actions) runs at a lower CPU priority than the gateway: on a busy
        # machine STOP, HELP and emergencies must not wait behind Rasa's CPU work either.
        nice = low_priority(self.cfg)
        return {
            inst.name("actions"): [*nice, py, "-m", "channels.action_server"],
            inst.name("rasa"): [
                *nice, rasa_bin(), "run", "--model", str(model_path(self.cfg.model_path.parent)),
                "--endpoints", str(ROOT / "endpoints.yml"), "--credentials", str(ROOT / "credentials.yml"),
                "--interface", "127.0.0.1", "--port", str(inst.rasa_port),
            ],
            inst.name("gateway"): [py, "-m", "channels.gateway.app"],
        }

    def commands(self) -> Dict[str, List[str]]:
        out: Dict[str, List[str]] = {}
        for inst in self.instances:
            out.update(self.instance_commands(inst))
        out.update(self._sms_standin())  # one stand-in, whatever the scale
        return out

    def _sms_standin(self) -> Dict[str, List[str]]:
        """In development SMS_API_BASE points at loopback: run the provider stand-in there, so
        outbound texts (late answers, reminders) go somewhere visible and nothing leaves the machine."""
        api = urlparse(self.cfg.sms_api_base)
        if api.hostname not in LOOPBACK:
            return {}
        return {"sms-standin": [sys.executable, "-m", "devtools.sms_provider_standin", "--port", str(api.port or 80)]}

    @property
    def processes(self) -> List[str]:
        return list(self.commands())

    def _instance_of(self, name: str) -> int:
        role, _, number = name.rpartition("-")
        return int(number) if role in ROLES and number.isdigit() else 1

    # -- bookkeeping ------------------------------------------------------------------------
    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.log"

    def running(self, name: str) -> Optional[int]:
        try:
            pid = int(self.pid_file(name).read_text().strip())
            if _reaped(pid):  # our own child that has exited
                return None
            os.kill(pid, 0)
            return pid
        except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
            return None

    def gateway_url(self, instance: int = 1) -> str:
        """Where gateway ``instance`` listens (on loopback); a load balancer would spread over these."""
        return f"http://127.0.0.1:{self.instance(instance).gateway_port}"

    def healthz(self, instance: int = 1) -> Optional[int]:
        try:
            with urllib.request.urlopen(f"{self.gateway_url(instance)}/healthz", timeout=3) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except (urllib.error.URLError, OSError):
            return None

    def log_tail(self, name: str, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_file(name).read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    # -- up / down --------------------------------------------------------------------------
    def up(self, timeout: float = 240.0, train: bool = True, say=print, actor: str = "system:stack") -> None:
        """Start every process and wait until healthy, training first if the model is out of date
        (``train``); ``actor`` is who the audit trail names for that training."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if train and not is_current(self.cfg.model_path.parent):
            # Through the admins' checks: data the PHI scrubber or Rasa's validator flags is refused.
            if train_command(ROOT, self.cfg.model_path.parent, actor=actor) != 0:
                raise StackError("training refused or failed (see above); nothing was started")
        if not model_path(self.cfg.model_path.parent).is_file():
            raise StackError("no trained model; run 'patientbot train'")
        # The safety classifier, fitted now if its inputs changed (seconds), so every gateway
        # worker starts on the cached file instead of each fitting its own.
        safety_model.load_or_train()
        self._stop(self._names_beyond(self.scale), say)  # scaling down: instances past the scale stop
        for name, cmd in self.commands().items():
            if self.running(name):
                say(f"{name} already running")
                continue
            with open(self.log_file(name), "ab") as log:
                proc = subprocess.Popen(cmd, cwd=ROOT, env=self.child_env(self._instance_of(name)), stdout=log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
            self.pid_file(name).write_text(f"{proc.pid}\n")
            say(f"started {name} (pid {proc.pid}, log {self.log_file(name)})")
        deadline = time.monotonic() + timeout
        waiting = [inst.number for inst in self.instances]
        while time.monotonic() < deadline:
            for name in self.processes:
                if not self.running(name):
                    tail = self.log_tail(name)
                    self.down(say=lambda *_: None)
                    raise StackError(f"{name} exited during start-up; end of its log:\n{tail}")
            waiting = [n for n in waiting if self.healthz(n) != 200]
            if not waiting:
                urls = ", ".join(self.gateway_url(inst.number) for inst in self.instances)
                say(f"patientbot is up: gateway{'s' if self.scale > 1 else ''} {urls} (healthz 200)")
                say(f"web chat: {self.cfg.public_base_url}/chat   staff console: {self.cfg.public_base_url}/staff/login")
                return
            time.sleep(0.5)
        self.down(say=lambda *_: None)
        late = ", ".join(self.instance(n).name("gateway") for n in waiting)
        raise StackError(f"the stack was not healthy within {timeout:.0f} s ({late}); see the logs in {self.run_dir}")

    def _names_beyond(self, scale: int) -> List[str]:
        """Process names of instances past ``scale`` that have a pid file (from an earlier, larger up)."""
        return [self.instance(n).name(role) for n in range(scale + 1, self.running_scale() + 1) for role in ROLES]

    def down(self, say=print) -> None:
        """Stop every process of the stack, every instance included, whatever scale it was started with."""
        names = self.processes + [n for n in self._names_beyond(self.scale) if n not in self.processes]
        self._stop(names, say)

    def _stop(self, names: List[str], say) -> None:
        for name in reversed(names):
            pid = self.running(name)
            if pid is None:
                self.pid_file(name).unlink(missing_ok=True)
                continue
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            for _ in range(100):
                if self.running(name) is None:
                    break
                time.sleep(0.1)
            else:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.pid_file(name).unlink(missing_ok=True)
            say(f"stopped {name}")


def rasa_urls(cfg: Settings) -> List[str]:
    """The Rasa server of every running instance, instance 1 first (for loading a new model
    into each: bot.nlu.models)."""
    try:
        stack = Stack.from_env(dict(cfg.extra)) if cfg.extra else None
    except Exception:  # noqa: BLE001 - settings without a run directory: the one configured Rasa
        stack = None
    if stack is None:
        return [cfg.rasa_url]
    return [f"http://127.0.0.1:{inst.rasa_port}" for inst in stack.instances]


def _reaped(pid: int) -> bool:
    """True if ``pid`` is a zombie child of ours that we have now reaped."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == pid
    except ChildProcessError:
        return False
