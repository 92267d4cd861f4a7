"""Start and stop the whole stack in the background, on loopback: action server, Rasa, gateway
(and, in development, the SMS provider stand-in from devtools/).

``up`` trains first if the model is out of date, starts each process in its own process group
with its log in the run directory (``.run/`` by default, ``PATIENTBOT_RUN_DIR`` to change),
and returns once the gateway's ``/healthz`` answers 200, which it does only when Redis, Rasa
with its encrypted tracker store, and the action server are all up. If a process dies or the
stack is not healthy in time, it shows the end of that process's log, stops everything and
fails. ``down`` stops what ``up`` started.
"""
from __future__ import annotations

import os
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
from bot.training import model_path, rasa_bin, rasa_env, train_if_needed

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class StackError(RuntimeError):
    """The stack could not be started; the message says which part and why."""


@dataclass
class Stack:
    cfg: Settings
    run_dir: Path
    env: Dict[str, str]  # the settings environment every process of the stack gets

    @classmethod
    def from_env(cls, env: Optional[Dict[str, str]] = None) -> "Stack":
        env = merged_environ() if env is None else dict(env)
        run_dir = Path(env.get("PATIENTBOT_RUN_DIR", str(ROOT / ".run")))
        return cls(load_settings(env), run_dir, env)

    # -- process environment ----------------------------------------------------------------
    def child_env(self) -> Dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        env.update({k: v for k, v in rasa_env().items() if k not in self.env})
        env.update({
            "REDIS_PREFIX": self.cfg.redis_prefix,
            "ACTION_PORT": str(self.cfg.action_port),
            "SANIC_HOST": "127.0.0.1",
            "PYTHONUNBUFFERED": "1",
        })
        return env

    def commands(self) -> Dict[str, List[str]]:
        py = sys.executable
        return {
            "actions": [py, "-m", "channels.action_server"],
            "rasa": [
                rasa_bin(), "run", "--model", str(model_path(self.cfg.model_path.parent)),
                "--endpoints", str(ROOT / "endpoints.yml"), "--credentials", str(ROOT / "credentials.yml"),
                "--interface", "127.0.0.1", "--port", str(self.cfg.rasa_port),
            ],
            "gateway": [py, "-m", "channels.app"],
            **self._sms_standin(),
        }

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

    def healthz(self) -> Optional[int]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.cfg.gateway_port}/healthz", timeout=3) as resp:
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
    def up(self, timeout: float = 240.0, train: bool = True, say=print) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if train:
            took = train_if_needed(self.cfg.model_path.parent)
            if took is not None:
                say(f"trained the model in {took:.0f} s")
        if not model_path(self.cfg.model_path.parent).is_file():
            raise StackError("no trained model; run 'patientbot train'")
        env = self.child_env()
        for name, cmd in self.commands().items():
            if self.running(name):
                say(f"{name} already running")
                continue
            with open(self.log_file(name), "ab") as log:
                proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
            self.pid_file(name).write_text(f"{proc.pid}\n")
            say(f"started {name} (pid {proc.pid}, log {self.log_file(name)})")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name in self.processes:
                if not self.running(name):
                    tail = self.log_tail(name)
                    self.down(say=lambda *_: None)
                    raise StackError(f"{name} exited during start-up; end of its log:\n{tail}")
            if self.healthz() == 200:
                say(f"patientbot is up: gateway http://127.0.0.1:{self.cfg.gateway_port} (healthz 200)")
                return
            time.sleep(0.5)
        self.down(say=lambda *_: None)
        raise StackError(f"the stack was not healthy within {timeout:.0f} s; see the logs in {self.run_dir}")

    def down(self, say=print) -> None:
        for name in reversed(self.processes):
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


def _reaped(pid: int) -> bool:
    """True if ``pid`` is a zombie child of ours that we have now reaped."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == pid
    except ChildProcessError:
        return False
