"""The help lines an office's emergency redirects name: US defaults, set per office in office.yml."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional


@dataclass(frozen=True)
class EmergencyNumbers:
    """Help lines named in redirects. US defaults; an office abroad sets its own in office.yml."""

    emergency: str = "911"
    crisis: str = "988"  # call or text
    crisis_name: str = "Suicide & Crisis Lifeline"
    crisis_spanish: str = "en español: llame al 988 y marque 2, o envie AYUDA al 988"
    poison: str = "1-800-222-1222"
    poison_name: str = "Poison Help"

    @classmethod
    def from_mapping(cls, doc: Optional[Mapping[str, str]]) -> "EmergencyNumbers":
        """The numbers from office.yml's ``emergency_numbers`` (None: US); unknown keys raise ValueError."""
        doc = dict(doc or {})
        unknown = set(doc) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown emergency number setting(s): {', '.join(sorted(unknown))}")
        return cls(**{k: str(v) for k, v in doc.items()})


US = EmergencyNumbers()
