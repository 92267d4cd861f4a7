"""Asking instead of guessing (bot.core.clarify), the outcomes replayed from a ranking
(bot.nlu.outcomes), the date guard (channels.rasa_bridge.date_guard) and the reply that picks a reading
(channels.rasa_bridge.clarify_choice). Pure: no Rasa model, no Redis."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.core import clarify
from bot.core.clarify import Thresholds
from bot.core.dates import mask_dates
from bot.nlu.calibrate import config_thresholds, held_out
from bot.nlu.outcomes import Parsed, calibrate, outcome, summarise
from channels.rasa_bridge.clarify_choice import pending_question
from bot.core.dates import has_date
from channels.rasa_bridge.date_guard import DateOfBirthGuard

ROOT = Path(__file__).resolve().parents[1]
T = Thresholds(answer=0.5, ambiguity=0.1, ask=0.2, option=0.1)


def ranking(*pairs):
    return [{"name": name, "confidence": c} for name, c in pairs]


def test_a_close_call_between_two_topics_offers_both():
    r = clarify.readings(ranking(("nlu_fallback", 0.5), ("ask_hours", 0.45), ("ask_parking", 0.4), ("greet", 0.1)))
    assert not clarify.understood(r, T)
    assert clarify.options(r, T) == ["ask_hours", "ask_parking"]
    text, buttons = clarify.question(["ask_hours", "ask_parking"])
    assert "1) our office hours" in text and "2) parking" in text
    assert [b["payload"] for b in buttons] == ["1", "2"]


def test_small_talk_and_dates_are_never_offered_and_a_hopeless_parse_asks_to_rephrase():
    r = clarify.readings(ranking(("ask_hours", 0.3), ("provide_dob", 0.25), ("greet", 0.2), ("ask_parking", 0.15)))
    assert clarify.options(r, T) == ["ask_hours", "ask_parking"]
    assert clarify.options(clarify.readings(ranking(("ask_hours", 0.15), ("ask_parking", 0.14))), T) == []
    assert clarify.options(clarify.readings(ranking(("greet", 0.4), ("ask_hours", 0.3))), T) == ["ask_hours"]
    assert clarify.options(clarify.readings(ranking(("thanks", 0.6), ("ask_hours", 0.15))), T) == []


def test_one_credible_reading_is_a_yes_or_rephrase_question():
    r = clarify.readings(ranking(("ask_refill", 0.42), ("ask_portal", 0.05)))
    assert clarify.options(r, T) == ["ask_refill"]
    text, buttons = clarify.question(["ask_refill"])
    assert "a prescription refill" in text and "Reply 1 for yes" in text and len(buttons) == 1
    assert clarify.chosen_intent("yes", ["ask_refill"]) == "ask_refill"


@pytest.mark.parametrize("reply, picked", [
    ("2", "ask_parking"), (" #2 ", "ask_parking"), ("option 1", "ask_hours"), ("the second one", "ask_parking"),
    ("First", "ask_hours"), ("2.", "ask_parking"), ("dos", "ask_parking"),
    ("3", None), ("yes", None), ("2 please and also my bill", None), ("I said parking", None), ("", None),
])
def test_a_reply_picks_a_reading_only_when_it_is_plainly_a_pick(reply, picked):
    assert clarify.chosen_intent(reply, ["ask_hours", "ask_parking"]) == picked


def test_a_pick_answers_only_the_question_just_asked():
    asked = UserUttered("parking hours?", parse_data={"intent": {"name": "nlu_fallback"}, "intent_ranking": []})
    question = BotUttered("Did you mean ...", data={"custom": {clarify.CLARIFY_KEY: ["ask_hours", "ask_parking"]}})
    offered, about = pending_question([asked, ActionExecuted("action_handle_fallback"), question,
                                       ActionExecuted("action_listen")])
    assert offered == ["ask_hours", "ask_parking"] and about is asked
    later = UserUttered("thanks")
    assert pending_question([asked, question, later, BotUttered("You're welcome")]) is None
    assert pending_question([asked, question, later]) is None  # already answered by another message
    assert pending_question([asked, BotUttered("Our hours are ...")]) is None


@pytest.mark.parametrize("text", [
    "is anyone there after 5 on weekdays or is it strictly 9-5", "open 8 to 5?", "after 5:30 on thursday?",
    "is parking $5", "my copay was $25.50", "I have 2 kids 4 and 7", "room 12-B?", "call me at 555-0100",
    "suite 200", "open 7-7 on the 3rd?",
])
def test_hours_prices_and_counts_are_not_dates(text):
    assert not has_date(mask_dates(text))


@pytest.mark.parametrize("text", ["03/14/1962", "dob 3-14-62", "March 14 1962", "born 14 march", "1962-03-14",
                                  "its march 14th"])
def test_dates_of_birth_are_dates(text):
    assert has_date(mask_dates(text))


def test_the_date_guard_gives_the_next_reading_to_a_dob_parse_without_a_date():
    guard = DateOfBirthGuard(fallback_threshold=0.5)
    hours = Message(data={TEXT: "open 9-5?", INTENT: {"name": "provide_dob", "confidence": 0.7},
                          INTENT_RANKING_KEY: ranking(("provide_dob", 0.7), ("ask_hours", 0.6))})
    weak = Message(data={TEXT: "12 pm", INTENT: {"name": "provide_dob", "confidence": 0.8},
                         INTENT_RANKING_KEY: ranking(("provide_dob", 0.8), ("ask_hours", 0.1))})
    dob = Message(data={TEXT: "it's [date]", INTENT: {"name": "provide_dob", "confidence": 0.9},
                        INTENT_RANKING_KEY: ranking(("provide_dob", 0.9))})
    guard.process([hours, weak, dob])
    assert hours.get(INTENT)["name"] == "ask_hours"
    assert weak.get(INTENT)["name"] == "nlu_fallback"
    assert dob.get(INTENT)["name"] == "provide_dob"


def parsed(intent, readings, final=None, gateway=None, also=()):
    return Parsed("synthetic", intent, tuple(also), list(readings), final or readings[0][0], gateway, False)


def test_outcomes_replay_the_pipeline():
    assert outcome(parsed("ask_hours", [("ask_hours", 0.9), ("ask_parking", 0.05)]), T) == "on_topic"
    assert outcome(parsed("ask_hours", [("ask_parking", 0.9), ("ask_hours", 0.05)]), T) == "wrong"
    assert outcome(parsed("ask_hours", [("ask_parking", 0.45), ("ask_hours", 0.4)]), T) == "clarified"
    assert outcome(parsed("ask_hours", [("ask_parking", 0.45), ("ask_location", 0.4)]), T) == "fallback"
    assert outcome(parsed("ask_hours", [("ask_parking", 0.9)], also=["ask_parking"]), T) == "on_topic"
    assert outcome(parsed("ask_hours", [("ask_hours", 0.9)], final="emergency"), T) == "diverted"
    assert outcome(parsed("ask_hours", [("ask_hours", 0.9)], gateway="safety"), T) == "diverted"
    assert outcome(parsed("cancel_appointment", [("x", 0.9)], gateway="someone_else"), T) == "on_topic"
    # the date guard: "provide_dob" without a date gives way to the next reading
    assert outcome(parsed("ask_hours", [("provide_dob", 0.8), ("ask_hours", 0.6)]), T) == "on_topic"


def test_calibration_keeps_wrong_answers_under_the_cap_and_prefers_answering():
    sure = [parsed("ask_hours", [("ask_hours", 0.95), ("ask_parking", 0.02)]) for _ in range(90)]
    unsure_right = [parsed("ask_hours", [("ask_hours", 0.55), ("ask_parking", 0.3)]) for _ in range(5)]
    unsure_wrong = [parsed("ask_hours", [("ask_parking", 0.55), ("ask_hours", 0.3)]) for _ in range(5)]
    chosen, summary = calibrate(sure + unsure_right + unsure_wrong, max_wrong=0.02)
    assert summary.rate("wrong") <= 0.02
    assert summary.rate("on_topic") + summary.rate("clarified") == 1.0
    assert summarise(sure + unsure_right + unsure_wrong, Thresholds(0.5, 0.0, 0.2, 0.1)).rate("wrong") == 0.05


def test_the_validation_split_is_stable_and_about_a_fifth():
    texts = [f"synthetic example {n}" for n in range(2000)]
    share = sum(map(held_out, texts)) / len(texts)
    assert 0.17 < share < 0.23
    assert [held_out(t) for t in texts[:50]] == [held_out(t) for t in texts[:50]]


def test_config_uses_the_calibrated_thresholds():
    doc = clarify.thresholds(ROOT / "data" / "nlu_thresholds.yml")
    used = config_thresholds(ROOT / "config.yml")
    assert used["answer"] == doc.answer and used["ambiguity"] == doc.ambiguity
    assert used["DateOfBirthGuard"] == doc.answer and used["EmergencyIntentGuard"] == doc.answer
    assert 0 < doc.ask <= doc.answer
