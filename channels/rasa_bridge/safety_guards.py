"""The NLU's safety layers, inside Rasa: the last component of the NLU pipeline (config.yml).

After the intent classifier and the FallbackClassifier have spoken, it makes the parse's intent
``emergency`` when

- the emergency intent has meaningful weight anywhere in the ranking (layer 3), even if
  another intent came first, and the gateway's risk classifier (its probability comes with the
  message's metadata) does not rule the message out: a crisis the model half-recognises is never
  answered as the insurance question it also resembles; or the intent came first at all; or
- the message carries danger words that no harmless idiom explains (layer 4, the safety net).

The ranking is left as the classifier made it, so ``action_safety_answer`` can tell the two
apart (bot.safety.screen.nlu_verdict) and give the redirect or the safety check. Pure: no I/O.
Message text is never logged here.
"""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, METADATA, TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.safety.screen import EMERGENCY_INTENT, nlu_verdict, risk_from


class ReadingGuard(GraphComponent):
    """An NLU component that may replace the parse's intent after the classifiers: it knows the
    FallbackClassifier's threshold (config.yml) to judge the next reading as it would have."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {"fallback_threshold": 0.5}

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "ReadingGuard":
        return cls(float(config.get("fallback_threshold", 0.5)))

    def __init__(self, fallback_threshold: float = 0.5) -> None:
        self.fallback_threshold = fallback_threshold


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class EmergencyIntentGuard(ReadingGuard):
    """Turns any parse the safety layers flag into the ``emergency`` intent."""

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            text = message.get(TEXT) or ""
            if text.startswith("/"):
                continue  # the gateway's own commands (a verified patient's pending intent)
            top = (message.get(INTENT) or {}).get("name")
            ranking = message.get(INTENT_RANKING_KEY) or []
            if nlu_verdict(text, ranking, top, risk_from(message.get(METADATA))):
                message.set(INTENT, {"name": EMERGENCY_INTENT, "confidence": 1.0}, add_to_output=True)
            elif top == EMERGENCY_INTENT:
                # The classifier ruled out what the intent alone suggested: the next reading.
                message.set(INTENT, next_reading(ranking, self.fallback_threshold), add_to_output=True)
        return messages


def next_reading(ranking: List[Dict[Text, Any]], fallback_threshold: float,
                 ruled_out: str = EMERGENCY_INTENT) -> Dict[Text, Any]:
    """The best-ranked intent other than ``ruled_out``, or the fallback intent when that one is
    below the FallbackClassifier's threshold (as it would have been judged)."""
    for entry in ranking:
        if entry.get("name") not in (ruled_out, "nlu_fallback", None):
            confidence = float(entry.get("confidence") or 0.0)
            if confidence >= fallback_threshold:
                return {"name": entry["name"], "confidence": confidence}
            break
    return {"name": "nlu_fallback", "confidence": fallback_threshold}
