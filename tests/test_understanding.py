"""Understanding patients as they write: the independent in-scope set (tests/nlu/blind/), its
floors, and the date guard on hours, prices and counts, with the trained model."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from bot.config import NLU_THRESHOLDS_FILE
from bot.core import clarify

from bot.nlu import blind as nlu_blind
from bot.nlu.near_duplicates import near_duplicates
from bot.nlu.data import NluFile
from bot.nlu.outcomes import summarise

ROOT = Path(__file__).resolve().parents[1]
IN_SCOPE = {"confirm_appointment", "cancel_appointment", "reschedule_appointment", "ask_appointment_details",
            "ask_appointment_specifics", "running_late", "ask_hours", "ask_location", "ask_parking",
            "ask_insurance", "ask_billing", "ask_refill", "ask_portal", "ask_flu_shot", "request_human",
            "ask_clinical_question", "ask_test_results"}

# Floors on the independent set, a little under the one measurement reported in the README
# (Understanding: 83.4% on topic at once, 95.1% after one reply, 0.7% fallback, 1.2% wrong topic):
# a change that loses understanding fails here before it reaches a patient.
FLOOR_ON_TOPIC = 0.80
FLOOR_ON_TOPIC_EVENTUALLY = 0.93
CEILING_WRONG = 0.025
CEILING_FALLBACK = 0.03


def blind_rows():
    return [json.loads(line) for path in nlu_blind.blind_files() for line in path.read_text().splitlines()
            if line.strip()]


def test_the_independent_set_is_large_covers_every_intent_and_is_not_trained_on():
    rows = blind_rows()
    assert len(rows) >= 300
    counts = Counter(r["intent"] for r in rows)
    assert all(counts[intent] >= 12 for intent in IN_SCOPE), counts
    training = [e for examples in NluFile(ROOT / "data" / "nlu.yml").intents.values() for e in examples]
    near = near_duplicates([r["text"] for r in rows], training)
    assert near == [], f"{len(near)} messages of the independent set are near-duplicates of training examples"


@pytest.fixture(scope="module")
def blind_parsed(trained_model):
    return nlu_blind.parse_blind(trained_model)


def test_understanding_on_the_independent_set_holds_its_floor(blind_parsed):
    s = summarise(blind_parsed, clarify.thresholds(NLU_THRESHOLDS_FILE))
    figures = f"on topic {s.rate('on_topic'):.1%} (+{s.rate('clarified'):.1%} clarified), " \
              f"fallback {s.rate('fallback'):.1%}, wrong {s.rate('wrong'):.1%}"
    assert s.rate("on_topic") >= FLOOR_ON_TOPIC, figures
    assert s.on_topic_eventually >= FLOOR_ON_TOPIC_EVENTUALLY, figures
    assert s.rate("wrong") <= CEILING_WRONG, figures
    assert s.rate("fallback") <= CEILING_FALLBACK, figures


def test_the_replay_matches_what_the_model_decided(blind_parsed):
    """The figures replay the FallbackClassifier and the guards from the ranking: they must
    agree with the intent the running pipeline gave (config.yml's thresholds)."""
    from bot.nlu.outcomes import nlu_decision

    t = clarify.thresholds(NLU_THRESHOLDS_FILE)
    disagree = [p.text for p in blind_parsed if p.gateway is None and p.final != "emergency"
                and nlu_decision(p, t)[0] != p.final]
    assert len(disagree) <= 0.01 * len(blind_parsed), disagree


# Messages with hours, prices and counts (written for this test, synthetic): never a date of birth.
NOT_A_DATE = [
    "is anyone there after 5 on weekdays or is it strictly 9-5", "open 8 to 5?", "are you open 8-5 on fridays",
    "do you close at 4:30 or 5", "after 5:30 on thursday?", "open till 7 on thurs?", "is it 7-7 on saturday",
    "i get off at 6:15 can i still come", "is parking $5 or free", "my copay was $25.50 why",
    "i was charged 140 dollars twice", "i have 2 kids, 4 and 7, can they both get flu shots",
    "running 10-15 min late", "be there in 20", "i need 90 day supply not 30", "room 12 or 14?",
    "suite 200 or 210?", "is the 3rd floor the right one", "can i come at 11 or 11:30", "lunch 12-1?",
]


def test_the_date_guard_never_takes_hours_prices_or_counts_for_a_date_of_birth(trained_model):
    from bot.nlu.evaluate import _parse, quiet_rasa
    import asyncio

    quiet_rasa()
    parses = asyncio.run(_parse(trained_model, NOT_A_DATE))
    taken = [text for text, p in zip(NOT_A_DATE, parses) if p["intent"]["name"] == "provide_dob"]
    assert taken == []
    dob = asyncio.run(_parse(trained_model, ["03/14/1962", "dob is 3-14-62", "March 14 1962"]))
    assert [p["intent"]["name"] for p in dob] == ["provide_dob"] * 3
