"""FHIR R4 Bundle parsing and validation (Patient, Practitioner, Appointment).

Validation is complete before anything is written: the importer either stores the whole
bundle or nothing, and a bad bundle is rejected with a message naming the resource
(``entry[3] Appointment/appt-2: start is not a FHIR dateTime``). Error messages name fields,
never their values, so no PHI reaches a terminal or log through them.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from bot.core.phone import InvalidPhoneNumber, to_e164

APPOINTMENT_STATUSES = {
    "proposed", "pending", "booked", "arrived", "fulfilled", "cancelled",
    "noshow", "entered-in-error", "checked-in", "waitlist",
}
SUPPORTED = ("Patient", "Practitioner", "Appointment")


class BundleError(ValueError):
    """The bundle is invalid; the message names the offending resource and field."""


@dataclass
class Patient:
    fhir_id: str
    given: str
    family: str
    birth_date: date
    phones: List[str]  # E.164
    identifiers: List[Tuple[str, str]] = field(default_factory=list)  # (system, value)
    language: Optional[str] = None  # preferred language, base BCP 47 code ("es"), from Patient.communication

    def to_dict(self) -> Dict[str, Any]:
        return {
            "fhir_id": self.fhir_id, "given": self.given, "family": self.family,
            "birth_date": self.birth_date.isoformat(), "phones": self.phones,
            "identifiers": [list(i) for i in self.identifiers], "language": self.language,
        }


@dataclass
class Practitioner:
    fhir_id: str
    name: str

    def to_dict(self) -> Dict[str, Any]:
        return {"fhir_id": self.fhir_id, "name": self.name}


@dataclass
class Appointment:
    fhir_id: str
    status: str
    start: datetime
    end: Optional[datetime]
    patient_id: str
    practitioner_id: Optional[str]
    service_type: Optional[str] = None
    reason: Optional[str] = None
    description: Optional[str] = None
    instructions: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        return {
            "fhir_id": self.fhir_id, "status": self.status, "start": self.start.isoformat(),
            "end": self.end.isoformat() if self.end else None, "patient_id": self.patient_id,
            "practitioner_id": self.practitioner_id, "service_type": self.service_type,
            "reason": self.reason, "description": self.description, "instructions": self.instructions,
        }


@dataclass
class ParsedBundle:
    patients: Dict[str, Patient]
    practitioners: Dict[str, Practitioner]
    appointments: Dict[str, Appointment]


def _concept_text(value: Any) -> Optional[str]:
    """Human text of a CodeableConcept list/object (text, else first coding display)."""
    concepts = value if isinstance(value, list) else [value] if value else []
    for concept in concepts:
        if not isinstance(concept, Mapping):
            continue
        if concept.get("text"):
            return str(concept["text"])
        for coding in concept.get("coding") or []:
            if isinstance(coding, Mapping) and coding.get("display"):
                return str(coding["display"])
    return None


def _human_name(names: Any) -> Tuple[str, str]:
    for name in names or []:
        if not isinstance(name, Mapping):
            continue
        given = " ".join(str(g) for g in name.get("given") or [])
        family = str(name.get("family") or "")
        if given or family:
            return given, family
        if name.get("text"):
            return str(name["text"]), ""
    return "", ""


def _parse_datetime(raw: Any) -> Optional[datetime]:
    if not isinstance(raw, str):
        return None
    try:
        # Python 3.10 accepts only 3- or 6-digit fractions; FHIR allows any number of digits.
        raw = re.sub(r"\.(\d+)", lambda m: "." + (m.group(1) + "000000")[:6], raw.replace("Z", "+00:00"), count=1)
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None  # FHIR instants carry a zone


def _ref_id(reference: Any, resource_type: str) -> Optional[str]:
    if isinstance(reference, Mapping):
        reference = reference.get("reference")
    if isinstance(reference, str) and reference.startswith(resource_type + "/"):
        return reference.split("/", 1)[1]
    return None


def _parse_patient(res: Mapping, where: str, region: str) -> Patient:
    given, family = _human_name(res.get("name"))
    if not (given or family):
        raise BundleError(f"{where}: name is missing")
    try:
        birth = date.fromisoformat(str(res.get("birthDate", "")))
    except ValueError:
        raise BundleError(f"{where}: birthDate is missing or not YYYY-MM-DD") from None
    phones = []
    for telecom in res.get("telecom") or []:
        if isinstance(telecom, Mapping) and telecom.get("system") in ("phone", "sms") and telecom.get("value"):
            try:
                phones.append(to_e164(str(telecom["value"]), region))
            except InvalidPhoneNumber:
                raise BundleError(f"{where}: telecom phone is not a valid phone number") from None
    identifiers = [
        (str(i.get("system", "")), str(i["value"]))
        for i in res.get("identifier") or []
        if isinstance(i, Mapping) and i.get("value")
    ]
    return Patient(res["id"], given, family, birth, sorted(set(phones)), identifiers,
                   _preferred_language(res.get("communication")))


def _preferred_language(communication: Any) -> Optional[str]:
    """The base language code ("es" of "es-MX") of ``Patient.communication``: the entry marked
    ``preferred``, else the first; None when there is none. Codes are BCP 47 (FHIR's binding);
    a language given only as text is not guessed."""
    entries = [c for c in communication or [] if isinstance(c, Mapping) and isinstance(c.get("language"), Mapping)]
    entries.sort(key=lambda c: c.get("preferred") is not True)  # stable: the preferred one first
    for entry in entries:
        for coding in entry["language"].get("coding") or []:
            code = coding.get("code") if isinstance(coding, Mapping) else None
            if isinstance(code, str) and re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*", code.strip()):
                return code.strip().split("-")[0].lower()
    return None


def _parse_practitioner(res: Mapping, where: str) -> Practitioner:
    given, family = _human_name(res.get("name"))
    if not (given or family):
        raise BundleError(f"{where}: name is missing")
    prefix = ""
    for name in res.get("name") or []:
        if isinstance(name, Mapping) and name.get("prefix"):
            prefix = str(name["prefix"][0]) + " "
            break
    return Practitioner(res["id"], f"{prefix}{given} {family}".strip())


def _parse_appointment(res: Mapping, where: str) -> Appointment:
    status = res.get("status")
    if status not in APPOINTMENT_STATUSES:
        raise BundleError(f"{where}: status is missing or not an R4 appointment status")
    start = _parse_datetime(res.get("start"))
    if start is None:
        raise BundleError(f"{where}: start is missing or not a FHIR instant with a time zone")
    end = _parse_datetime(res["end"]) if res.get("end") is not None else None
    if res.get("end") is not None and end is None:
        raise BundleError(f"{where}: end is not a FHIR instant with a time zone")
    if end is not None and end < start:
        raise BundleError(f"{where}: end is before start")
    patient_id = practitioner_id = None
    for participant in res.get("participant") or []:
        actor = participant.get("actor") if isinstance(participant, Mapping) else None
        patient_id = patient_id or _ref_id(actor, "Patient")
        practitioner_id = practitioner_id or _ref_id(actor, "Practitioner")
    if patient_id is None:
        raise BundleError(f"{where}: participant has no Patient actor")
    return Appointment(
        fhir_id=res["id"], status=status, start=start, end=end, patient_id=patient_id,
        practitioner_id=practitioner_id, service_type=_concept_text(res.get("serviceType")),
        reason=_concept_text(res.get("reasonCode")), description=res.get("description"),
        instructions=res.get("patientInstruction"),
    )


def parse_bundle(doc: Any, default_region: str = "US") -> ParsedBundle:
    """Validate a FHIR R4 Bundle document and return its resources; raise :class:`BundleError`."""
    if not isinstance(doc, Mapping) or doc.get("resourceType") != "Bundle":
        raise BundleError("not a FHIR Bundle (resourceType must be 'Bundle')")
    entries = doc.get("entry")
    if not isinstance(entries, list) or not entries:
        raise BundleError("Bundle has no entry list")
    parsed = ParsedBundle({}, {}, {})
    for n, entry in enumerate(entries):
        res = entry.get("resource") if isinstance(entry, Mapping) else None
        if not isinstance(res, Mapping):
            raise BundleError(f"entry[{n}]: has no resource")
        kind, rid = res.get("resourceType"), res.get("id")
        where = f"entry[{n}] {kind}/{rid}"
        if kind not in SUPPORTED:
            continue  # other resource types are not ours to import; they are skipped, not errors
        if not isinstance(rid, str) or not rid.strip() or "/" in rid:
            raise BundleError(f"entry[{n}] {kind}: id is missing or malformed")
        target = {"Patient": parsed.patients, "Practitioner": parsed.practitioners,
                  "Appointment": parsed.appointments}[kind]
        if rid in target:
            raise BundleError(f"{where}: duplicate id in bundle")
        if kind == "Patient":
            target[rid] = _parse_patient(res, where, default_region)
        elif kind == "Practitioner":
            target[rid] = _parse_practitioner(res, where)
        else:
            target[rid] = _parse_appointment(res, where)
    for rid, appt in parsed.appointments.items():
        if appt.patient_id not in parsed.patients:
            raise BundleError(f"Appointment/{rid}: refers to a Patient not in the bundle")
        if appt.practitioner_id and appt.practitioner_id not in parsed.practitioners:
            raise BundleError(f"Appointment/{rid}: refers to a Practitioner not in the bundle")
    if not (parsed.patients or parsed.appointments or parsed.practitioners):
        raise BundleError("Bundle holds no Patient, Practitioner or Appointment")
    return parsed


def load_bundle_file(path: Path, default_region: str = "US") -> ParsedBundle:
    """Read and validate a bundle file (JSON)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"no such file: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"not valid JSON ({exc.__class__.__name__} at line {getattr(exc, 'lineno', '?')})") from None
    return parse_bundle(doc, default_region)
