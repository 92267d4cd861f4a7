"""The statistical risk classifier: the safety gate's second layer, after the rules.

The rules (bot.safety.rules) are explainable but only catch the phrasings someone foresaw. This
classifier reads every message the rules did not flag and says whether it looks like an
emergency, and of which kind: character n-grams (robust to typos, texting spelling and missing
accents) and word n-grams, weighted by TF-IDF, into a multinomial logistic regression
(scikit-learn). Offline and small: trained from the corpus in ``data/safety/`` (English and
Spanish, synthetic, written for this purpose) plus the NLU's training examples as ordinary
messages, in a few seconds, with a fixed seed; a message costs well under a millisecond.

Its verdict is OR-ed with the rules': an emergency when the probability of "none" is at most
``1 - THRESHOLD``. THRESHOLD was chosen for recall on out-of-fold predictions of the corpus and
on the development set (``python -m bot.nlu.safety_eval --choose-threshold``), never on a blind set.

The fitted model is cached in ``models/`` under the fingerprint of its inputs (corpus, NLU data,
settings, library versions) and retrained when any of them changes; the cache is generated,
never committed, and only ever read back from the project's own models directory.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import yaml

from bot.config import ROOT
from bot.core.language import fold_accents
from bot.safety.rules import GROUPS

logger = logging.getLogger(__name__)

CORPUS_DIR = ROOT / "data" / "safety"
NLU_DATA = ROOT / "data" / "nlu.yml"
MODEL_FILE = ROOT / "models" / "safety_classifier.npz"
NONE = "none"
LABELS = (NONE,) + GROUPS
# The classifier flags a message when P(emergency) = 1 - P(none) >= THRESHOLD (README, Safety).
THRESHOLD = 0.50
SEED = 7
# The group the classifier names -> the rules' category whose redirect it gets.
CATEGORY_OF_GROUP = {"suicide": "suicide", "poisoning": "poisoning", "violence": "violence",
                     "hazard": "hazard", "medical": "general"}
SETTINGS = {"char": (2, 5), "word": (1, 2), "C": 8.0, "min_df": 1, "threshold": THRESHOLD, "seed": SEED}


@dataclass(frozen=True)
class Example:
    text: str
    label: str  # one of LABELS
    lang: str = "en"


def prepare(text: str) -> str:
    """Lower case, accents folded, stretched letters squeezed, digits as 0: what both n-gram
    views see. Shared by training and prediction so they can never differ."""
    text = fold_accents(text.replace("\u2019", "'")).lower()
    text = re.sub(r"(.)\1{2,}", r"\1\1", text)
    return re.sub(r"\d", "0", text)


def read_labelled(paths: Iterable[Path], labels: Iterable[str]) -> Iterator[dict]:
    """The rows of JSON-lines files of ``{"text", "label", "lang"?}``; an unknown label is an error."""
    known = set(labels)
    for path in paths:
        for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                row = json.loads(line)
                if row["label"] not in known:
                    raise ValueError(f"{path}:{number}: unknown label {row['label']!r}")
                yield row


def load_examples(paths: Iterable[Path]) -> List[Example]:
    """Examples from the corpus files (see data/safety/README.md)."""
    return [Example(row["text"], row["label"], row.get("lang", "en")) for row in read_labelled(paths, LABELS)]


def corpus_files() -> List[Path]:
    return sorted(CORPUS_DIR.glob("*.jsonl"))


def nlu_examples(path: Path = NLU_DATA) -> List[Example]:
    """The NLU's training examples, as ordinary messages (none of its intents is an emergency)."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    out = []
    for block in doc.get("nlu", []):
        if block.get("intent") in (None, "emergency"):
            continue
        for line in str(block.get("examples", "")).splitlines():
            text = line.strip().lstrip("-").strip()
            if text:
                out.append(Example(re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", text), NONE))
    return out


def training_examples() -> List[Example]:
    return load_examples(corpus_files()) + nlu_examples()


def fingerprint() -> str:
    import sklearn

    digest = hashlib.sha256(f"sklearn {sklearn.__version__}\n{json.dumps(SETTINGS, sort_keys=True)}\n".encode())
    for path in corpus_files() + [NLU_DATA, Path(__file__)]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def build_pipeline():
    """The untrained model: TF-IDF over char 2-5 and word 1-2 n-grams, logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, Pipeline

    features = FeatureUnion([
        ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=SETTINGS["char"], min_df=SETTINGS["min_df"],
                                 sublinear_tf=True, preprocessor=prepare)),
        ("word", TfidfVectorizer(analyzer="word", ngram_range=SETTINGS["word"], min_df=SETTINGS["min_df"],
                                 sublinear_tf=True, preprocessor=prepare, token_pattern=_TOKEN.pattern)),
    ])
    classifier = LogisticRegression(C=SETTINGS["C"], max_iter=3000, class_weight="balanced",
                                    random_state=SETTINGS["seed"])
    return Pipeline([("features", features), ("classifier", classifier)])


def fit(examples: Sequence[Example]):
    pipeline = build_pipeline()
    pipeline.fit([e.text for e in examples], [e.label for e in examples])
    return pipeline


@dataclass(frozen=True)
class Risk:
    group: str  # the most likely kind of emergency (one of GROUPS)
    probability: float  # P(emergency) = 1 - P(none)

    @property
    def category(self) -> str:
        return CATEGORY_OF_GROUP[self.group]


class RiskClassifier:
    """A fitted model reduced to its numbers: for each n-gram view its vocabulary and IDF
    weights, then the regression's coefficients. Prediction does with dictionaries and one small
    matrix product what scikit-learn's pipeline does with validation and sparse matrices, about
    ten times faster for one message (the gate's budget is 2 ms at p99 for rules and classifier
    together); the test suite checks it gives scikit-learn's probabilities.
    Saved as a NumPy archive of arrays and JSON: nothing executable is ever read back."""

    def __init__(self, views: Sequence[Tuple[str, Tuple[int, int], Dict[str, int], "np.ndarray"]],
                 classes: Sequence[str], coef, intercept, threshold: float = THRESHOLD) -> None:
        import numpy as np

        self.views = list(views)  # (analyzer kind, n-gram range, vocabulary, idf), in feature order
        self.classes = list(classes)
        self.coef = np.asarray(coef, dtype=np.float64)
        self.intercept = np.asarray(intercept, dtype=np.float64)
        self.threshold = threshold
        self._none = self.classes.index(NONE)
        self._offsets = []
        offset = 0
        for _, _, vocabulary, _ in self.views:
            self._offsets.append(offset)
            offset += len(vocabulary)

    @classmethod
    def from_pipeline(cls, pipeline) -> "RiskClassifier":
        union, regression = pipeline.named_steps["features"], pipeline.named_steps["classifier"]
        views = []
        for name, vectorizer in union.transformer_list:
            vocabulary = {term: int(index) for term, index in vectorizer.vocabulary_.items()}
            views.append((vectorizer.analyzer, tuple(vectorizer.ngram_range), vocabulary, vectorizer.idf_))
        return cls(views, list(regression.classes_), regression.coef_, regression.intercept_)

    @staticmethod
    def _grams(kind: str, span: Tuple[int, int], text: str) -> List[str]:
        low, high = span
        if kind == "char_wb":  # scikit-learn's char_wb: n-grams inside each space-padded word
            grams = []
            for word in text.split():
                padded = f" {word} "
                for n in range(low, high + 1):
                    if n > len(padded):
                        break
                    grams.extend(padded[i:i + n] for i in range(len(padded) - n + 1))
            return grams
        tokens = _TOKEN.findall(text)
        return [" ".join(tokens[i:i + n]) for n in range(low, high + 1) for i in range(len(tokens) - n + 1)]

    def _scores(self, text: str):
        import numpy as np

        prepared = prepare(text)
        columns, values = [], []
        for (kind, span, vocabulary, idf), offset in zip(self.views, self._offsets):
            counts: Dict[int, int] = {}
            for gram in self._grams(kind, span, prepared):
                index = vocabulary.get(gram)
                if index is not None:
                    counts[index] = counts.get(index, 0) + 1
            if not counts:
                continue
            index = np.fromiter(counts, dtype=np.int64, count=len(counts))
            weight = (1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))) * idf[index]
            columns.append(index + offset)
            values.append(weight / np.sqrt(weight @ weight))  # each view is L2-normalised on its own
        scores = self.intercept.copy()
        if columns:
            scores += self.coef[:, np.concatenate(columns)] @ np.concatenate(values)
        scores = np.exp(scores - scores.max())
        return scores / scores.sum()

    def probabilities(self, text: str) -> Dict[str, float]:
        """Every label's probability for ``text``."""
        return dict(zip(self.classes, map(float, self._scores(text))))

    def risk(self, text: str) -> Risk:
        """The probability that ``text`` is an emergency and its most likely kind."""
        probabilities = self._scores(text)
        best = max((i for i in range(len(self.classes)) if i != self._none), key=lambda i: probabilities[i])
        return Risk(self.classes[best], float(1.0 - probabilities[self._none]))

    def assess(self, text: str) -> Optional[Risk]:
        """The risk if it reaches the threshold, else None."""
        found = self.risk(text)
        return found if found.probability >= self.threshold else None

    # -- the cache -------------------------------------------------------------------------
    def save(self, path: Path, print_: str) -> None:
        import numpy as np

        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"fingerprint": print_, "classes": self.classes,
                "views": [{"kind": kind, "span": list(span), "vocabulary": vocabulary}
                          for kind, span, vocabulary, _ in self.views]}
        arrays = {f"idf{i}": idf for i, (_, _, _, idf) in enumerate(self.views)}
        # Written aside and renamed: a gateway starting meanwhile reads the old file or the new one.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp.npz")
        os.close(fd)
        with open(tmp, "wb") as out:
            np.savez_compressed(out, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
                                coef=self.coef, intercept=self.intercept, **arrays)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, wanted: str) -> Optional["RiskClassifier"]:
        """The cached classifier if it was fitted on the inputs ``wanted`` names, else None."""
        import numpy as np

        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(archive["meta"].tobytes().decode())
            if meta.get("fingerprint") != wanted:
                return None
            views = [(v["kind"], tuple(v["span"]), v["vocabulary"], archive[f"idf{i}"])
                     for i, v in enumerate(meta["views"])]
            return cls(views, meta["classes"], archive["coef"], archive["intercept"])


_TOKEN = re.compile(r"(?u)\b\w+\b")


def load_or_train(path: Path = MODEL_FILE) -> RiskClassifier:
    """The classifier for the current inputs: read from ``path`` if it was fitted on them,
    otherwise fitted now (seconds) and saved there."""
    wanted = fingerprint()
    if path.exists():
        try:
            cached = RiskClassifier.load(path, wanted)
            if cached is not None:
                return cached
        except Exception as exc:  # noqa: BLE001 - a damaged cache is refitted, never trusted
            logger.warning("safety classifier cache unreadable (%s); refitting", exc.__class__.__name__)
    fitted = RiskClassifier.from_pipeline(fit(training_examples()))
    try:
        fitted.save(path, wanted)
    except OSError as exc:  # a read-only checkout still gets a working classifier
        logger.warning("could not cache the safety classifier: %s", exc.__class__.__name__)
    return fitted


@lru_cache(maxsize=1)
def classifier() -> RiskClassifier:
    """The process's classifier, loaded (or fitted) once."""
    return load_or_train()
