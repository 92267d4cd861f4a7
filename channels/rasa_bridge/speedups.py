"""Rasa's own checks, without constant work it repeats on every message.

Rasa validates every action server response with ``jsonschema.validate``, which first checks
the (constant) schema against the JSON Schema meta-schema, every time. Profiled under load
(py-spy, ``make bench``), that meta-schema check was about 30% of Rasa's CPU. Here the
validator is built and the schema checked once; every response is still validated against
the same schema, and an invalid one is handed to Rasa's own method, so the error raised and
its message are Rasa's. jsonschema's documentation recommends exactly this for a schema
used many times. Installed by the Rasa-side connector (channels.rasa_bridge.connector).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Dict, Text

from jsonschema.validators import validator_for
from rasa.core.actions.action import RemoteAction

_rasa_validate = RemoteAction._validate_action_result


@lru_cache(maxsize=1)
def action_response_validator():
    schema = RemoteAction.action_response_format_spec()
    cls = validator_for(schema)
    cls.check_schema(schema)  # once: what jsonschema.validate does on every call
    return cls(schema)


def _validate_action_result(self: RemoteAction, result: Dict[Text, Any]) -> bool:
    if action_response_validator().is_valid(result):
        return True
    return _rasa_validate(self, result)  # raises Rasa's ValidationError, with its message


def install() -> None:
    RemoteAction._validate_action_result = _validate_action_result
