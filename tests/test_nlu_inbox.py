"""The admins' review inbox, PHI scrubber, tidy training data and the training gate.

Real Redis (per-test prefix); the project's data/ is only read, every write goes to a copy in a
temporary directory. All people, numbers and dates here are synthetic (555-01xx numbers).
"""
from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from bot.config import ROOT
from bot.nlu.data import DataError, NluFile, add_example, check_training_data, known_intents
from bot.nlu.evaluate import load_examples
from bot.nlu.scrub import Scrubber, names_from_patients

NAMES = frozenset({"alex", "demopatient", "jordan", "samplename", "may"})
SCRUB = Scrubber(NAMES)

# Synthetic PHI a patient might text, and what must be gone from it.
PHI_MESSAGES = [
    ("call me back at 555-010-0101", "555", "phone"),
    ("my cell is (212) 555-0142 thanks", "0142", "phone"),
    ("text +1 555 010 0199 instead", "0199", "phone"),
    ("my dob is 03/14/1962", "1962", "date"),
    ("born March 14 1962 btw", "1962", "date"),
    ("birthday 3/14", "3/14", "date"),
    ("email me at alex.demopatient@example.com", "example.com", "email"),
    ("my mrn is 00412345", "00412345", "id"),
    ("MRN: DEMO-0001", "0001", "id"),
    ("member id 8812345", "8812345", "id"),
    ("I moved to 12 Oak Street Apt 4", "Oak", "address"),
    ("new address 4400 north maple ave", "maple", "address"),
    ("zip is 02139", "02139", "address"),
    ("this is Alex Demopatient", "Demopatient", "name"),
    ("this is alex demopatient", "demopatient", "name"),
]


@pytest.mark.parametrize("text,fragment,kind", PHI_MESSAGES)
def test_scrubber_removes_phi_and_names_the_kind(text, fragment, kind):
    scrubbed = SCRUB.scrub(text)
    assert fragment.lower() not in scrubbed.lower()
    assert f"[{kind}]" in scrubbed
    assert kind in SCRUB.findings(text)
    assert SCRUB.findings(scrubbed) == set()  # placeholders are not findings


@pytest.mark.parametrize("text", [
    "appt at 3 with dr jones", "running 10 min late on main st", "my appt at 3 pm on main street",
    "is there 1 more way in", "ill be 2 hours late", "can i bring my 2 kids", "do u take medicaid",
])
def test_scrubber_leaves_everyday_texts_alone(text):
    assert SCRUB.scrub(text) == text and SCRUB.findings(text) == set()


def test_scrubber_keeps_ordinary_words_and_common_word_names_in_lower_case():
    assert SCRUB.scrub("running 10 min late, may I still come?") == "running 10 min late, may I still come?"
    assert SCRUB.scrub("May called about parking") == "[name] called about parking"
    assert SCRUB.findings("what are your hours on saturday") == set()


def test_no_false_positive_on_the_projects_own_examples():
    """The repository's training data passes the training gate (a gate that refused the real
    data would be switched off); provide_dob's synthetic date shapes are the one exemption."""
    assert check_training_data(ROOT, SCRUB) == []


def test_names_come_from_the_sealed_patient_records(settings_env, redis_sync, prefix):
    from bot.records.appointments import AppointmentStore
    from bot.storage.crypto import keyring
    from bot.records.fhir import load_bundle_file
    from bot.nlu.scrub import patient_names
    from bot.storage.redis_client import async_redis

    async def run():
        client = async_redis()
        try:
            await AppointmentStore(client, keyring(), prefix).import_bundle(
                load_bundle_file(ROOT / "data" / "demo" / "synthetic_bundle.json"), "test")
            return await patient_names(client, keyring(), prefix)
        finally:
            await client.close()

    names = asyncio.run(run())
    assert {"alex", "demopatient"} <= names
    assert Scrubber(names).scrub("hi its Alex Demopatient") == "hi its [name] [name]"
    assert names_from_patients([{"given": "Mary-Ann", "family": "O'Example"}]) == {"mary-ann", "o'example"}


# -- inbox -------------------------------------------------------------------------------------
def with_inbox(fn):
    """Run ``fn(inbox)`` in a fresh event loop with its own Redis client."""
    from bot.config import settings
    from bot.storage.crypto import keyring
    from bot.nlu.inbox import ReviewInbox
    from bot.storage.redis_client import async_redis

    async def run():
        cfg = settings()
        inbox = ReviewInbox(async_redis(cfg), keyring(cfg), cfg.redis_prefix, cfg.nlu_inbox_days)
        try:
            return await fn(inbox)
        finally:
            await inbox.redis.close()

    return asyncio.run(run())


