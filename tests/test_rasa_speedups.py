"""Rasa's action-response validation with the schema checked once (channels/rasa_bridge/speedups.py):
the same verdicts and the same errors as Rasa's own, and installed by the Rasa-side connector."""
from __future__ import annotations

import jsonschema
import pytest
from rasa.core.actions.action import RemoteAction

from channels.rasa_bridge import speedups as rasa_speedups

VALID = [
    {"events": [], "responses": []},
    {"events": [{"event": "slot", "name": "x", "value": 1}], "responses": [{"text": "hi (synthetic)"}]},
    {},
]
INVALID = [
    {"events": "not a list"},
    {"events": [{"no_event_key": 1}]},
    {"responses": "not a list"},
]


@pytest.fixture
def action():
    return RemoteAction("action_anything", None)


@pytest.mark.parametrize("result", VALID + INVALID)
def test_same_verdict_as_jsonschema_validate(result):
    schema = RemoteAction.action_response_format_spec()
    try:
        jsonschema.validate(result, schema)
        expected = True
    except jsonschema.ValidationError:
        expected = False
    assert rasa_speedups.action_response_validator().is_valid(result) is expected


def test_valid_results_pass_without_checking_the_schema_again(action, monkeypatch):
    rasa_speedups.action_response_validator()  # built (and the schema checked) once
    cls = type(rasa_speedups.action_response_validator())
    monkeypatch.setattr(cls, "check_schema", classmethod(lambda *a: pytest.fail("schema checked again")))
    for result in VALID:
        assert rasa_speedups._validate_action_result(action, result) is True


@pytest.mark.parametrize("result", INVALID)
def test_invalid_results_raise_rasas_own_error(action, result):
    with pytest.raises(jsonschema.ValidationError, match="Failed to validate Action server response"):
        rasa_speedups._validate_action_result(action, result)


def test_the_connector_installs_it():
    import channels.rasa_bridge.connector  # noqa: F401 - Rasa loads it as the gateway's channel

    assert RemoteAction._validate_action_result is rasa_speedups._validate_action_result
