"""Training the Rasa model reproducibly, and only when its inputs changed.

The model's fingerprint is a hash of config.yml, domain.yml, the training data files and the
Rasa version; ``train_if_needed`` skips training (and even starting Rasa) when the model on
disk was trained from exactly these inputs.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional

from bot.config import ROOT

TRAINING_DATA = [ROOT / "data" / "nlu.yml", ROOT / "data" / "rules.yml", ROOT / "data" / "stories.yml"]
INPUTS = [ROOT / "config.yml", ROOT / "domain.yml", *TRAINING_DATA]
MODEL_NAME = "patientbot"


def rasa_env() -> dict:
    """Environment for every Rasa command: no telemetry, quiet TensorFlow."""
    env = dict(os.environ)
    env.setdefault("RASA_TELEMETRY_ENABLED", "false")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("PYTHONWARNINGS", "ignore")
    return env


def rasa_bin() -> str:
    return str(Path(sys.executable).with_name("rasa"))


def fingerprint() -> str:
    import rasa

    digest = hashlib.sha256(f"rasa {rasa.__version__}\n".encode())
    for path in INPUTS:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def model_path(models_dir: Optional[Path] = None) -> Path:
    return (models_dir or ROOT / "models") / f"{MODEL_NAME}.tar.gz"


def _stamp(models_dir: Optional[Path] = None) -> Path:
    return (models_dir or ROOT / "models") / f"{MODEL_NAME}.fingerprint"


def is_current(models_dir: Optional[Path] = None) -> bool:
    stamp = _stamp(models_dir)
    return model_path(models_dir).is_file() and stamp.is_file() and stamp.read_text().strip() == fingerprint()


def validate_data() -> None:
    """``rasa data validate --fail-on-warnings``; raises CalledProcessError on any finding."""
    subprocess.run(
        [rasa_bin(), "data", "validate", "--fail-on-warnings", "--domain", str(ROOT / "domain.yml"),
         "--config", str(ROOT / "config.yml"), "--data", *map(str, TRAINING_DATA)],
        cwd=ROOT, env=rasa_env(), check=True,
    )


def train(models_dir: Optional[Path] = None, quiet: bool = False) -> float:
    """Train the model; returns the seconds it took."""
    models_dir = models_dir or ROOT / "models"
    models_dir.mkdir(parents=True, exist_ok=True)
    fp = fingerprint()
    cmd: List[str] = [
        rasa_bin(), "train", "--fixed-model-name", MODEL_NAME, "--out", str(models_dir),
        "--domain", str(ROOT / "domain.yml"), "--config", str(ROOT / "config.yml"),
        "--data", *map(str, TRAINING_DATA), "--force",
    ]
    started = time.monotonic()
    subprocess.run(cmd, cwd=ROOT, env=rasa_env(), check=True,
                   stdout=subprocess.DEVNULL if quiet else None, stderr=subprocess.STDOUT if quiet else None)
    _stamp(models_dir).write_text(fp + "\n")
    return time.monotonic() - started


def train_if_needed(models_dir: Optional[Path] = None, quiet: bool = False) -> Optional[float]:
    """Train when the inputs changed; returns the training time, or None if it was current."""
    if is_current(models_dir):
        return None
    return train(models_dir, quiet=quiet)