def _dump(redis_sync, prefix) -> bytes:
    out = b""
    for key in redis_sync.scan_iter(match=f"{prefix}*"):
        kind = redis_sync.type(key)
        out += key
        if kind == b"hash":
            out += b"".join(k + v for k, v in redis_sync.hgetall(key).items())
        elif kind == b"zset":
            out += b"".join(redis_sync.zrange(key, 0, -1))
        elif kind == b"string":
            out += redis_sync.get(key)
        elif kind == b"stream":
            out += b"".join(k + v for _, f in redis_sync.xrange(key) for k, v in f.items())
    return out


def test_inbox_seals_groups_expires_and_shows_only_scrubbed_text(settings_env, redis_sync, prefix):
    text = "can u move me, Alex Demopatient 555-010-0101"

    async def run(inbox):
        first = await inbox.capture(text, "reschedule_appointment", 0.41, "low_confidence", at=1000.0)
        again = await inbox.capture(text.upper(), "nlu_fallback", 0.2, "fallback", at=2000.0)
        other = await inbox.capture("wat r ur hrs", "ask_hours", 0.55, "low_confidence", at=1500.0)
        items = await inbox.items(SCRUB)
        return first, again, other, items

    first, again, other, items = with_inbox(run)
    assert first == again != other  # the same message (any case) is one item with a count
    assert [i.id for i in items] == [first, other]  # most recent first
    item = items[0]
    assert item.count == 2 and item.reason == "fallback" and item.predicted == "nlu_fallback"
    assert item.text == "can u move me, [name] [name] [phone]"
    dump = _dump(redis_sync, prefix)
    for secret in (b"Demopatient", b"DEMOPATIENT", b"0101", b"move me", b"hrs"):
        assert secret not in dump
    ttl = redis_sync.ttl(f"{prefix}nlu-inbox:item:{first}")
    assert 29 * 86400 < ttl <= 30 * 86400


def test_inbox_text_is_bound_to_its_key_and_removal_deletes_it(settings_env, redis_sync, prefix):
    from bot.storage.crypto import DecryptionError, keyring

    async def capture(inbox):
        return (await inbox.capture("one", "greet", 0.3, "low_confidence"),
                await inbox.capture("two", "greet", 0.3, "low_confidence"))

    one, two = with_inbox(capture)
    token = redis_sync.hget(f"{prefix}nlu-inbox:item:{one}", "text").decode()
    with pytest.raises(DecryptionError):  # moved under another item it does not open
        keyring().decrypt_text(token, f"{prefix}nlu-inbox:item:{two}#text")

    async def remove(inbox):
        return await inbox.remove(one), await inbox.remove(one), await inbox.items(SCRUB)

    removed, again, items = with_inbox(remove)
    assert removed and not again
    assert [i.id for i in items] == [two]
    assert not redis_sync.exists(f"{prefix}nlu-inbox:item:{one}")


@pytest.mark.parametrize("intent,confidence,expected", [
    ("nlu_fallback", 0.3, "fallback"), (None, None, "fallback"), ("ask_hours", 0.55, "low_confidence"),
    ("ask_hours", 0.95, None),
])
def test_review_reason(intent, confidence, expected):
    from bot.nlu.inbox import review_reason

    assert review_reason(intent, confidence, 0.7) == expected


# -- capture on the Rasa side ------------------------------------------------------------------
class _Store:
    def __init__(self, tracker=None, fail=False):
        self.tracker, self.fail = tracker, fail

    async def retrieve(self, sender):
        if self.fail:
            raise RuntimeError("redis down")
        return self.tracker


class _Agent:
    def __init__(self, store):
        self.tracker_store = store


def _tracker(text, intent, confidence, ranking=()):
    from rasa.shared.core.events import UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    parse = {"intent": {"name": intent, "confidence": confidence}, "text": text,
             "intent_ranking": [{"name": n, "confidence": c} for n, c in ranking]}
    return DialogueStateTracker.from_events("conv-x", [UserUttered(text, parse["intent"], parse_data=parse)])


