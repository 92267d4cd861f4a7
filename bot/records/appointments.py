"""Patients and appointments in Redis, encrypted, keyed by blind indexes.

Layout (``pb:`` is the configured prefix; every id is a blind index, never a FHIR id or number):

* ``pb:patient:<pid>``            sealed JSON of the Patient
* ``pb:phone:<phone index>``       set of ``<pid>`` reachable at that number (shared phones)
* ``pb:practitioner:<prid>``      sealed JSON of the Practitioner
* ``pb:appt:<aid>``               sealed JSON of the Appointment, with its change history
* ``pb:patient-appts:<pid>``      sorted set of ``<aid>`` by start time

Every change made through the bot (confirm, cancel, reschedule request, running late) is
recorded on the appointment itself: new status, what happened, who did it and when.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Dict, List, Optional, Tuple

import redis.asyncio as aioredis

from bot.storage.crypto import KeyRing, phone_index
from bot.records.fhir import ParsedBundle

# An appointment that started less than this long ago is still "the next one" (late arrivals).
STILL_CURRENT = timedelta(hours=1)
UPCOMING_STATUSES = {"proposed", "pending", "booked"}


@dataclass
class StoredAppointment:
    aid: str
    pid: str
    data: Dict[str, Any]

    @property
    def start(self) -> datetime:
        return datetime.fromisoformat(self.data["start"])

    @property
    def status(self) -> str:
        return self.data["status"]


class AppointmentStore:
    """Encrypted patient/appointment records, read and changed by the bot's actions."""

    def __init__(self, client: aioredis.Redis, keys: KeyRing, prefix: str = "pb:") -> None:
        self.redis = client
        self.keys = keys
        self.prefix = prefix

    # -- ids and keys ------------------------------------------------------------------------
    def patient_ref(self, fhir_id: str) -> str:
        return self.keys.blind_index(fhir_id, "patient")[:32]

    def appointment_ref(self, fhir_id: str) -> str:
        return self.keys.blind_index(fhir_id, "appointment")[:32]

    def practitioner_ref(self, fhir_id: str) -> str:
        return self.keys.blind_index(fhir_id, "practitioner")[:32]

    def _k(self, kind: str, ref: str) -> str:
        return f"{self.prefix}{kind}:{ref}"

    def _seal(self, kind: str, ref: str, doc: Dict[str, Any]) -> str:
        return self.keys.encrypt_text(json.dumps(doc, sort_keys=True), self._k(kind, ref))

    def _open(self, kind: str, ref: str, token: Any) -> Dict[str, Any]:
        return json.loads(self.keys.decrypt_text(token.decode() if isinstance(token, bytes) else token, self._k(kind, ref)))

    # -- import ------------------------------------------------------------------------------
    async def import_bundle(self, bundle: ParsedBundle, source: str, at: Optional[datetime] = None) -> Dict[str, int]:
        """Store a validated bundle in one transaction: all of it or none of it.

        Re-importing updates records in place and keeps each appointment's change history.
        """
        at = at or datetime.now(timezone.utc)
        writes = self.redis.pipeline(transaction=True)
        for fhir_id, patient in bundle.patients.items():
            pid = self.patient_ref(fhir_id)
            old = await self.get_patient(pid)
            for phone_idx in (old or {}).get("phone_indexes", []):
                writes.srem(self._k("phone", phone_idx), pid)
            doc = patient.to_dict()
            doc["phone_indexes"] = [phone_index(self.keys, p) for p in patient.phones]
            writes.set(self._k("patient", pid), self._seal("patient", pid, doc))
            for phone_idx in doc["phone_indexes"]:
                writes.sadd(self._k("phone", phone_idx), pid)
        for fhir_id, practitioner in bundle.practitioners.items():
            prid = self.practitioner_ref(fhir_id)
            writes.set(self._k("practitioner", prid), self._seal("practitioner", prid, practitioner.to_dict()))
        for fhir_id, appt in bundle.appointments.items():
            aid, pid = self.appointment_ref(fhir_id), self.patient_ref(appt.patient_id)
            existing = await self.get_appointment(aid)
            if existing and existing.pid != pid:  # moved to another patient: off the old list
                writes.zrem(self._k("patient-appts", existing.pid), aid)
            doc = appt.to_dict()
            doc["practitioner_name"] = (
                bundle.practitioners[appt.practitioner_id].name if appt.practitioner_id else None
            )
            doc["history"] = (existing.data.get("history", []) if existing else []) + [
                {"action": "imported", "status": appt.status, "actor": source, "at": at.isoformat()}
            ]
            writes.set(self._k("appt", aid), self._seal("appt", aid, doc))
            writes.zadd(self._k("patient-appts", pid), {aid: appt.start.timestamp()})
            writes.zadd(self._k("appts-by-start", "all"), {aid: appt.start.timestamp()})
        await writes.execute()
        return {
            "patients": len(bundle.patients),
            "practitioners": len(bundle.practitioners),
            "appointments": len(bundle.appointments),
        }

    # -- reads -------------------------------------------------------------------------------
    async def get_patient(self, pid: str) -> Optional[Dict[str, Any]]:
        token = await self.redis.get(self._k("patient", pid))
        return None if token is None else self._open("patient", pid, token)

    async def get_appointment(self, aid: str) -> Optional[StoredAppointment]:
        token = await self.redis.get(self._k("appt", aid))
        if token is None:
            return None
        data = self._open("appt", aid, token)
        return StoredAppointment(aid, self.patient_ref(data["patient_id"]), data)

    async def patients_at(self, phone_idx: str) -> List[str]:
        """Patient refs reachable at the number with this blind index (sorted, stable)."""
        members = await self.redis.smembers(self._k("phone", phone_idx))
        return sorted(m.decode() if isinstance(m, bytes) else m for m in members)

    async def next_appointment(self, phone_idx: str, now: Optional[datetime] = None) -> Optional[StoredAppointment]:
        """The soonest upcoming appointment of any patient at this number, or None."""
        now = now or datetime.now(timezone.utc)
        earliest = (now - STILL_CURRENT).timestamp()
        best: Optional[StoredAppointment] = None
        for pid in await self.patients_at(phone_idx):
            for aid in await self.redis.zrangebyscore(self._k("patient-appts", pid), earliest, "+inf"):
                appt = await self.get_appointment(aid.decode() if isinstance(aid, bytes) else aid)
                if appt is None or appt.status not in UPCOMING_STATUSES:
                    continue
                if best is None or appt.start < best.start:
                    best = appt
                break  # sorted by start: the first upcoming one is this patient's next
        return best

    async def next_for_patient(self, pid: str, now: Optional[datetime] = None) -> Optional[StoredAppointment]:
        """The patient's own soonest upcoming appointment (a verified patient on a shared phone)."""
        now = now or datetime.now(timezone.utc)
        for aid in await self.redis.zrangebyscore(self._k("patient-appts", pid), (now - STILL_CURRENT).timestamp(), "+inf"):
            appt = await self.get_appointment(aid.decode() if isinstance(aid, bytes) else aid)
            if appt is not None and appt.status in UPCOMING_STATUSES:
                return appt
        return None

    async def birth_dates_at(self, phone_idx: str) -> List[Tuple[str, date]]:
        """(patient ref, birth date) of every patient at the number: the verification candidates."""
        out = []
        for pid in await self.patients_at(phone_idx):
            patient = await self.get_patient(pid)
            if patient and patient.get("birth_date"):
                out.append((pid, date.fromisoformat(patient["birth_date"])))
        return out

    async def number_on_file(self, phone_idx: str) -> Optional[str]:
        """The E.164 number whose blind index is ``phone_idx``, from the records of the patients
        reachable there, or None when nobody is on file at it: where a one-time code for a web
        conversation bound to that index is sent (never a number someone typed)."""
        for pid in await self.patients_at(phone_idx):
            for number in (await self.get_patient(pid) or {}).get("phones", []):
                if phone_index(self.keys, number) == phone_idx:
                    return number
        return None

    async def starting_between(self, start: datetime, end: datetime) -> List[StoredAppointment]:
        """Appointments starting in [start, end), soonest first (any status)."""
        out = []
        for aid in await self.redis.zrangebyscore(self._k("appts-by-start", "all"), start.timestamp(), f"({end.timestamp()}"):
            appt = await self.get_appointment(aid.decode() if isinstance(aid, bytes) else aid)
            if appt is not None:
                out.append(appt)
        return out

    # -- changes -----------------------------------------------------------------------------
    async def record_change(
        self, appt: StoredAppointment, action: str, actor: str,
        new_status: Optional[str] = None, at: Optional[datetime] = None, **details: Any,
    ) -> StoredAppointment:
        """Append ``action`` to the appointment's history (and set its status), atomically."""
        at = at or datetime.now(timezone.utc)
        key = self._k("appt", appt.aid)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    token = await pipe.get(key)
                    data = self._open("appt", appt.aid, token)
                    entry = {"action": action, "actor": actor, "at": at.isoformat(), **details}
                    if new_status:
                        entry["status"] = new_status
                        data["status"] = new_status
                    data.setdefault("history", []).append(entry)
                    pipe.multi()
                    pipe.set(key, self._seal("appt", appt.aid, data))
                    await pipe.execute()
                    return StoredAppointment(appt.aid, appt.pid, data)
                except aioredis.WatchError:
                    continue

    async def confirm(self, appt: StoredAppointment, actor: str) -> StoredAppointment:
        return await self.record_change(appt, "confirmed", actor, new_status="booked")

    async def cancel(self, appt: StoredAppointment, actor: str) -> StoredAppointment:
        return await self.record_change(appt, "cancelled", actor, new_status="cancelled")

    async def request_reschedule(self, appt: StoredAppointment, actor: str) -> StoredAppointment:
        return await self.record_change(appt, "reschedule_requested", actor)

    async def note_running_late(self, appt: StoredAppointment, actor: str) -> StoredAppointment:
        return await self.record_change(appt, "running_late", actor)


def appointment_as_fhir(appt: StoredAppointment) -> Dict[str, Any]:
    """The appointment as an R4 Appointment resource, with the bot's changes written back.

    The last patient action is carried as the patient participant's status (accepted when
    confirmed, declined when cancelled), as an EHR expects on write-back.
    """
    data = appt.data
    participant_status = "needs-action"
    for entry in data.get("history", []):
        if entry["action"] == "confirmed":
            participant_status = "accepted"
        elif entry["action"] == "cancelled":
            participant_status = "declined"
    resource: Dict[str, Any] = {
        "resourceType": "Appointment",
        "id": data["fhir_id"],
        "status": data["status"],
        "start": data["start"],
        "participant": [
            {"actor": {"reference": f"Patient/{data['patient_id']}"}, "status": participant_status}
        ],
    }
    if data.get("end"):
        resource["end"] = data["end"]
    if data.get("practitioner_id"):
        resource["participant"].append(
            {"actor": {"reference": f"Practitioner/{data['practitioner_id']}"}, "status": "accepted"}
        )
    if data["status"] == "cancelled":
        resource["cancelationReason"] = {"text": "Cancelled by the patient by text message"}
    return resource
