"""Audit events out of the log, for compliance review and e-discovery: JSONL or FHIR R4 AuditEvent.

The export holds the decrypted details, so it is itself audited by whoever runs it.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Dict, Iterable, List, Optional

from bot.storage.audit import AuditEvent

# FHIR AuditEvent.action: C create, R read, U update, D delete, E execute.
_ACTION_CODE = {"message_received": "C", "message_sent": "E", "consent_viewed": "R", "consent_exported": "R",
                "audit_exported": "R", "consent_opt_out": "U", "consent_opt_in": "U", "identity_verification": "E",
                "emergency_redirect": "E", "sms_sent": "E", "sms_status": "U", "outbound_refused": "E"}


def select(events: Iterable[AuditEvent], since: Optional[datetime] = None, until: Optional[datetime] = None,
           subject: Optional[str] = None) -> List[AuditEvent]:
    out = []
    for e in events:
        at = datetime.fromisoformat(e.at)
        if (since and at < since) or (until and at >= until) or (subject and e.subject != subject):
            continue
        out.append(e)
    return out


def as_json(e: AuditEvent) -> Dict[str, Any]:
    return {"id": e.entry_id, "at": e.at, "actor": e.actor, "action": e.action, "subject": e.subject,
            "outcome": e.outcome, "details": e.details, "hash": e.hash, "prev": e.prev}


def as_fhir(e: AuditEvent) -> Dict[str, Any]:
    """One FHIR R4 AuditEvent resource (subject and actor are pseudonymous ids, not names)."""
    failed = e.outcome in ("failed", "refused", "incident", "rejected", "gave_up") or e.outcome.startswith("locked")
    resource: Dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": e.entry_id.replace("-", "."),
        "type": {"system": "urn:patientbot:audit-action", "code": e.action},
        "action": _ACTION_CODE.get(e.action, "E"),
        "recorded": e.at,
        "outcome": "4" if failed else "0",
        "outcomeDesc": e.outcome,
        "agent": [{"who": {"identifier": {"system": "urn:patientbot:actor", "value": e.actor}}, "requestor": True}],
        "source": {"observer": {"display": "patientbot"}},
    }
    if e.subject:
        resource["entity"] = [{"what": {"identifier": {"system": "urn:patientbot:pseudonym", "value": e.subject}},
                               "detail": [{"type": k, "valueString": str(v)} for k, v in sorted(e.details.items())]}]
    return resource