def test_capture_keeps_fallbacks_and_unsure_parses_not_confident_ones(settings_env, redis_sync, prefix, caplog):
    from channels.rasa_bridge import nlu_capture

    nlu_capture.reset()

    async def run():
        fell = await nlu_capture.capture_latest_turn(_Agent(_Store(_tracker(
            "is the doc in on [date]", "nlu_fallback", 0.5, [("nlu_fallback", 0.5), ("ask_hours", 0.31)]))), "c1")
        sure = await nlu_capture.capture_latest_turn(_Agent(_Store(_tracker("hi", "greet", 0.99))), "c2")
        broken = await nlu_capture.capture_latest_turn(_Agent(_Store(fail=True)), "c3")
        items = await nlu_capture._review_inbox().items(SCRUB)
        await nlu_capture._review_inbox().redis.close()
        return fell, sure, broken, items

    fell, sure, broken, items = asyncio.run(run())
    nlu_capture.reset()
    assert fell and sure is None and broken is None
    assert len(items) == 1
    assert (items[0].reason, items[0].predicted, items[0].confidence) == ("fallback", "ask_hours", 0.31)
    assert items[0].text == "is the doc in on [date]"
    assert "review inbox capture failed for conversation c3: RuntimeError" in caplog.text


# -- tidy training data ------------------------------------------------------------------------
@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project's Rasa inputs (data/, domain.yml, config.yml, held-out set)."""
    shutil.copytree(ROOT / "data", tmp_path / "data", ignore=shutil.ignore_patterns("demo"))
    for name in ("domain.yml", "config.yml"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "tests" / "nlu").mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "nlu" / "holdout.yml", tmp_path / "tests" / "nlu" / "holdout.yml")
    return tmp_path


def test_rewriting_keeps_every_example_and_sorts(project):
    path = project / "data" / "nlu.yml"
    before = sorted(load_examples(path))
    NluFile(path).write()
    assert sorted(load_examples(path)) == before
    text = path.read_text()
    assert text.startswith('version: "3.1"\n')
    intents = [line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("  - intent: ")]
    assert intents == sorted(intents)
    NluFile(path).write()
    assert path.read_text() == text  # idempotent


def test_add_example_is_tidy_and_refuses_what_it_must(project):
    holdout = project / "tests" / "nlu" / "holdout.yml"
    assert add_example(project, "ask_hours", "when do  yall open up", SCRUB, holdout) is True
    assert add_example(project, "ask_hours", "when do yall open up", SCRUB, holdout) is False  # no duplicate
    examples = [t for t, i in load_examples(project / "data" / "nlu.yml") if i == "ask_hours"]
    assert examples.count("when do yall open up") == 1
    assert examples == sorted(examples, key=lambda e: (" ".join(e.casefold().split()), e))
    greet = next(t for t, i in load_examples(project / "data" / "nlu.yml") if i == "greet")
    with pytest.raises(DataError, match="already an example of greet"):
        add_example(project, "ask_hours", greet.upper(), SCRUB, holdout)
    with pytest.raises(DataError, match="not an intent of domain.yml"):
        add_example(project, "ask_weather", "is it raining", SCRUB, holdout)
    with pytest.raises(DataError, match="still contains date, phone"):
        add_example(project, "ask_hours", "open on 3/14/2027? call 555-010-0101", SCRUB, holdout)
    held_text, held_intent = load_examples(holdout)[0]
    with pytest.raises(DataError, match="held-out"):
        add_example(project, held_intent, held_text, SCRUB, holdout)
    # Rasa would read "[phone](x)" as an entity annotation: never written that way.
    assert add_example(project, "ask_hours", "[date](tomorrow) hours", SCRUB, holdout)
    assert "[date] (tomorrow) hours" in (project / "data" / "nlu.yml").read_text()


def test_training_gate_names_kinds_not_text(project):
    path = project / "data" / "nlu.yml"
    nlu = NluFile(path)
    nlu.intents["ask_hours"].append("pls call 555-010-0199")
    nlu.intents["greet"].append("what are your hours")
    nlu.intents["ask_hours"].append("what are your hours")
    nlu.write()
    problems = check_training_data(project, SCRUB)
    assert any("intent ask_hours" in p and "contains phone" in p for p in problems)
    assert any("more than one intent (ask_hours, greet)" in p for p in problems)
    assert not any(text in p for p in problems for text in ("555", "pls call", "what are your"))
    assert "ask_hours" in known_intents(project)


def test_train_command_refuses_flagged_data_and_audits(project, settings_env, capsys):
    from bot.storage.audit import AuditLog
    from bot.storage.crypto import keyring
    from bot.cli.common import cli_actor
    from bot.nlu.training import train_command
    from bot.storage.redis_client import async_redis

    nlu = NluFile(project / "data" / "nlu.yml")
    nlu.intents["ask_hours"].append("my number is 555-010-0177")
    nlu.write()
    models = project / "models"
    assert train_command(project, models, actor=cli_actor(), force=True) == 1
    assert not models.exists()  # nothing trained
    err = capsys.readouterr().err
    assert "training refused" in err and "contains phone" in err and "0177" not in err

    async def events():
        client = async_redis()
        try:
            return await AuditLog(client, keyring(), settings_env["REDIS_PREFIX"]).events()
        finally:
            await client.close()

    (event,) = asyncio.run(events())
    assert (event.action, event.outcome, event.details) == ("model_training_refused", "refused", {"problems": 1})
    assert event.actor.startswith("admin:cli:")


