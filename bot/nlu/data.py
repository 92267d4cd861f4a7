"""Training examples in ``data/nlu.yml``, written the tidy way.

Admins add examples (labelled inbox items or typed ones) through ``NluFile``: intents sorted by
name, examples sorted and without exact duplicates (case variants such as "Y" and "y" stay), and no example in two intents (an example
already under another intent is refused, naming that intent). Leading comment lines and
non-intent blocks (synonyms, regexes, lookups) are kept. Every function takes the project
directory, so tools and tests can work on a copy.
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import yaml

from bot.nlu.scrub import Scrubber

# Examples that teach the shapes of a date of birth: the gateway intercepts a real one before
# the NLU, so these are synthetic by construction and may contain dates and date-like digits.
SYNTHETIC_FORMAT_INTENTS = {"provide_dob": {"date", "id"}}
INTENT_NAME = re.compile(r"^[a-z][a-z0-9_]{1,63}$")


class DataError(ValueError):
    """The training data cannot take this change; the message says why (never patient text)."""


def normalise(text: str) -> str:
    """One line, single spaces; a placeholder never touches a bracket or parenthesis (Rasa
    would read ``[phone](x)`` as an entity annotation)."""
    text = " ".join(text.split())
    return re.sub(r"\](?=[(\[{])", "] ", text)


def _key(text: str) -> str:
    return " ".join(text.casefold().split())


def known_intents(project: Path) -> List[str]:
    """Intents declared in the project's domain.yml."""
    doc = yaml.safe_load((project / "domain.yml").read_text(encoding="utf-8")) or {}
    out = []
    for entry in doc.get("intents", []):
        out.append(next(iter(entry)) if isinstance(entry, dict) else str(entry))
    return out


def _examples(block: Dict) -> List[str]:
    return [line.strip()[2:].strip() for line in str(block.get("examples", "")).splitlines()
            if line.strip().startswith("- ")]


class NluFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        raw = path.read_text(encoding="utf-8")
        doc = yaml.safe_load(raw) or {}
        self.version = str(doc.get("version", "3.1"))
        self.header = [line for line in raw.splitlines()[:10] if line.startswith("#")]
        self.intents: Dict[str, List[str]] = {}
        self.other: List[Dict] = []
        for block in doc.get("nlu", []):
            if "intent" in block:
                self.intents.setdefault(str(block["intent"]), []).extend(_examples(block))
            else:
                self.other.append(block)

    def intent_of(self, text: str) -> Optional[str]:
        """The intent an example (compared case- and space-insensitively) is under, if any."""
        wanted = _key(text)
        for intent, examples in self.intents.items():
            if any(_key(e) == wanted for e in examples):
                return intent
        return None

    def conflicts(self) -> List[Tuple[str, List[str]]]:
        """Examples that are under more than one intent: (example, intents)."""
        seen: Dict[str, Set[str]] = {}
        for intent, examples in self.intents.items():
            for e in examples:
                seen.setdefault(_key(e), set()).add(intent)
        return sorted((e, sorted(i)) for e, i in seen.items() if len(i) > 1)

    def add(self, intent: str, text: str) -> bool:
        """Add an example; False if it is already there, DataError if under another intent
        (compared case- and space-insensitively)."""
        text = normalise(text)
        if not text:
            raise DataError("the example is empty")
        if not INTENT_NAME.match(intent):
            raise DataError(f"{intent!r} is not an intent name (lower case, digits, underscores)")
        current = self.intent_of(text)
        if current == intent and text in self.intents[intent]:
            return False
        if current not in (None, intent):
            raise DataError(f"that example is already an example of {current}; an example belongs to one intent")
        self.intents.setdefault(intent, []).append(text)
        return True

    def render(self) -> str:
        lines = [f'version: "{self.version}"', ""]
        if self.header:
            lines += self.header + [""]
        lines.append("nlu:")
        for intent in sorted(self.intents):
            # Exact duplicates go; case variants ("Y" and "y") stay: the featurizers see case.
            unique = sorted(set(self.intents[intent]), key=lambda e: (_key(e), e))
            lines += [f"  - intent: {intent}", "    examples: |"]
            lines += [f"      - {e}" for e in unique]
        for block in self.other:
            kind = next((k for k in ("lookup", "regex", "synonym") if k in block), None)
            if kind is None or set(block) != {kind, "examples"}:
                dumped = yaml.safe_dump([block], sort_keys=False, allow_unicode=True, default_flow_style=False)
                lines += [f"  {line}" for line in dumped.splitlines()]
                continue
            # Lookup tables, regexes and synonyms as Rasa's docs write them (a block of "- " lines).
            lines += [f"  - {kind}: {block[kind]}", "    examples: |"]
            lines += [f"      - {e}" for e in _examples(block)]
        return "\n".join(lines) + "\n"

    def write(self) -> None:
        """Write atomically (a crash never leaves half a file)."""
        fd, tmp = tempfile.mkstemp(prefix=".nlu-", suffix=".yml", dir=str(self.path.parent))
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(self.render())
        os.replace(tmp, self.path)


def add_example(project: Path, intent: str, text: str, scrubber: Scrubber,
                holdout: Optional[Path] = None) -> bool:
    """Add a scrubbed example of an existing intent to ``project``/data/nlu.yml, tidily.

    Refuses an unknown intent, an example in which the scrubber still finds something, an
    example under another intent and one from the held-out evaluation set.
    """
    if intent not in known_intents(project):
        raise DataError(f"{intent} is not an intent of domain.yml; propose it instead (--propose)")
    if intent == "nlu_fallback":
        raise DataError("nlu_fallback is not an intent to train")
    text = normalise(text)
    found = scrubber.findings(text) - SYNTHETIC_FORMAT_INTENTS.get(intent, set())
    if found:
        raise DataError(f"the example still contains {', '.join(sorted(found))}; it was not added")
    if holdout is not None and holdout.is_file():
        held = NluFile(holdout)
        if held.intent_of(text) is not None:
            raise DataError("that example is in the held-out evaluation set; training on it would hide errors")
    nlu = NluFile(project / "data" / "nlu.yml")
    added = nlu.add(intent, text)
    if added:
        nlu.write()
    return added


def check_training_data(project: Path, scrubber: Scrubber) -> List[str]:
    """Problems that must stop training: scrubber findings and examples in two intents.

    Problems name the intent and the kinds found, never the example text.
    """
    problems = []
    nlu = NluFile(project / "data" / "nlu.yml")
    for intent, examples in sorted(nlu.intents.items()):
        allowed = SYNTHETIC_FORMAT_INTENTS.get(intent, set())
        for n, example in enumerate(examples, 1):
            found = scrubber.findings(example) - allowed
            if found:
                problems.append(f"data/nlu.yml: intent {intent}, example {n}: contains {', '.join(sorted(found))}")
    for _, intents in nlu.conflicts():
        problems.append(f"data/nlu.yml: an example is under more than one intent ({', '.join(intents)})")
    return problems
