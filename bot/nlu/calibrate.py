"""``patientbot nlu calibrate``: the fallback and ambiguity thresholds, chosen on a validation split.

A fifth of every intent's training examples (chosen by a hash of the text, so the split is
stable as examples are added) is held out; the NLU is trained on the rest with config.yml;
every held-out example is parsed once; and the thresholds (bot.core.clarify.Thresholds) that put
most of them on topic, with at most 2% answered on another topic, are chosen from a grid
(bot.nlu.outcomes). They are written to ``data/nlu_thresholds.yml`` (the fallback action reads
it) and into config.yml's FallbackClassifier and NLU guards, with the trade-off curve that
``patientbot evaluate`` plots. The emergency intent is always trained on and never held out:
its threshold is the safety layers' business (bot.safety.screen), not this one's.
"""
from __future__ import annotations

import hashlib
import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import yaml

from bot.core import clarify
from bot.nlu.data import NluFile
from bot.nlu.outcomes import calibrate, tradeoff
from bot.nlu.training import rasa_bin, rasa_env

VALIDATION_SHARE = 5  # one example in this many is held out
NEVER_HELD_OUT = {"emergency"}
MAX_WRONG = 0.02


def held_out(text: str) -> bool:
    """Whether an example belongs to the validation split (stable: a hash of its text)."""
    return int(hashlib.sha256(text.casefold().encode()).hexdigest(), 16) % VALIDATION_SHARE == 0


def split(nlu: NluFile) -> Tuple[NluFile, List[Tuple[str, str, Tuple[str, ...]]]]:
    """(the training part as an NluFile to write elsewhere, the validation rows)."""
    validation = []
    for intent, examples in nlu.intents.items():
        if intent in NEVER_HELD_OUT:
            continue
        kept = [e for e in examples if not held_out(e)]
        validation += [(e, intent, ()) for e in examples if held_out(e)]
        nlu.intents[intent] = kept
    return nlu, validation


def train_nlu(project: Path, nlu_file: Path, out: Path) -> Path:
    """``rasa train nlu`` with the project's config on ``nlu_file``; the model's path."""
    subprocess.run([rasa_bin(), "train", "nlu", "--config", str(project / "config.yml"), "--nlu", str(nlu_file),
                    "--out", str(out), "--fixed-model-name", "calibration"],
                   cwd=project, env=rasa_env(), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    return out / "calibration.tar.gz"


def write_config_thresholds(config: Path, t: clarify.Thresholds) -> None:
    """Put the calibrated answer and ambiguity thresholds into config.yml, keeping its comments:
    the FallbackClassifier's ``threshold``/``ambiguity_threshold`` and the guards'
    ``fallback_threshold`` lines."""
    text = config.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^(\s+threshold: )[0-9.]+", rf"\g<1>{t.answer}", text)
    text = re.sub(r"(?m)^(\s+ambiguity_threshold: )[0-9.]+", rf"\g<1>{t.ambiguity}", text)
    text = re.sub(r"(?m)^(\s+fallback_threshold: )[0-9.]+", rf"\g<1>{t.answer}", text)
    config.write_text(text, encoding="utf-8")


def config_thresholds(config: Path) -> Dict[str, float]:
    """The thresholds config.yml's pipeline uses now (to check they are the calibrated ones)."""
    doc = yaml.safe_load(config.read_text(encoding="utf-8"))
    out: Dict[str, float] = {}
    for component in doc.get("pipeline", []):
        if component.get("name") == "FallbackClassifier":
            out["answer"], out["ambiguity"] = float(component["threshold"]), float(component["ambiguity_threshold"])
        elif "fallback_threshold" in component:
            out[f"{component['name'].rsplit('.', 1)[-1]}"] = float(component["fallback_threshold"])
    return out


def run(project: Path, progress=print) -> Dict:
    """Split, train, parse, choose; writes the thresholds file and config.yml. The summary."""
    from bot.nlu.evaluate import parse_labelled

    nlu, validation = split(NluFile(project / "data" / "nlu.yml"))
    with tempfile.TemporaryDirectory(prefix="pb-calibrate-") as tmp:
        nlu.path = Path(tmp) / "nlu.yml"
        nlu.write()
        progress(f"training the NLU on {sum(map(len, nlu.intents.values()))} examples, "
                 f"{len(validation)} held out for validation ...")
        started = time.monotonic()
        model = train_nlu(project, nlu.path, Path(tmp))
        progress(f"trained in {time.monotonic() - started:.0f} s; parsing the validation split ...")
        parsed = parse_labelled(model, validation, gateway=False)
    chosen, summary = calibrate(parsed, MAX_WRONG)
    curve = tradeoff(parsed, chosen)
    doc = {
        "thresholds": {"answer": chosen.answer, "ambiguity": chosen.ambiguity, "ask": chosen.ask,
                       "option": chosen.option},
        "validation": {"n": summary.n, **{k: round(summary.rate(k), 4) for k in summary.counts}},
        "tradeoff": [{k: round(v, 4) for k, v in point.items()} for point in curve],
    }
    header = ("# Written by `patientbot nlu calibrate` (bot/nlu/calibrate.py): thresholds chosen on a\n"
              "# validation split of data/nlu.yml, never by hand. config.yml carries answer and ambiguity.\n")
    (project / "data" / "nlu_thresholds.yml").write_text(header + yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    write_config_thresholds(project / "config.yml", chosen)
    clarify.thresholds.cache_clear()
    return doc


def main(argv: Optional[List[str]] = None) -> int:
    from bot.config import ROOT

    doc = run(ROOT)
    t, v = doc["thresholds"], doc["validation"]
    print(f"thresholds: answer {t['answer']}, ambiguity {t['ambiguity']}, ask {t['ask']}, option {t['option']}")
    print(f"validation ({v['n']} examples): on topic {v['on_topic']:.1%}, clarified {v['clarified']:.1%}, "
          f"fallback {v['fallback']:.1%}, wrong topic {v['wrong']:.1%}")
    print("written: data/nlu_thresholds.yml, config.yml")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
