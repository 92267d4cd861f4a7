"""``patientbot train`` with the admins' checks: nothing PHI-like is trained on, ever.

Before Rasa trains, the training data must pass two checks: the PHI scrubber finds nothing in
any example (with the names of the office's patients from Redis) and no example is under two
intents; then ``rasa data validate --fail-on-warnings``. Any finding refuses the training.
A trained model is recorded by its fingerprint (the hash of its inputs and the Rasa version,
as bot.nlu.training computes it) and the SHA-256 of the model file; refusals and trainings are
audited. Every function takes the project directory, so a copy can be trained (tests do).
"""
from __future__ import annotations

import asyncio
import hashlib
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List

from bot.nlu.training import MODEL_NAME, rasa_bin, rasa_env

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


def data_files(project: Path) -> List[Path]:
    return [project / "data" / name for name in DATA_FILES]


def fingerprint(project: Path) -> str:
    """The hash of config.yml, domain.yml, the training data and the Rasa version (the same
    algorithm as bot.nlu.training.fingerprint, for any project directory)."""
    import rasa

    digest = hashlib.sha256(f"rasa {rasa.__version__}\n".encode())
    for path in [project / "config.yml", project / "domain.yml", *data_files(project)]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_file(models_dir: Path) -> Path:
    return models_dir / f"{MODEL_NAME}.tar.gz"


def stamp_file(models_dir: Path) -> Path:
    return models_dir / f"{MODEL_NAME}.fingerprint"


def is_current(project: Path, models_dir: Path) -> bool:
    stamp = stamp_file(models_dir)
    return (model_file(models_dir).is_file() and stamp.is_file()
            and stamp.read_text().strip() == fingerprint(project))


def check(project: Path, scrubber) -> None:
    """The scrubber and conflict checks, then ``rasa data validate --fail-on-warnings``."""
    from bot.nlu.data import check_training_data

    problems = check_training_data(project, scrubber)
    if problems:
        raise TrainingRefused(problems)
    done = subprocess.run(
        [rasa_bin(), "data", "validate", "--fail-on-warnings", "--domain", str(project / "domain.yml"),
         "--config", str(project / "config.yml"), "--data", *map(str, data_files(project))],
        cwd=project, env=rasa_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    if done.returncode != 0:
        # Rasa's findings quote examples; the data passed the scrubber, so they may be shown.
        findings = [line.strip() for line in done.stdout.splitlines() if "UserWarning" in line or "ERROR" in line]
        raise TrainingRefused(["rasa data validate --fail-on-warnings failed", *findings[:20]])


def train(project: Path, models_dir: Path, quiet: bool = False) -> TrainedModel:
    """``rasa train`` for ``project`` into ``models_dir``; the fingerprint is written beside it."""
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
    path = model_file(models_dir)
    return TrainedModel(path, fp, file_sha256(path), seconds)


async def _audit(action: str, outcome: str, details: dict) -> None:
    from bot.storage.audit import AuditLog
    from bot.cli.commands import _cli_actor
    from bot.config import settings
    from bot.storage.crypto import keyring
    from bot.storage.redis_client import async_redis

    cfg = settings()
    client = async_redis(cfg)
    try:
        await AuditLog(client, keyring(cfg), cfg.redis_prefix).record(_cli_actor(), action, "", outcome, details)
    finally:
        await client.close()


async def _scrubber():
    from bot.config import settings
    from bot.storage.crypto import keyring
    from bot.nlu.scrub import scrubber_for
    from bot.storage.redis_client import async_redis

    cfg = settings()
    client = async_redis(cfg)
    try:
        return await scrubber_for(client, keyring(cfg), cfg.redis_prefix, cfg.default_region)
    finally:
        await client.close()


def train_command(project: Path, models_dir: Path, force: bool = False, quiet: bool = False) -> int:
    """What ``patientbot train`` does: check, then train if needed (or forced); audited."""
    import sys

    print("checking the training data (PHI scrubber, conflicts, rasa data validate) ...", file=sys.stderr)
    try:
        check(project, asyncio.run(_scrubber()))
    except TrainingRefused as refused:
        asyncio.run(_audit("model_training_refused", "refused", {"problems": len(refused.problems)}))
        for problem in refused.problems:
            print(f"  {problem}", file=sys.stderr)
        print("patientbot: training refused: fix the data above (nothing was trained)", file=sys.stderr)
        return 1
    if not force and is_current(project, models_dir):
        print(f"model is up to date (fingerprint {fingerprint(project)[:12]})")
        return 0
    try:
        model = train(project, models_dir, quiet=quiet)
    except subprocess.CalledProcessError as exc:
        asyncio.run(_audit("model_trained", "failed", {"returncode": exc.returncode}))
        print(f"patientbot: rasa train failed (exit {exc.returncode})", file=sys.stderr)
        return 1
    asyncio.run(_audit("model_trained", "ok", {"fingerprint": model.fingerprint, "model_sha256": model.sha256,
                                               "seconds": round(model.seconds, 1), "model": model.path.name}))
    print(f"trained in {model.seconds:.0f} s -> {model.path} (fingerprint {model.fingerprint[:12]}, "
          f"sha256 {model.sha256[:12]})")
    return 0


def default_models_dir() -> Path:
    from bot.config import settings

    return settings().model_path.parent
