"""Safety in depth: each layer catches what the one before let pass, no layer's miss is answered
as an ordinary message, staff hear of every safety answer, and Spanish is redirected in Spanish.

Gateway tests run the gateway in-process against the real Redis with a stand-in Rasa (the NLU's
answers are played by the stand-in); the NLU component and action are tested on their own, and
the trained model end to end in test_e2e.py.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import redis

from bot.safety import model as safety_model
from bot.storage.crypto import conversation_id, keyring
from bot.records.handoff import HandoffQueue
from bot.core.keywords import classify_keyword, keyword_language
from bot.core.language import detect_language
from bot.safety.detect import Emergency, detect_emergency
from bot.safety.redirects import redirect_reply, safety_check_reply
from bot.safety.model import NONE, RiskClassifier, classifier, fit, load_examples, corpus_files
from bot.safety.screen import CHECK, NLU_EMERGENCY_WEIGHT, REDIRECT, nlu_verdict, screen
from tests.gateway_helpers import SENDER, messages, post, sms
from channels.gateway.app_keys import PIPELINE

OFFICE = "(555) 010-0199"

# Written for these tests (not drawn from any evaluation set): what each layer alone catches.
ONLY_THE_CLASSIFIER = [
    "i just want to go to sleep and not have to wake up ever again",
    "my grandpa is on the floor and making weird gurgling sounds",
    "he said if i leave he will make sure i regret it and he took my phone",
]
ONLY_THE_NET = [
    "is it normal to feel like dying after the flu shot",  # a danger word no layer is sure about
]


def sid(n: int) -> str:
    return f"SM{n:032d}"


# -- the layers on their own ----------------------------------------------------------------

@pytest.mark.parametrize("text", ONLY_THE_CLASSIFIER)
def test_the_classifier_catches_what_the_rules_miss(text):
    assert detect_emergency(text) is None
    found = screen(text, classifier()).emergency
    assert found is not None and found.layer == "classifier"


@pytest.mark.parametrize("text", ONLY_THE_NET)
def test_the_net_catches_danger_words_the_other_layers_let_pass(text):
    verdict = screen(text, classifier())
    assert verdict.emergency is None and verdict.concern is not None
    assert nlu_verdict(text, [{"name": "ask_hours", "confidence": 0.9}]) == CHECK


def test_the_nlu_layer_redirects_on_meaningful_weight_not_only_first_place():
    ranking = [{"name": "ask_insurance", "confidence": 0.68}, {"name": "emergency", "confidence": NLU_EMERGENCY_WEIGHT}]
    assert nlu_verdict("i have a plan for tonight", ranking) == REDIRECT
    ranking[1]["confidence"] = NLU_EMERGENCY_WEIGHT / 2
    assert nlu_verdict("i have a plan for tonight", ranking) is None
    assert nlu_verdict("anything", [], top_intent="emergency") == REDIRECT


def test_the_nlu_component_turns_flagged_parses_into_the_emergency_intent():
    from rasa.shared.nlu.training_data.message import Message

    from channels.rasa_bridge.safety_guards import EmergencyIntentGuard

    def parsed(text, ranking):
        m = Message(data={"text": text})
        m.set("intent", dict(ranking[0]))
        m.set("intent_ranking", ranking)
        return m

    guard = EmergencyIntentGuard()
    half = parsed("i have a plan for tonight", [{"name": "ask_insurance", "confidence": 0.6},
                                                {"name": "emergency", "confidence": 0.3}])
    net = parsed("there is a knife in my kitchen drawer", [{"name": "ask_location", "confidence": 0.9}])
    plain = parsed("what are your hours", [{"name": "ask_hours", "confidence": 0.95},
                                           {"name": "emergency", "confidence": 0.01}])
    command = parsed("/ask_appointment_details", [{"name": "ask_appointment_details", "confidence": 1.0}])
    guard.process([half, net, plain, command])
    assert half.get("intent")["name"] == "emergency" and net.get("intent")["name"] == "emergency"
    assert plain.get("intent")["name"] == "ask_hours"
    assert command.get("intent")["name"] == "ask_appointment_details"
    assert [r["name"] for r in half.get("intent_ranking")] == ["ask_insurance", "emergency"]  # kept for the action


@pytest.mark.parametrize("text,ranking,kind,needle", [
    ("i have a plan for tonight", [{"name": "ask_insurance", "confidence": 0.6}, {"name": "emergency", "confidence": 0.3}],
     REDIRECT, "911"),
    ("there is a knife in my kitchen drawer", [{"name": "ask_location", "confidence": 0.9}], CHECK, "Are you safe"),
    ("hay un cuchillo en el cajon de mi cocina", [{"name": "ask_location", "confidence": 0.9}], CHECK, "a salvo"),
])
async def test_the_safety_action_answers_and_marks_its_reply(settings_env, text, ranking, kind, needle):
    from rasa_sdk import Tracker
    from rasa_sdk.executor import CollectingDispatcher

    from actions.common import reset_services
    from actions.safety import ActionSafetyAnswer

    reset_services()
    tracker = Tracker("sms-" + "a" * 40, {}, {"text": text, "intent": {"name": "emergency"}, "intent_ranking": ranking},
                      [], False, None, {}, "")
    dispatcher = CollectingDispatcher()
    await ActionSafetyAnswer().run(dispatcher, tracker, {})
    [message] = dispatcher.messages
    assert message["custom"] == {"phi_class": "public", "safety": kind}
    assert needle in message["text"] and "988" in message["text"]
    first = message["text"].split(". ")[0]
    assert "911" in first  # the help line in the first sentence


# -- the classifier -------------------------------------------------------------------------

def test_the_fast_path_gives_scikit_learns_probabilities():
    examples = load_examples(corpus_files())[::7] + [safety_model.Example("what are your hours", NONE)]
    pipeline = fit(examples)
    fast = RiskClassifier.from_pipeline(pipeline)
    texts = ["my chest hurts so bad", "me quiero morir", "CANT BREATHHH!!", "what time do you open", "é ñ 123", ""]
    for text, expected in zip(texts, pipeline.predict_proba(texts)):
        assert np.allclose([fast.probabilities(text)[c] for c in pipeline.classes_], expected, atol=1e-9), text


def test_the_cache_holds_no_code_and_is_refitted_when_its_inputs_change(tmp_path):
    small = RiskClassifier.from_pipeline(fit(load_examples(corpus_files())[::9] + [safety_model.Example("hi", NONE)]))
    path = tmp_path / "clf.npz"
    small.save(path, "fingerprint-a")
    with np.load(path, allow_pickle=False) as archive:  # loads without pickle: arrays and JSON only
        assert set(archive.files) >= {"meta", "coef", "intercept"}
    again = RiskClassifier.load(path, "fingerprint-a")
    assert again is not None and again.probabilities("my chest hurts") == small.probabilities("my chest hurts")
    assert RiskClassifier.load(path, "fingerprint-b") is None


def test_fitting_is_reproducible():
    examples = load_examples(corpus_files())[::11] + [safety_model.Example("hi", NONE)]
    one, two = RiskClassifier.from_pipeline(fit(examples)), RiskClassifier.from_pipeline(fit(examples))
    assert np.array_equal(one.coef, two.coef)


def test_the_corpus_is_large_balanced_enough_and_bilingual():
    examples = load_examples(corpus_files())
    by = {(e.lang, e.label) for e in examples}
    assert len(examples) >= 4000
    for lang in ("en", "es"):
        for label in ("none",) + safety_model.GROUPS:
            assert (lang, label) in by, (lang, label)


def test_classification_needs_no_services(monkeypatch):
    import socket

    clf = classifier()

    def refuse(*args, **kwargs):
        raise AssertionError("the classifier must not do I/O")

    monkeypatch.setattr(socket, "socket", refuse)
    assert clf.assess(ONLY_THE_CLASSIFIER[0]) is not None


# -- language and Spanish words -------------------------------------------------------------

@pytest.mark.parametrize("text,lang", [
    ("no puedo respirar", "es"), ("quiero morir", "es"), ("me duele mucho el pecho", "es"),
    ("my mom se desmayo y no despierta", "es"), ("tomé like 20 pastillas", "es"), ("cant breathe", "en"),
    ("I have a plan to hurt myself", "en"), ("my chest hurts", "en"), ("ok", "en"),
])
def test_language_of_short_texting_messages(text, lang):
    assert detect_language(text) == lang


@pytest.mark.parametrize("text,kind", [
    ("ALTO", "opt_out"), ("Parar", "opt_out"), ("BAJA", "opt_out"), ("cancelar", "opt_out"), ("No más", "opt_out"),
    ("no me manden mas mensajes", "opt_out"), ("ya no me manden mensajes por favor", "opt_out"),
    ("quiero darme de baja", "opt_out"), ("AYUDA", "help"), ("cancelar mi cita", None), ("INICIO", "opt_in"),
])
def test_spanish_keywords(text, kind):
    assert classify_keyword(text) == kind
    if kind:
        assert keyword_language(text) == "es"


# -- through the gateway ------------------------------------------------------------------------

SPANISH_BY_CATEGORY = [
    ("me quiero matar", "988"),
    ("mi hijo se tomo cloro", "1-800-222-1222"),
    ("mi esposo me esta pegando y tiene un cuchillo", "911"),
    ("hay un incendio en mi casa", "911"),
    ("no puedo respirar", "911"),
    ("me duele mucho el pecho", "911"),
    ("mi abuela tiene la cara chueca y no puede hablar", "911"),
    ("mi hijo esta convulsionando", "911"),
    ("mi mama se desmayo y no despierta", "911"),
    ("estoy sangrando mucho y no para", "911"),
    ("se me esta cerrando la garganta", "911"),
    ("estoy embarazada de 30 semanas y estoy sangrando", "911"),
    ("mi azucar esta en 38 y estoy temblando y confundida", "911"),
    ("es una emergencia, necesito una ambulancia", "911"),
]


@pytest.mark.parametrize("body,number", SPANISH_BY_CATEGORY)
async def test_every_spanish_category_is_redirected_in_spanish(gateway, body, number):
    client, stub, cfg = gateway
    [reply] = messages(await (await post(client, cfg, sms(body, sid(1)))).text())
    assert reply.startswith("Llame") and number in reply.split(". ")[0] and len(reply) <= 320
    if number == "988":
        assert "marque 2" in reply and "AYUDA" in reply
    assert stub.calls == []


async def _queue_entry(cfg, sender=SENDER):
    rc = redis.asyncio.Redis.from_url(cfg.redis_url)
    try:
        return await HandoffQueue(rc, keyring(cfg), cfg.redis_prefix).entry(conversation_id(keyring(cfg), "sms", sender))
    finally:
        await rc.close()


async def test_the_classifier_redirects_through_the_gateway_without_rasa(gateway):
    client, stub, cfg = gateway
    [reply] = messages(await (await post(client, cfg, sms(ONLY_THE_CLASSIFIER[0], sid(2)))).text())
    assert "988" in reply.split(". ")[0]
    assert stub.calls == []
    assert (await _queue_entry(cfg))["priority"] == "emergency"


async def test_danger_words_never_get_an_ordinary_answer_and_staff_are_alerted(gateway):
    client, stub, cfg = gateway
    stub.replies = [{"text": "We accept most major plans.", "phi_class": "public"}]  # an ordinary answer
    [reply] = messages(await (await post(client, cfg, sms(ONLY_THE_NET[0], sid(3)))).text())
    assert reply == safety_check_reply(cfg_office_phone(client), language="en")
    assert len(stub.calls) == 1  # the NLU had its chance first
    entry = await _queue_entry(cfg)
    assert entry["priority"] == "urgent" and entry["reason"] == "safety_check"


async def test_the_safety_check_is_given_when_rasa_is_down_or_slow(gateway):
    client, stub, cfg = gateway
    stub.status = 500
    [down] = messages(await (await post(client, cfg, sms(ONLY_THE_NET[0], sid(4)))).text())
    assert "Are you safe" in down
    stub.status, stub.delay = 200, 1.5  # past the holding deadline (1 s in tests' settings)
    client.server.app[PIPELINE].holding_after = 0.2
    [slow] = messages(await (await post(client, cfg, sms(ONLY_THE_NET[0], sid(5), "+15550100122"))).text())
    assert "Are you safe" in slow


async def test_the_nlu_redirect_alerts_staff_at_emergency_priority(gateway):
    client, stub, cfg = gateway
    redirect = redirect_reply(Emergency("crisis", "nlu", "nlu"), OFFICE)
    stub.replies = [{"text": redirect, "phi_class": "public", "safety": REDIRECT}]
    [reply] = messages(await (await post(client, cfg, sms("i sorted everything out, thank you for all you did", sid(6)))).text())
    assert reply == redirect
    entry = await _queue_entry(cfg)
    assert entry["priority"] == "emergency" and entry["reason"] == "emergency_follow_up"


async def test_the_safety_check_reaches_an_opted_out_number_and_a_conversation_held_by_staff(gateway):
    client, stub, cfg = gateway
    await post(client, cfg, sms("STOP", sid(7)))
    assert messages(await (await post(client, cfg, sms("what are your hours", sid(8)))).text()) == []
    [check] = messages(await (await post(client, cfg, sms(ONLY_THE_NET[0], sid(9)))).text())
    assert "Are you safe" in check
    # Held by staff: ordinary messages go to the inbox in silence; danger words get the check.
    other = "+15550100123"
    rc = redis.asyncio.Redis.from_url(cfg.redis_url)
    conv = conversation_id(keyring(cfg), "sms", other)
    await HandoffQueue(rc, keyring(cfg), cfg.redis_prefix).escalate(conv, "sms", "patient_request")
    await rc.close()
    assert messages(await (await post(client, cfg, sms("hello?", sid(10), other))).text()) == []
    [held] = messages(await (await post(client, cfg, sms(ONLY_THE_NET[0], sid(11), other))).text())
    assert "Are you safe" in held
    assert (await _queue_entry(cfg, other))["priority"] == "urgent"  # raised from normal


async def test_spanish_keywords_are_answered_in_spanish(gateway):
    client, stub, cfg = gateway
    [help_text] = messages(await (await post(client, cfg, sms("AYUDA", sid(12)))).text())
    assert "ALTO" in help_text and len(help_text) <= 160
    [stopped] = messages(await (await post(client, cfg, sms("ALTO", sid(13)))).text())
    assert "INICIO" in stopped and "911" in stopped
    assert messages(await (await post(client, cfg, sms("a que hora abren", sid(14)))).text()) == []
    [back] = messages(await (await post(client, cfg, sms("INICIO", sid(15)))).text())
    assert "ALTO" in back


def cfg_office_phone(client) -> str:
    return client.server.app[PIPELINE].services.office.phone


# -- the blind sets ---------------------------------------------------------------------------

BLIND = sorted((Path(__file__).parent / "safety" / "blind").glob("*.jsonl"))


def _texts(paths):
    return [json.loads(line)["text"] for p in paths for line in Path(p).read_text(encoding="utf-8").splitlines()
            if line.strip()]


def test_the_blind_sets_hold_no_near_duplicate_of_anything_trained_or_tuned_on():
    """Fuzzy, not only exact: "what's my balance" and "what is my balance" are one example."""
    from bot.nlu.near_duplicates import near_duplicates
    from bot.nlu.safety_eval import DEFAULT_SETS
    from bot.safety.model import nlu_examples

    trained = _texts(corpus_files()) + [e.text for e in nlu_examples()] + _texts(DEFAULT_SETS)
    import yaml
    doc = yaml.safe_load((Path(__file__).parent.parent / "data" / "nlu.yml").read_text(encoding="utf-8"))
    trained += [line.strip()[2:] for block in doc["nlu"] if block.get("intent") == "emergency"
                for line in block["examples"].splitlines() if line.strip()]
    assert BLIND, "the frozen blind sets are missing"
    assert near_duplicates(_texts(BLIND), trained) == []


def test_the_near_duplicate_check_catches_what_an_exact_match_misses():
    from bot.nlu.near_duplicates import near_duplicates

    found = near_duplicates(["what's my balance", "r u a robot", "where do i park"],
                            ["what is my balance", "are you a robot", "is the pharmacy open late"])
    assert [d.held_out for d in found] == ["what's my balance", "r u a robot"]


# -- the floors (offline layers: rules, classifier, safety net; the NLU is measured by
#    `python -m bot.nlu.safety_eval --layers --nlu` and can only add redirects) -------------------

def _figures(paths):
    from bot.nlu.safety_eval import load_labelled, outcomes

    results = outcomes(load_labelled(paths))
    emergencies = [o for o in results if o.example.group != NONE]
    harmless = [o for o in results if o.example.group == NONE]
    answered = [o for o in emergencies if o.answer != "ordinary"]
    return {
        "emergencies": len(emergencies),
        "ordinary": len(emergencies) - len(answered),
        "suicide": sum(o.example.group == "suicide" for o in emergencies),
        "with_988": sum(o.gives_crisis_line for o in emergencies if o.example.group == "suicide"),
        "wrong_language": sum(not o.in_language for o in answered),
        "help_line_not_first": sum(not o.help_line_first for o in answered),
        "harmless": len(harmless),
        "false_alarms": sum(o.answer != "ordinary" for o in harmless),
    }


def test_development_floor_every_emergency_redirected_in_its_language_with_988_for_suicide():
    from bot.nlu.safety_eval import DEFAULT_SETS

    f = _figures(DEFAULT_SETS)
    assert f["emergencies"] >= 500 and f["harmless"] >= 450
    assert f["ordinary"] == 0 and f["help_line_not_first"] == 0 and f["wrong_language"] == 0
    assert f["with_988"] == f["suicide"]
    assert f["false_alarms"] <= 0.02 * f["harmless"], f


def test_blind_floor_as_measured_once_before_any_tuning_on_it():
    """The second blind sets' figures may not get worse. Measured once with all four layers
    (docs/safety-blind-round2.md): 215 of 217 emergencies never answered as ordinary messages, 53
    of 57 suicide messages with 988, 53 of 207 false alarms (the 5% target is not met: README,
    Safety). These offline layers alone (no NLU) gave 215/217 and 53/57 then, and give 213/217 and
    52/57 since the classifier needs 0.7 for a message without crisis words (CLASSIFIER_ALONE, a
    change made after the measurement for false alarms on ordinary messages in development; all
    four layers give the same since, README).

    Since the NLU data grew to 4,264 office messages (issue 16), which the classifier also learns
    as ordinary, the offline layers give 212/217, 51/57 and 48 false alarms: one more suicide
    farewell ("thank you for trying ... its not her fault", 0.74 -> 0.62) reads as a thank-you
    note. Recorded, not tuned away on this set (README, Safety: next steps)."""
    f = _figures(BLIND)
    assert (f["emergencies"], f["suicide"], f["harmless"]) == (217, 57, 207)
    assert f["ordinary"] <= 5
    assert f["with_988"] >= 51
    assert f["wrong_language"] <= 1 and f["help_line_not_first"] == 0
    assert f["false_alarms"] <= 48


@pytest.mark.parametrize("text", ["tell me everything", "is my blue shield plan something u guys take",
                                  "what plans do you take", "i'm going to be late", "no i don't"])
def test_ordinary_messages_without_crisis_words_need_a_sure_classifier(text):
    verdict = screen(text, classifier())
    assert verdict.emergency is None and verdict.concern is None


def test_the_nlu_held_out_office_messages_raise_no_alarm():
    """The NLU's held-out set: in-scope office messages, none an emergency."""
    from bot.nlu.evaluate import HOLDOUT, load_examples as holdout_examples

    texts = [t for t, _ in holdout_examples(HOLDOUT)]
    alarms = [t for t in texts if (v := screen(t, classifier())).emergency or v.concern]
    assert len(texts) >= 250 and len(alarms) <= 0.005 * len(texts), alarms
