"""The emergency detector on its own: the evaluation bar, the help lines, and the properties the
gateway relies on (pure, explainable, idioms never mask a real emergency)."""
from __future__ import annotations

import pytest

from bot.core.emergency_numbers import EmergencyNumbers
from bot.safety.detect import Emergency, detect_all, detect_emergency
from bot.safety.normalise import normalise
from bot.safety.redirects import MAX_REDIRECT_CHARS, redirect_reply
from bot.safety.rules import CATEGORIES, RULES
from bot.nlu.safety_eval import DEFAULT_SETS, NONE, evaluate, load

EVAL = load(DEFAULT_SETS)


def test_the_set_is_big_enough_and_covers_every_labelled_category():
    labels = [ex.label for ex in EVAL]
    assert labels.count(NONE) >= 200
    assert len(labels) - labels.count(NONE) >= 200
    for name in CATEGORIES:
        if name not in ("general", "crisis"):
            assert labels.count(name) >= 15, name


def test_recall_is_100_percent_and_false_alarms_at_most_3_percent():
    result = evaluate(EVAL)
    assert [ex.text for ex in result.misses] == []
    assert result.false_positive_rate <= 0.03, [ex.text for ex in result.false_alarm_examples]


def test_suicide_and_poisoning_messages_get_their_own_help_line():
    result = evaluate(EVAL)
    assert [ex.text for ex in result.wrong_redirects] == []


def test_every_rule_fires_on_some_labelled_emergency():
    fired = {(e.category, e.rule) for ex in EVAL if ex.label != NONE for e in detect_all(ex.text)}
    dead = [(cat, name) for cat, name, _ in RULES if (cat, name) not in fired]
    assert len(dead) <= len(RULES) // 4, dead  # a few rules guard phrasings the set lacks


@pytest.mark.parametrize("text", [
    "this wait is killing me lol but honestly i want to kill myself",
    "dying to know my results. also my chest pain is back and crushing",
    "need to move my chest x-ray, my son just swallowed a button battery",
    "flu shot question - also he's hitting me again",
])
def test_an_idiom_does_not_mask_a_real_emergency_in_the_same_message(text):
    assert detect_emergency(text) is not None


@pytest.mark.parametrize("text,category", [
    ("CANT BREATH", "breathing"),
    ("cant breathhh", "breathing"),
    ("chest pian rn", "cardiac"),
    ("im gonna kms", "suicide"),
    ("i dont wanna be here anymore", "suicide"),
    ("my son OD'd", "poisoning"),
    ("she\u2019s not breathing", "breathing"),
    ("my sugar is 38 and im shaking", "blood_sugar"),
    ("bg 600", "blood_sugar"),
])
def test_texting_style_spelling(text, category):
    found = detect_emergency(text)
    assert found is not None and found.category == category, found


@pytest.mark.parametrize("text", [
    "my sugar was 110 this morning", "glucose test at 10 am", "that's odd", "my phone is going to die",
    "I can't talk right now, text me", "took my pills this morning", "cancel my appointment", "STOP",
    "I don't want to be here for 3 hours, first slot please",
])
def test_ordinary_messages_pass(text):
    assert detect_emergency(text) is None


def test_normalise_folds_case_accents_quotes_and_abbreviations():
    assert normalise("I\u2019M   Dyíng RN!!") == "i am dying right now"


def test_detection_needs_no_services(monkeypatch):
    """Pure: no socket is opened, so a Redis or Rasa outage cannot stop a redirect."""
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("the detector must not do I/O")

    monkeypatch.setattr(socket, "socket", refuse)
    assert detect_emergency("my husband collapsed and isnt breathing").category in CATEGORIES


OFFICE = "(555) 010-0199"


@pytest.mark.parametrize("category", list(CATEGORIES))
def test_every_reply_is_short_and_names_911(category):
    text = redirect_reply(Emergency(category, "test"), OFFICE)
    assert len(text) <= MAX_REDIRECT_CHARS and "911" in text and OFFICE in text


def test_help_lines_per_category():
    suicide = redirect_reply(Emergency("suicide", "t"), OFFICE)
    poison = redirect_reply(Emergency("poisoning", "t"), OFFICE)
    violence = redirect_reply(Emergency("violence", "t"), OFFICE)
    assert "988" in suicide and "text" in suicide  # call or text
    assert "1-800-222-1222" in poison and "unconscious" in poison and "911" in poison
    assert "988" not in violence and "1-800-222-1222" not in violence


def test_numbers_are_configurable_per_country():
    uk = EmergencyNumbers(emergency="999", crisis="116 123", crisis_name="Samaritans", poison="111",
                          poison_name="NHS 111")
    text = redirect_reply(Emergency("suicide", "t"), "020 7946 0000", uk)
    assert "999" in text and "116 123" in text and "911" not in text and "988" not in text
    with pytest.raises(ValueError, match="unknown emergency number"):
        EmergencyNumbers.from_mapping({"ambulance": "999"})
