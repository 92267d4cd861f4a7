"""Model rollout and rollback: a new model goes live only if it is not worse than the one live.

    patientbot evaluate [CANDIDATE] [--no-stories]     report in results/evaluation/ (bot.nlu.report)
    patientbot model status                            the deployed model and the deployment history
    patientbot model rollout CANDIDATE [--margin M]    evaluate both; load into the running Rasa; keep the old
    patientbot model rollback                          back to the model deployed before

Models live in the models directory (``MODEL_PATH``'s): ``patientbot.tar.gz`` is what Rasa
loads at start, ``releases/patientbot-<sha12>.tar.gz`` keeps every model that was deployed,
``deployments.json`` lists the deployments (model file, SHA-256, fingerprint, held-out macro
F1, when, by whom). The gate: the candidate's held-out macro F1 may be below the deployed
model's by at most ``ROLLOUT_MARGIN``. The running Rasa servers (their URLs come from the
caller: bot.ops.stack.rasa_urls) get the new model through the connector's ``/model`` route
(channels.rasa_bridge.model_endpoint) without a restart; if Rasa is not running the model is
used at its next start. Rollouts (also refused ones) and rollbacks are
audited.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional

from bot.nlu.training import file_sha256, model_path, stamp_file


class RolloutError(RuntimeError):
    """The rollout or rollback did not happen; the message says why."""


@dataclass
class GateResult:
    allowed: bool
    candidate_f1: float
    deployed_f1: Optional[float]
    margin: float

    def explain(self) -> str:
        if self.deployed_f1 is None:
            return f"no deployed model; candidate macro F1 {self.candidate_f1:.3f}"
        verdict = "within" if self.allowed else "beyond"
        return (f"candidate macro F1 {self.candidate_f1:.3f}, deployed {self.deployed_f1:.3f} "
                f"({self.candidate_f1 - self.deployed_f1:+.3f}; {verdict} the margin of {self.margin:.3f})")


def gate(candidate_f1: float, deployed_f1: Optional[float], margin: float) -> GateResult:
    """Whether a candidate may replace the deployed model."""
    allowed = deployed_f1 is None or candidate_f1 >= deployed_f1 - margin
    return GateResult(allowed, candidate_f1, deployed_f1, margin)


class ModelRegistry:
    def __init__(self, models_dir: Path) -> None:
        self.dir = models_dir
        self.releases = models_dir / "releases"
        self.history_file = models_dir / "deployments.json"

    @property
    def live(self) -> Path:
        return model_path(self.dir)

    def history(self) -> List[Dict]:
        if not self.history_file.is_file():
            return []
        return json.loads(self.history_file.read_text(encoding="utf-8"))

    def _write_history(self, entries: List[Dict]) -> None:
        self._atomic_write(self.history_file, json.dumps(entries, indent=2, sort_keys=True).encode() + b"\n")

    def _atomic_write(self, target: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=str(target.parent))
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, target)

    def keep(self, model: Path) -> Path:
        """A copy of ``model`` under releases/, named by its hash (idempotent)."""
        self.releases.mkdir(parents=True, exist_ok=True)
        release = self.releases / f"patientbot-{file_sha256(model)[:12]}.tar.gz"
        if not release.is_file():
            fd, tmp = tempfile.mkstemp(prefix=".release.", dir=str(self.releases))
            os.close(fd)
            shutil.copyfile(model, tmp)
            os.replace(tmp, release)
        return release

    def activate(self, release: Path, fingerprint: Optional[str]) -> None:
        """Make ``release`` the model Rasa loads at start (atomically), with its fingerprint."""
        fd, tmp = tempfile.mkstemp(prefix=".live.", dir=str(self.dir))
        os.close(fd)
        shutil.copyfile(release, tmp)
        os.replace(tmp, self.live)
        if fingerprint:
            self._atomic_write(stamp_file(self.dir), (fingerprint + "\n").encode())
        else:
            stamp_file(self.dir).unlink(missing_ok=True)  # unknown inputs: the next `train` retrains

    def record(self, action: str, release: Path, fingerprint: Optional[str], macro_f1: Optional[float],
               actor: str, cv_macro_f1: Optional[float] = None) -> Dict:
        entry = {"action": action, "model": release.name, "sha256": file_sha256(release),
                 "fingerprint": fingerprint, "macro_f1": macro_f1, "actor": actor,
                 "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        if cv_macro_f1 is not None:  # the cross-validated figure of its data, when it was evaluated so
            entry["cv_macro_f1"] = cv_macro_f1
        self._write_history(self.history() + [entry])
        return entry

    def entry_for(self, model: Path) -> Optional[Dict]:
        """The latest deployment entry of this model file (by its SHA-256), if it was deployed."""
        if not model.is_file():
            return None
        sha = file_sha256(model)
        return next((e for e in reversed(self.history()) if e["sha256"] == sha), None)

    def deployed(self) -> Optional[Dict]:
        history = self.history()
        return history[-1] if history else None

    def previous(self) -> Optional[Dict]:
        """The deployment before the live one (skipping entries of the same model)."""
        history = self.history()
        if not history:
            return None
        live_sha = history[-1]["sha256"]
        for entry in reversed(history[:-1]):
            if entry["sha256"] != live_sha and (self.releases / entry["model"]).is_file():
                return entry
        return None


def fingerprint_beside(model: Path) -> Optional[str]:
    """The fingerprint written next to a model by training (``<name>.fingerprint``), if any."""
    stamp = model.with_name(model.name[: -len(".tar.gz")] + ".fingerprint") if model.name.endswith(".tar.gz") else None
    return stamp.read_text().strip() if stamp is not None and stamp.is_file() else None


def _model_request(cfg, url: str, release: Optional[Path] = None) -> urllib.request.Request:
    from bot.conversation.rasa_client import SECRET_HEADER

    if release is None:
        return urllib.request.Request(f"{url}/webhooks/patientbot/model", headers={SECRET_HEADER: cfg.rasa_secret})
    return urllib.request.Request(
        f"{url}/webhooks/patientbot/model", method="PUT", data=json.dumps({"model_file": str(release)}).encode(),
        headers={SECRET_HEADER: cfg.rasa_secret, "Content-Type": "application/json"})


def push_to_rasa(cfg, release: Path, urls: List[str], timeout: float = 300.0) -> List[Dict]:
    """Load ``release`` into every running Rasa server of ``urls`` (connector ``/model``; every
    instance's: bot.ops.stack.rasa_urls), one after the other; returns what each loaded (empty
    if none is running). A server that refuses stops
    the rollout: the message says how many already switched (``patientbot model rollback``
    or a restart puts them back on the live model)."""
    loaded: List[Dict] = []
    for url in urls:
        try:
            with urllib.request.urlopen(_model_request(cfg, url, release), timeout=timeout) as resp:
                loaded.append(json.loads(resp.read().decode()))
        except urllib.error.HTTPError as exc:
            raise RolloutError(f"the Rasa server at {url} refused the model (HTTP {exc.code}): "
                               f"{exc.read().decode()[:200]}; {len(loaded)} server(s) had already switched") from None
        except (urllib.error.URLError, ConnectionError):
            continue  # not running: it loads the live model file when it starts
    return loaded


def running_model(cfg, urls: List[str]) -> Optional[Dict]:
    """What the first running Rasa server of ``urls`` has loaded (name, sha256), or None if none runs."""
    models = running_models(cfg, urls)
    return next(iter(models.values()), None)


def running_models(cfg, urls: List[str]) -> Dict[str, Dict]:
    """{Rasa URL: what it has loaded} for every running Rasa server of ``urls``."""
    out = {}
    for url in urls:
        try:
            with urllib.request.urlopen(_model_request(cfg, url), timeout=10) as resp:
                out[url] = json.loads(resp.read().decode())
        except (urllib.error.URLError, ConnectionError):
            continue
    return out
