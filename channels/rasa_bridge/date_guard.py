"""The NLU's date guard, inside Rasa: "date of birth" needs a date (config.yml pipeline).

The ``provide_dob`` intent answers a date of birth sent unasked ("please don't send personal
details by text"). The classifier learns it from the shape of dates, so hours, prices and counts
("open 9-5?", "after 5:30", "$25 copay", "2 kids") can look like one to it. A full date reaches
the NLU masked as ``[date]`` (the gateway masks it: bot.core.dates.mask_dates); the guard lets
``provide_dob`` stand only on a message with such a mask or a month named with a day, and
otherwise gives the next reading, as the FallbackClassifier would have judged it. Pure: no I/O;
message text is never logged.
"""
from __future__ import annotations

from typing import List

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.core.dates import has_date
from channels.rasa_bridge.safety_guards import ReadingGuard, next_reading

DOB_INTENT = "provide_dob"
@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class DateOfBirthGuard(ReadingGuard):
    """Gives the next reading to a ``provide_dob`` parse of a message without a date."""

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            text = message.get(TEXT) or ""
            if text.startswith("/") or (message.get(INTENT) or {}).get("name") != DOB_INTENT:
                continue
            if not has_date(text):
                ranking = message.get(INTENT_RANKING_KEY) or []
                message.set(INTENT, next_reading(ranking, self.fallback_threshold, DOB_INTENT), add_to_output=True)
        return messages
