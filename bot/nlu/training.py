"""Training the Rasa model: reproducibly, only when its inputs changed, and never on PHI.

The model's fingerprint is a hash of config.yml, domain.yml, the training data files and the
Rasa version; ``is_current`` says whether the model on disk was trained from exactly these
inputs, and ``train_if_needed`` skips training (and even starting Rasa) when it was.

What an operator runs (``patientbot train``, ``patientbot up``) goes through
``train_command``, with the admins' checks first: the PHI scrubber finds nothing in any
example (with the names of the office's patients from Redis), no example is under two
intents, then ``rasa data validate --fail-on-warnings``. Any finding refuses the training.
A trained model is recorded by its fingerprint and the SHA-256 of the model file; refusals
and trainings are audited in the name of the caller's actor. Every function takes the
project directory (default: this repository), so a copy can be trained (tests do).
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from bot.config import ROOT

MODEL_NAME = "patientbot"
DATA_FILES = ("nlu.yml", "rules.yml", "stories.yml")


class TrainingRefused(RuntimeError):
    """The data failed a check; ``problems`` say which (never the example text)."""

    def __init__(self, problems: List[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class TrainedModel:
    path: Path
    fingerprint: str
    sha256: str
    seconds: float


# -- Rasa and the files -----------------------------------------------------------------------
def rasa_env() -> dict:
    """Environment for every Rasa command: no telemetry, quiet TensorFlow."""
    env = dict(os.environ)
    env.setdefault("RASA_TELEMETRY_ENABLED", "false")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("PYTHONWARNINGS", "ignore")
    return env


def rasa_bin() -> str:
    """The ``rasa`` executable beside this Python."""
    return str(Path(sys.executable).with_name("rasa"))


def data_files(project: Path = ROOT) -> List[Path]:
    """The training data files of ``project``."""
    return [project / "data" / name for name in DATA_FILES]


def default_models_dir() -> Path:
    """The configured models directory (``MODEL_PATH``'s)."""
    from bot.config import settings

    return settings().model_path.parent


def model_path(models_dir: Optional[Path] = None) -> Path:
    """The model file Rasa loads, in ``models_dir`` (default: this repository's models/)."""
    return (models_dir or ROOT / "models") / f"{MODEL_NAME}.tar.gz"


def stamp_file(models_dir: Path) -> Path:
    """Where the fingerprint of the model in ``models_dir`` is written."""
    return models_dir / f"{MODEL_NAME}.fingerprint"


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint(project: Path = ROOT) -> str:
    """The hash of config.yml, domain.yml, the training data and the Rasa version."""
    import rasa

    digest = hashlib.sha256(f"rasa {rasa.__version__}\n".encode())
    for path in [project / "config.yml", project / "domain.yml", *data_files(project)]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def is_current(models_dir: Optional[Path] = None, project: Path = ROOT) -> bool:
    """Whether the model in ``models_dir`` was trained from ``project``'s inputs as they are."""
    models_dir = models_dir or ROOT / "models"
    stamp = stamp_file(models_dir)
    return (model_path(models_dir).is_file() and stamp.is_file()
            and stamp.read_text().strip() == fingerprint(project))


# -- checks and training ----------------------------------------------------------------------
def _validate_command(project: Path) -> List[str]:
    return [rasa_bin(), "data", "validate", "--fail-on-warnings", "--domain", str(project / "domain.yml"),
            "--config", str(project / "config.yml"), "--data", *map(str, data_files(project))]


def validate_data(project: Path = ROOT) -> None:
    """``rasa data validate --fail-on-warnings``; raises CalledProcessError on any finding."""
    subprocess.run(_validate_command(project), cwd=project, env=rasa_env(), check=True)


def check(project: Path, scrubber) -> None:
    """The scrubber and conflict checks, then ``rasa data validate --fail-on-warnings``."""
    from bot.nlu.data import check_training_data

    problems = check_training_data(project, scrubber)
    if problems:
        raise TrainingRefused(problems)
    done = subprocess.run(_validate_command(project), cwd=project, env=rasa_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        # Rasa's findings quote examples; the data passed the scrubber, so they may be shown.
        findings = [line.strip() for line in done.stdout.splitlines() if "UserWarning" in line or "ERROR" in line]
        raise TrainingRefused(["rasa data validate --fail-on-warnings failed", *findings[:20]])


def train(project: Path, models_dir: Path, quiet: bool = False) -> TrainedModel:
    """``rasa train`` for ``project`` into ``models_dir`` without the admins' checks (tests'
    fixtures); the fingerprint is written beside the model."""
    models_dir.mkdir(parents=True, exist_ok=True)
    fp = fingerprint(project)
    cmd = [rasa_bin(), "train", "--fixed-model-name", MODEL_NAME, "--out", str(models_dir),
           "--domain", str(project / "domain.yml"), "--config", str(project / "config.yml"),
           "--data", *map(str, data_files(project)), "--force"]
    started = time.monotonic()
    subprocess.run(cmd, cwd=project, env=rasa_env(), check=True,
                   stdout=subprocess.DEVNULL if quiet else None, stderr=subprocess.STDOUT if quiet else None)
    seconds = time.monotonic() - started
    stamp_file(models_dir).write_text(fp + "\n")
    path = model_path(models_dir)
    return TrainedModel(path, fp, file_sha256(path), seconds)


def train_if_needed(models_dir: Optional[Path] = None, quiet: bool = False) -> Optional[float]:
    """Train this repository's model when its inputs changed (no checks: tests' fixture);
    returns the training time, or None if it was current."""
    if is_current(models_dir):
        return None
    return train(ROOT, models_dir or ROOT / "models", quiet=quiet).seconds


# -- the operator's command -------------------------------------------------------------------
async def _with_services(fn):
    """``fn(services)`` with the services from the settings (bot.services), closed after."""
    from bot.services import build_services

    services = build_services()
    try:
        return await fn(services)
    finally:
        await services.close()


def _audit(actor: str, action: str, outcome: str, details: dict) -> None:
    asyncio.run(_with_services(lambda s: s.audit.record(actor, action, "", outcome, details)))


def _scrubber():
    """The PHI scrubber, knowing the names of the office's patients (from Redis)."""
    from bot.nlu.scrub import scrubber_for

    return asyncio.run(_with_services(lambda s: scrubber_for(s.redis, s.keys, s.cfg.redis_prefix,
                                                             s.cfg.default_region)))


def train_command(project: Path, models_dir: Path, *, actor: str, force: bool = False, quiet: bool = False) -> int:
    """What ``patientbot train`` does: check, then train if needed (or forced); audited as
    ``actor``. Returns the command's exit code."""
    print("checking the training data (PHI scrubber, conflicts, rasa data validate) ...", file=sys.stderr)
    try:
        check(project, _scrubber())
    except TrainingRefused as refused:
        _audit(actor, "model_training_refused", "refused", {"problems": len(refused.problems)})
        for problem in refused.problems:
            print(f"  {problem}", file=sys.stderr)
        print("patientbot: training refused: fix the data above (nothing was trained)", file=sys.stderr)
        return 1
    if not force and is_current(models_dir, project):
        print(f"model is up to date (fingerprint {fingerprint(project)[:12]})")
        return 0
    try:
        model = train(project, models_dir, quiet=quiet)
    except subprocess.CalledProcessError as exc:
        _audit(actor, "model_trained", "failed", {"returncode": exc.returncode})
        print(f"patientbot: rasa train failed (exit {exc.returncode})", file=sys.stderr)
        return 1
    _audit(actor, "model_trained", "ok", {"fingerprint": model.fingerprint, "model_sha256": model.sha256,
                                          "seconds": round(model.seconds, 1), "model": model.path.name})
    print(f"trained in {model.seconds:.0f} s -> {model.path} (fingerprint {model.fingerprint[:12]}, "
          f"sha256 {model.sha256[:12]})")
    return 0
