"""The encrypted Redis tracker store against the real Redis: sealed at rest, expiring, and
loud on failure (never a silent fresh conversation, never a silent fall-back to memory)."""
from __future__ import annotations

import pytest
from rasa.core.tracker_store import FailSafeTrackerStore, InMemoryTrackerStore, TrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import EndpointConfig

from bot.storage.tracker_store import (
    EncryptedRedisTrackerStore, TrackerUnreadable, is_secure_store, make_failures_loud,
)

SECRET_TEXT = "synthetic message about a rash on my left elbow"


def _tracker(sender: str) -> DialogueStateTracker:
    tracker = DialogueStateTracker(sender, slots=[])
    tracker.update(ActionExecuted("action_listen"))
    tracker.update(UserUttered(SECRET_TEXT, {"name": "greet", "confidence": 1.0}))
    return tracker


@pytest.fixture
def store(settings_env) -> EncryptedRedisTrackerStore:
    return EncryptedRedisTrackerStore(Domain.empty())


async def test_round_trip_and_nothing_readable_at_rest(store, redis_sync, prefix):
    await store.save(_tracker("sms-abc"))
    loaded = await store.retrieve("sms-abc")
    assert loaded.latest_message.text == SECRET_TEXT
    [key] = list(redis_sync.scan_iter(match=f"{prefix}tracker:*"))
    raw = redis_sync.get(key)
    assert b"rash" not in raw and b"elbow" not in raw and raw.startswith(b"pb1.")
    assert 0 < redis_sync.ttl(key) <= 90 * 24 * 3600


async def test_earlier_sessions_are_kept_without_rasas_merge(store, redis_sync, prefix, monkeypatch):
    """Rasa retrieves only the last session; saving must keep the earlier ones. A continuation
    (always, under the conversation lock) is merged on the JSON, without Rasa's merge, which
    replays every event of both trackers; anything else still goes through Rasa's merge."""
    from rasa.shared.core.events import SessionStarted, SlotSet

    merges = []
    real_merge = store._merge_trackers
    monkeypatch.setattr(store, "_merge_trackers", lambda a, b: merges.append(1) or real_merge(a, b))
    # As Rasa starts a conversation: the session's metadata slot, then action_session_start.
    tracker = DialogueStateTracker("sms-abc", slots=[])
    tracker.update(SlotSet("session_started_metadata", {"channel": "sms"}))
    tracker.update(ActionExecuted("action_session_start"))
    tracker.update(SessionStarted())
    tracker.update(ActionExecuted("action_listen"))
    tracker.update(UserUttered(SECRET_TEXT, {"name": "greet", "confidence": 1.0}))
    await store.save(tracker)
    retrieved = await store.retrieve("sms-abc")  # from action_session_start on, like Rasa's split
    assert retrieved.events[0] == ActionExecuted("action_session_start")
    retrieved.update(ActionExecuted("action_listen"))
    retrieved.update(UserUttered("synthetic second message", {"name": "greet", "confidence": 1.0}))
    await store.save(retrieved)
    retrieved = await store.retrieve("sms-abc")
    retrieved.update(ActionExecuted("action_session_start"))  # a new session in the same conversation
    retrieved.update(SessionStarted())
    retrieved.update(UserUttered("synthetic next-session message", {"name": "greet", "confidence": 1.0}))
    await store.save(retrieved)
    last_session = await store.retrieve("sms-abc")
    assert [e.text for e in last_session.events if isinstance(e, UserUttered)] == ["synthetic next-session message"]
    last_session.update(UserUttered("synthetic follow-up", {"name": "greet", "confidence": 1.0}))
    await store.save(last_session)
    assert merges == []
    everything = await store.retrieve_full_tracker("sms-abc")
    assert isinstance(everything.events[0], SlotSet)  # the metadata slot is kept in front
    assert [e.text for e in everything.events if isinstance(e, UserUttered)] == [
        SECRET_TEXT, "synthetic second message", "synthetic next-session message", "synthetic follow-up"]
    assert everything.events.count(ActionExecuted("action_session_start")) == 2

    # Not a continuation (say, a tracker rebuilt elsewhere): Rasa's merge keeps both histories.
    stranger = _tracker("sms-abc")
    stranger.update(UserUttered("synthetic stray message", {"name": "greet", "confidence": 1.0}))
    await store.save(stranger)
    assert merges == [1]
    texts = [e.text for e in (await store.retrieve_full_tracker("sms-abc")).events if isinstance(e, UserUttered)]
    assert "synthetic follow-up" in texts and "synthetic stray message" in texts


