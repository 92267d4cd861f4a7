"""Near-duplicates between a held-out set and training data, by a fuzzy comparison.

An exact-match check misses "what's my balance" / "what is my balance"; a held-out figure
inflated by such pairs measures memory, not generalisation. Each held-out text is compared with
its most similar training texts (cosine similarity of character 3-5-gram TF-IDF vectors, to
find candidates fast), and a pair counts as a near-duplicate when the edit-based similarity of
the normalised texts (difflib's ratio) reaches ``threshold``.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import List, Sequence

from bot.core.language import fold_accents

THRESHOLD = 0.85  # difflib ratio: "what's my balance" / "what is my balance" is 0.91
CANDIDATES = 5  # most similar training texts checked by edit similarity, per held-out text


@dataclass(frozen=True)
class NearDuplicate:
    held_out: str
    training: str
    ratio: float


# Texting spellings that make two phrasings of one sentence look different to an edit distance.
_SPELLED_OUT = {"u": "you", "r": "are", "ur": "your", "im": "i am", "whats": "what is", "pls": "please",
                "plz": "please", "thx": "thanks", "dont": "do not", "cant": "can not", "wanna": "want to",
                "gonna": "going to", "q": "que", "xq": "porque", "pq": "porque"}


def normalise(text: str) -> str:
    """Lower case, accents folded, apostrophes dropped, punctuation as spaces, texting spellings
    spelled out ("r u" -> "are you"), single spaces."""
    text = fold_accents(text.replace("\u2019", "'")).lower().replace("'", "")
    return " ".join(_SPELLED_OUT.get(word, word) for word in re.sub(r"[^\w]+", " ", text).split())


def near_duplicates(held_out: Sequence[str], training: Sequence[str],
                    threshold: float = THRESHOLD) -> List[NearDuplicate]:
    """Every held-out text with a training text at least ``threshold`` similar (its closest one)."""
    if not held_out or not training:
        return []
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer

    held = [normalise(t) for t in held_out]
    train = [normalise(t) for t in training]
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5)).fit(train + held)
    similarity = (vectorizer.transform(held) @ vectorizer.transform(train).T).toarray()
    found = []
    for i, row in enumerate(similarity):
        best_ratio, best = 0.0, -1
        for j in np.argsort(row)[-CANDIDATES:]:
            ratio = difflib.SequenceMatcher(None, held[i], train[j]).ratio()
            if ratio > best_ratio:
                best_ratio, best = ratio, int(j)
        if best_ratio >= threshold:
            found.append(NearDuplicate(held_out[i], training[best], round(best_ratio, 3)))
    return found
