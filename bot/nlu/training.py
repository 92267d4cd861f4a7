"""Training the Rasa model reproducibly, and only when its inputs changed.

The model's fingerprint is a hash of config.yml, domain.yml, the training data files and the
Rasa version; ``train_if_needed`` skips training (and even starting Rasa) when the model on
disk was trained from exactly these inputs.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

from bot.config import ROOT

TRAINING_DATA = [ROOT / "data" / "nlu.yml", ROOT / "data" / "rules.yml", ROOT / "data" / "stories.yml"]
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
    from bot.nlu import train as nlu_train

    return nlu_train.fingerprint(ROOT)


def model_path(models_dir: Optional[Path] = None) -> Path:
    return (models_dir or ROOT / "models") / f"{MODEL_NAME}.tar.gz"


def is_current(models_dir: Optional[Path] = None) -> bool:
    from bot.nlu import train as nlu_train

    return nlu_train.is_current(ROOT, models_dir or ROOT / "models")


def validate_data() -> None:
    """``rasa data validate --fail-on-warnings``; raises CalledProcessError on any finding."""
    subprocess.run(
        [rasa_bin(), "data", "validate", "--fail-on-warnings", "--domain", str(ROOT / "domain.yml"),
         "--config", str(ROOT / "config.yml"), "--data", *map(str, TRAINING_DATA)],
        cwd=ROOT, env=rasa_env(), check=True,
    )


def train(models_dir: Optional[Path] = None, quiet: bool = False) -> float:
    """Train the model without the admins' data checks (tests' fixture); returns the seconds.

    Everything an operator runs (``patientbot train``, ``make up``) trains through
    bot.nlu.train.train_command, which refuses data the PHI scrubber or Rasa's validator flags.
    """
    from bot.nlu import train as nlu_train

    return nlu_train.train(ROOT, models_dir or ROOT / "models", quiet=quiet).seconds


def train_if_needed(models_dir: Optional[Path] = None, quiet: bool = False) -> Optional[float]:
    """Train when the inputs changed; returns the training time, or None if it was current."""
    if is_current(models_dir):
        return None
    return train(models_dir, quiet=quiet)