async def test_tracker_moved_to_another_conversation_does_not_open(store, redis_sync, prefix):
    await store.save(_tracker("sms-abc"))
    redis_sync.set(f"{prefix}tracker:sms-other", redis_sync.get(f"{prefix}tracker:sms-abc"))
    with pytest.raises(TrackerUnreadable):
        await store.retrieve("sms-other")


async def test_tampered_tracker_raises_instead_of_starting_fresh(store, redis_sync, prefix):
    await store.save(_tracker("sms-abc"))
    key = f"{prefix}tracker:sms-abc"
    raw = bytearray(redis_sync.get(key))
    raw[-5] = ord("A") if raw[-5] != ord("A") else ord("B")
    redis_sync.set(key, bytes(raw))
    with pytest.raises(TrackerUnreadable):
        await store.retrieve("sms-abc")
    # Rasa's fail-safe wrapper would return None (a fresh conversation); once made loud it re-raises.
    wrapped = FailSafeTrackerStore(store)
    assert await wrapped.retrieve("sms-abc") is None  # Rasa's default: the silent failure we refuse
    make_failures_loud(wrapped)
    with pytest.raises(TrackerUnreadable):
        await wrapped.retrieve("sms-abc")


async def test_save_failure_is_not_diverted_to_memory(store, redis_sync, prefix):
    wrapped = FailSafeTrackerStore(store)
    make_failures_loud(wrapped)
    key = f"{prefix}tracker:sms-abc"
    redis_sync.set(key, "not a ciphertext")
    with pytest.raises(TrackerUnreadable):
        await wrapped.save(_tracker("sms-abc"))
    assert wrapped._fallback_tracker_store is None  # noqa: SLF001 - nothing went to memory


def test_rasa_loads_it_from_the_endpoint_config(settings_env):
    endpoint = EndpointConfig(type="bot.storage.tracker_store.EncryptedRedisTrackerStore", record_exp=60)
    created = TrackerStore.create(endpoint, Domain.empty())
    assert is_secure_store(FailSafeTrackerStore(created))


def test_a_typo_in_the_store_path_is_detected_as_insecure(settings_env):
    # Rasa answers a bad module path with an in-memory store and a warning; we must notice.
    endpoint = EndpointConfig(type="bot.storage.tracker_store.NoSuchStore")
    with pytest.warns(UserWarning):
        created = TrackerStore.create(endpoint, Domain.empty())
    assert not is_secure_store(FailSafeTrackerStore(created))
    assert not is_secure_store(FailSafeTrackerStore(InMemoryTrackerStore(Domain.empty())))


def test_refuses_to_start_without_redis(settings_env, monkeypatch):
    from bot import config
    from bot.storage import redis_client

    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    config.reset_cache()
    redis_client._sync.clear()  # noqa: SLF001
    with pytest.raises(Exception) as err:
        EncryptedRedisTrackerStore(Domain.empty())
    assert "connect" in str(err.value).lower() or "refused" in str(err.value).lower()


async def test_latest_user_event_is_read_from_the_stored_json(store):
    """What the review inbox reads on every message, without rebuilding the tracker."""
    assert store.latest_user_event("sms-none") is None
    tracker = _tracker("sms-abc")
    tracker.update(ActionExecuted("action_listen"))
    tracker.update(UserUttered("synthetic latest", {"name": "ask_hours", "confidence": 0.42}))
    await store.save(tracker)
    latest = store.latest_user_event("sms-abc")
    assert latest["text"] == "synthetic latest"
    assert latest["parse_data"]["intent"] == {"name": "ask_hours", "confidence": 0.42}
    # Another process (a second Rasa server) did not save it: it reads the stored JSON instead.
    fresh = EncryptedRedisTrackerStore(Domain.empty())
    assert fresh.latest_user_event("sms-abc") == latest


async def test_latest_user_event_after_a_save_costs_no_read(store, monkeypatch):
    """The connector asks right after Rasa's save: the store answers from what it saved."""
    tracker = _tracker("sms-def")
    tracker.update(UserUttered("synthetic second", {"name": "ask_hours", "confidence": 0.3}))
    await store.save(tracker)
    monkeypatch.setattr(store.red, "get", lambda *a, **k: pytest.fail("read back what was just saved"))
    assert store.latest_user_event("sms-def")["text"] == "synthetic second"
