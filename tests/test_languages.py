"""The conversation's language: the patient record's preferred language from FHIR
``Patient.communication``, and the sealed per-conversation store (bot/records/languages.py)."""
from __future__ import annotations

import copy
import json

import pytest

from bot.config import ROOT
from bot.records.fhir import parse_bundle
from bot.records.languages import MESSAGE, SWITCH
from bot.services import build_services
from tests.conftest import redis_dump

BUNDLE_PATH = ROOT / "data" / "demo" / "synthetic_bundle.json"


def _patient_with(communication):
    doc = json.loads(BUNDLE_PATH.read_text(encoding="utf-8"))
    doc = copy.deepcopy(doc)
    for entry in doc["entry"]:
        if entry["resource"]["id"] == "demo-patient-3":
            if communication is None:
                entry["resource"].pop("communication", None)
            else:
                entry["resource"]["communication"] = communication
    return parse_bundle(doc).patients["demo-patient-3"]


def _lang(code, preferred=None, system="urn:ietf:bcp:47"):
    entry = {"language": {"coding": [{"system": system, "code": code}]}}
    if preferred is not None:
        entry["preferred"] = preferred
    return entry


@pytest.mark.parametrize("communication, expected", [
    (None, None),
    ([], None),
    ([_lang("es-MX")], "es"),  # the base code of a regional tag
    ([_lang("en-US"), _lang("es", preferred=True)], "es"),  # the preferred one, wherever it is
    ([_lang("es", preferred=False), _lang("en")], "es"),  # none preferred: the first
    ([{"language": {"text": "Spanish"}}], None),  # text only: not guessed
    ([{"language": {"coding": [{"code": "not a code!"}]}}], None),
])
def test_preferred_language_from_patient_communication(communication, expected):
    patient = _patient_with(communication)
    assert patient.language == expected
    assert patient.to_dict()["language"] == expected


@pytest.fixture
async def svc(settings_env):
    services = build_services()
    yield services
    await services.close()


async def test_store_keeps_the_language_sealed(svc, prefix):
    conversation = "sms-test-conversation"
    assert await svc.languages.get(conversation) is None
    await svc.languages.set(conversation, "es", MESSAGE)
    assert await svc.languages.get(conversation) == "es"
    await svc.languages.set(conversation, "en", SWITCH)
    assert await svc.languages.get(conversation) == "en"
    dump = redis_dump(prefix)
    assert b"\"en\"" not in dump and b"switch" not in dump  # sealed, not a plain value
    with pytest.raises(ValueError):
        await svc.languages.set(conversation, "fr", MESSAGE)
    with pytest.raises(ValueError):
        await svc.languages.set(conversation, "es", "guess")


async def test_pipeline_read(svc):
    await svc.languages.set("web-a", "es", SWITCH)
    async with svc.redis.pipeline(transaction=False) as pipe:
        read_a = svc.languages.get_on(pipe, "web-a")
        read_b = svc.languages.get_on(pipe, "web-b")
        results = await pipe.execute()
    assert (read_a(results), read_b(results)) == ("es", None)


async def test_outbound_language_prefers_the_conversation_then_the_record(svc):
    # The conversation's own language wins over the record ...
    await svc.languages.set("sms-1", "en", SWITCH)
    assert await svc.languages.for_outbound("sms-1", "es") == "en"
    # ... a conversation without one takes the record's and keeps it for the replies ...
    assert await svc.languages.for_outbound("sms-2", "es") == "es"
    assert await svc.languages.get("sms-2") == "es"
    # ... and an unsupported or absent record language gives the office default.
    assert await svc.languages.for_outbound("sms-3", "fr") == "en"
    assert await svc.languages.for_outbound("sms-4", None) == "en"
