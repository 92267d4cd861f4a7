"""bot/records/fhir.py: the synthetic demo bundle parses; broken bundles are refused with a message that
names the resource and field, never the offending value."""
from __future__ import annotations

import copy
import json
from datetime import date, datetime, timedelta, timezone

import pytest

from bot.config import ROOT
from bot.records.fhir import BundleError, load_bundle_file, parse_bundle

BUNDLE_PATH = ROOT / "data" / "demo" / "synthetic_bundle.json"


@pytest.fixture(scope="module")
def demo_doc():
    return json.loads(BUNDLE_PATH.read_text(encoding="utf-8"))


@pytest.fixture
def doc(demo_doc):
    return copy.deepcopy(demo_doc)


def resource(doc, rid):
    """(entry index, resource) of the resource with id ``rid``."""
    for n, entry in enumerate(doc["entry"]):
        if entry["resource"].get("id") == rid:
            return n, entry["resource"]
    raise KeyError(rid)


def refused(doc, *fragments, hidden=()):
    with pytest.raises(BundleError) as err:
        parse_bundle(doc)
    message = str(err.value)
    for fragment in fragments:
        assert fragment in message, message
    for value in hidden:
        assert value not in message, message
    return message


def test_demo_bundle_parses():
    bundle = load_bundle_file(BUNDLE_PATH)
    assert sorted(bundle.patients) == ["demo-patient-1", "demo-patient-2", "demo-patient-3"]
    assert sorted(bundle.practitioners) == ["demo-practitioner-1", "demo-practitioner-2"]
    assert sorted(bundle.appointments) == ["demo-appt-1", "demo-appt-2", "demo-appt-3"]

    alex = bundle.patients["demo-patient-1"]
    assert (alex.given, alex.family, alex.birth_date) == ("Alex", "Demopatient", date(1980, 1, 1))
    assert alex.phones == ["+15550100101"]  # "+1 555-010-0101" normalised to E.164
    assert alex.identifiers == [("urn:patientbot:demo-mrn", "DEMO-0001")]
    assert bundle.patients["demo-patient-2"].phones == alex.phones  # shared family number
    assert bundle.practitioners["demo-practitioner-1"].name == "Dr. Jordan Example"

    appt = bundle.appointments["demo-appt-1"]
    assert appt.status == "booked"
    assert appt.start == datetime(2030, 1, 15, 15, 30, tzinfo=timezone.utc)
    assert appt.start.utcoffset() == timedelta(hours=-6)
    assert appt.end - appt.start == timedelta(minutes=30)
    assert (appt.patient_id, appt.practitioner_id) == ("demo-patient-1", "demo-practitioner-1")
    assert appt.to_dict()["start"] == "2030-01-15T09:30:00-06:00"


def test_unsupported_resources_are_skipped_and_z_means_utc(doc):
    doc["entry"].append({"resource": {"resourceType": "Observation", "id": "obs-1"}})
    _, appt = resource(doc, "demo-appt-1")
    appt["start"], appt["end"] = "2030-01-15T15:30:00Z", "2030-01-15T16:00:00Z"
    bundle = parse_bundle(doc)
    assert bundle.appointments["demo-appt-1"].start == datetime(2030, 1, 15, 15, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize("bad", [{"resourceType": "Patient", "id": "x"}, {"entry": []}, [], None])
def test_not_a_bundle(bad):
    with pytest.raises(BundleError, match="resourceType must be 'Bundle'"):
        parse_bundle(bad)


def test_empty_or_entryless_bundle(doc):
    with pytest.raises(BundleError, match="no entry list"):
        parse_bundle({"resourceType": "Bundle", "entry": []})
    with pytest.raises(BundleError, match=r"entry\[0\]: has no resource"):
        parse_bundle({"resourceType": "Bundle", "entry": [{"fullUrl": "urn:x"}]})
    with pytest.raises(BundleError, match="holds no Patient"):
        parse_bundle({"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Observation"}}]})


def test_missing_patient_reference(doc):
    _, appt = resource(doc, "demo-appt-2")
    appt["participant"][0]["actor"]["reference"] = "Patient/demo-patient-404"
    refused(doc, "Appointment/demo-appt-2", "refers to a Patient not in the bundle")


def test_missing_practitioner_reference(doc):
    _, appt = resource(doc, "demo-appt-3")
    appt["participant"][1]["actor"]["reference"] = "Practitioner/nobody"
    refused(doc, "Appointment/demo-appt-3", "refers to a Practitioner not in the bundle")


def test_reference_of_the_wrong_resource_type_is_no_patient(doc):
    n, appt = resource(doc, "demo-appt-1")
    appt["participant"][0]["actor"]["reference"] = "Practitioner/demo-patient-1"
    refused(doc, f"entry[{n}] Appointment/demo-appt-1", "no Patient actor")


@pytest.mark.parametrize("field,value,problem", [
    ("start", "2030-13-40T09:30:00-06:00", "start is missing or not a FHIR instant"),
    ("start", "2030-01-15T09:30:00", "start is missing or not a FHIR instant"),  # no time zone
    ("start", None, "start is missing"),
    ("end", "soon-ish", "end is not a FHIR instant"),
    ("end", "2030-01-15T09:00:00-06:00", "end is before start"),
    ("status", "maybe", "status is missing or not an R4 appointment status"),
])
def test_bad_appointment_fields(doc, field, value, problem):
    n, appt = resource(doc, "demo-appt-1")
    appt[field] = value
    refused(doc, f"entry[{n}] Appointment/demo-appt-1: {problem}", hidden=[value] if value else [])


@pytest.mark.parametrize("birth_date", ["1980-02-30", "01/01/1980", "1980", None])
def test_bad_birth_date_names_the_patient_not_the_date(doc, birth_date):
    n, patient = resource(doc, "demo-patient-1")
    patient["birthDate"] = birth_date
    refused(doc, f"entry[{n}] Patient/demo-patient-1: birthDate", hidden=[str(birth_date), "Alex", "Demopatient"])


def test_bad_patient_name_and_phone(doc):
    n, patient = resource(doc, "demo-patient-3")
    patient["telecom"][0]["value"] = "call me maybe 12"
    refused(doc, f"entry[{n}] Patient/demo-patient-3: telecom", hidden=["call me maybe", "Robin"])
    patient["telecom"][0]["value"] = "+1 555-010-0102"
    patient["name"] = [{"use": "official"}]
    refused(doc, f"entry[{n}] Patient/demo-patient-3: name is missing")


def test_bad_or_duplicate_ids(doc):
    n, patient = resource(doc, "demo-patient-3")
    doc["entry"].append(copy.deepcopy(doc["entry"][n]))
    refused(doc, "Patient/demo-patient-3: duplicate id")
    for bad_id in (None, "", "a/b"):
        broken = copy.deepcopy(doc)
        del broken["entry"][-1]
        broken["entry"][n]["resource"]["id"] = bad_id
        refused(broken, f"entry[{n}] Patient: id is missing or malformed")


def test_load_bundle_file_errors(tmp_path):
    with pytest.raises(BundleError, match="no such file"):
        load_bundle_file(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"resourceType": "Bundle", "entry": [\n', encoding="utf-8")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle_file(bad)


def test_fhir_instant_with_any_fraction_digits_is_accepted(doc):
    _, appt = resource(doc, "demo-appt-1")
    appt["start"], appt["end"] = "2030-01-15T09:30:00.5-06:00", None
    assert parse_bundle(doc).appointments["demo-appt-1"].start.microsecond == 500000