def test_rasa_validation_failure_refuses_training(project, settings_env):
    """An example of an intent domain.yml does not declare: rasa data validate
    --fail-on-warnings flags it, and the gate refuses (runs Rasa's validator, ~20 s)."""
    from bot.nlu.training import TrainingRefused, check

    check(project, SCRUB)  # the copy as it is passes
    nlu = NluFile(project / "data" / "nlu.yml")
    nlu.intents["ask_weather"] = ["is it raining", "whats the weather"]
    nlu.write()
    with pytest.raises(TrainingRefused) as refused:
        check(project, SCRUB)
    assert refused.value.problems[0] == "rasa data validate --fail-on-warnings failed"
    assert any("ask_weather" in p for p in refused.value.problems[1:])


# -- the CLI -----------------------------------------------------------------------------------
def test_cli_inbox_label_add_discard(project, settings_env, redis_sync, prefix, capsys):
    from bot.cli import main

    phi_text = "can I come earlier, I'm Alex Demopatient dob 01/01/1980 cell 555-010-0101"

    async def capture(inbox):
        from bot.records.appointments import AppointmentStore
        from bot.storage.crypto import keyring
        from bot.records.fhir import load_bundle_file

        await AppointmentStore(inbox.redis, keyring(), prefix).import_bundle(
            load_bundle_file(ROOT / "data" / "demo" / "synthetic_bundle.json"), "test")
        a = await inbox.capture(phi_text, "nlu_fallback", 0.2, "fallback")
        b = await inbox.capture("blah blah", "greet", 0.3, "low_confidence")
        c = await inbox.capture("can we do a video visit", "nlu_fallback", 0.2, "fallback")
        return a, b, c

    a, b, c = with_inbox(capture)
    capsys.readouterr()
    assert main(["nlu", "inbox", "--json"]) == 0
    shown = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {s["id"] for s in shown} == {a, b, c}
    listing = json.dumps(shown)
    for fragment in ("Demopatient", "01/01/1980", "555-010-0101", "0101"):
        assert fragment not in listing
    assert main(["nlu", "label", a, "reschedule_appointment", "--project", str(project)]) == 0
    written = (project / "data" / "nlu.yml").read_text()
    for fragment in ("Demopatient", "01/01/1980", "555-010-0101"):
        assert fragment not in written
    assert "can I come earlier, I'm [name] [name] dob [date] cell [phone]" in written
    assert main(["nlu", "discard", b]) == 0
    assert main(["nlu", "label", c, "ask_video_visit", "--project", str(project)]) == 1
    assert "propose it instead" in capsys.readouterr().err
    assert main(["nlu", "label", c, "ask_video_visit", "--propose"]) == 0
    assert main(["nlu", "add", "ask_hours", "r u open on sundays", "--project", str(project)]) == 0
    assert main(["nlu", "add", "ask_hours", "call 555-010-0111", "--project", str(project)]) == 1
    assert main(["nlu", "discard", "nosuchitem"]) == 1
    capsys.readouterr()
    assert main(["nlu", "inbox", "--json"]) == 0
    (left,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (left["id"], left["status"], left["proposed_intent"]) == (c, "proposed", "ask_video_visit")
    assert "r u open on sundays" in (project / "data" / "nlu.yml").read_text()
    assert "555-010-0111" not in (project / "data" / "nlu.yml").read_text()

    from bot.storage.audit import AuditLog
    from bot.storage.crypto import keyring
    from bot.storage.redis_client import async_redis

    async def events():
        client = async_redis()
        try:
            return await AuditLog(client, keyring(), prefix).events()
        finally:
            await client.close()

    actions = [(e.action, e.outcome) for e in asyncio.run(events())]
    assert actions == [
        ("nlu_inbox_viewed", "ok"), ("nlu_labelled", "ok"), ("nlu_discarded", "ok"), ("nlu_labelled", "refused"),
        ("nlu_intent_proposed", "ok"), ("nlu_example_added", "ok"), ("nlu_example_added", "refused"),
        ("nlu_inbox_viewed", "ok"),
    ]
