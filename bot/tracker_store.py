"""Rasa tracker store on Redis: encrypted, expiring, and loud when something is wrong.

Rasa's stock ``RedisTrackerStore`` writes every message in plain JSON. This subclass seals the
whole serialised tracker with AES-256-GCM bound to its conversation id, keys it under the
configured prefix (the id is already a pseudonym) and lets every record expire.

Two silent failures of Rasa are turned into loud ones:

* a tracker that cannot be opened raises :class:`TrackerUnreadable` instead of looking like a
  new conversation, and is logged as an alert (without any content);
* Rasa wraps every store in ``FailSafeTrackerStore``, which turns read errors into "no
  tracker" and write errors into writes to memory. :func:`make_failures_loud` (called by the
  Rasa-side connector) makes that wrapper re-raise instead.
"""
from __future__ import annotations

import json
import logging
from typing import Any, Dict, Optional, Text

from rasa.core.tracker_store import FailSafeTrackerStore, RedisTrackerStore, TrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import UserUttered
from rasa.shared.core.trackers import DialogueStateTracker, get_trackers_for_conversation_sessions

from bot.config import settings
from bot.crypto import DecryptionError, keyring, phone_index_from_conversation
from bot.redis_client import sync_redis

logger = logging.getLogger(__name__)


REMEMBERED_TURNS = 10_000  # conversations whose last saved user event waits to be looked at


class TrackerUnreadable(RuntimeError):
    """A stored tracker exists but cannot be decrypted or parsed (tampering or a lost key)."""


class EncryptedRedisTrackerStore(RedisTrackerStore):
    """Encrypted Redis tracker store (configured in endpoints.yml as ``bot.tracker_store.EncryptedRedisTrackerStore``)."""

    def __init__(self, domain: Optional[Domain] = None, record_exp: Optional[float] = None,
                 event_broker: Any = None, **_ignored: Any) -> None:
        # host/port/db/key_prefix from endpoints.yml are superseded by REDIS_URL and
        # REDIS_PREFIX, so every process of the stack reads one Redis setting (with TLS/ACL).
        cfg = settings()
        TrackerStore.__init__(self, domain, event_broker)
        self.red = sync_redis(cfg)
        self.red.ping()  # refuse to start without Redis, rather than fail on the first patient
        self.keyring = keyring(cfg)
        self.key_prefix = f"{cfg.redis_prefix}tracker:"
        self.holds_key = f"{cfg.redis_prefix}legal-hold"  # bot.retention.LegalHolds
        self.record_exp = float(record_exp) if record_exp else cfg.retention_conversation_days * 86400
        self._latest_user: Dict[str, Optional[dict]] = {}  # sender -> the user event last saved

    def _aad(self, sender_id: Text) -> str:
        return self.key_prefix + sender_id  # the Redis key, as every sealed value's aad

    def _open_text(self, sender_id: Text, stored: Any) -> str:
        try:
            return self.keyring.decrypt_text(stored.decode() if isinstance(stored, bytes) else stored,
                                             self._aad(sender_id))
        except DecryptionError as exc:
            logger.critical("ALERT tracker unreadable for conversation %s: %s", sender_id, exc.__class__.__name__)
            raise TrackerUnreadable(f"tracker for conversation {sender_id} cannot be read") from None

    @staticmethod
    def _extends(stored_text: str, serialised: str) -> bool:
        """True if the new tracker holds every stored event, in order (one session: the usual case).

        Comparing the events as JSON is far cheaper than Rasa's merge, which rebuilds both
        trackers by replaying every event (its cost grew with the conversation's length).
        """
        try:
            prior = json.loads(stored_text)["events"]
        except (ValueError, KeyError, TypeError):
            return False
        new = json.loads(serialised)["events"]
        return new[:len(prior)] == prior

    def _open(self, sender_id: Text, stored: Any) -> DialogueStateTracker:
        text = self._open_text(sender_id, stored)
        try:
            tracker = self.deserialise_tracker(sender_id, text)
        except ValueError as exc:
            logger.critical("ALERT tracker unreadable for conversation %s: %s", sender_id, exc.__class__.__name__)
            raise TrackerUnreadable(f"tracker for conversation {sender_id} cannot be read") from None
        if tracker is None:
            raise TrackerUnreadable(f"tracker for conversation {sender_id} cannot be read")
        return tracker

    async def save(self, tracker: DialogueStateTracker, timeout: Optional[float] = None) -> None:
        await self.stream_events(tracker)
        key = self.key_prefix + tracker.sender_id
        serialised = self.serialise_tracker(tracker)
        index = phone_index_from_conversation(tracker.sender_id)
        # Both reads in one round trip: this client is synchronous, Rasa's event loop waits on it.
        with self.red.pipeline(transaction=False) as pipe:
            pipe.get(key)
            pipe.hexists(self.holds_key, index or "-")
            stored, held = pipe.execute()
        if stored is not None and not self._extends(self._open_text(tracker.sender_id, stored), serialised):
            # Rasa retrieved only the last session: merge the earlier ones back in.
            merged = self._merge_trackers(self._open(tracker.sender_id, stored), tracker)
            serialised = self.serialise_tracker(merged)
        sealed = self.keyring.encrypt_text(serialised, self._aad(tracker.sender_id))
        if index and held:  # under legal hold: no expiry
            self.red.set(key, sealed)
        else:
            self.red.set(key, sealed, ex=int(timeout or self.record_exp))
        self._remember_latest_user_event(tracker)

    def _remember_latest_user_event(self, tracker: DialogueStateTracker) -> None:
        """Keep the user event just saved for :meth:`latest_user_event`, which the connector
        asks for right after this save: no read back, no decryption, no JSON parsing."""
        latest = next((e for e in reversed(tracker.events) if isinstance(e, UserUttered)), None)
        if len(self._latest_user) >= REMEMBERED_TURNS:
            self._latest_user.clear()
        self._latest_user[tracker.sender_id] = latest.as_dict() if latest is not None else None

    async def _retrieve(self, sender_id: Text, fetch_all_sessions: bool) -> Optional[DialogueStateTracker]:
        stored = self.red.get(self.key_prefix + sender_id)
        if stored is None:
            return None
        tracker = self._open(sender_id, stored)
        if fetch_all_sessions:
            return tracker
        sessions = get_trackers_for_conversation_sessions(tracker)
        return tracker if len(sessions) <= 1 else sessions[-1]

    def latest_user_event(self, sender_id: Text) -> Optional[dict]:
        """The conversation's latest user event as stored (text, parse_data), or None.

        Taken from the save this process just made for the message, or else read from the
        JSON, without rebuilding the tracker (which replays every event): the review inbox
        looks at every message, on the reply path.
        """
        if sender_id in self._latest_user:
            return self._latest_user.pop(sender_id)
        stored = self.red.get(self.key_prefix + sender_id)
        if stored is None:
            return None
        events = json.loads(self._open_text(sender_id, stored)).get("events", [])
        return next((e for e in reversed(events) if e.get("event") == "user"), None)

    async def keys(self):  # type: ignore[override]
        return [k.decode()[len(self.key_prefix):] if isinstance(k, bytes) else k[len(self.key_prefix):]
                for k in self.red.keys(self.key_prefix + "*")]


def _reraise(error: Exception) -> None:
    raise error


def make_failures_loud(store: TrackerStore) -> None:
    """Make Rasa's fail-safe wrapper re-raise store errors instead of hiding them."""
    if isinstance(store, FailSafeTrackerStore):
        store._on_tracker_store_error = _reraise  # noqa: SLF001 - Rasa offers no public hook


def underlying_store(store: TrackerStore) -> TrackerStore:
    """The real store inside Rasa's wrappers (fail-safe, awaitable)."""
    seen = 0
    while hasattr(store, "_tracker_store") and seen < 5:
        store = store._tracker_store  # noqa: SLF001
        seen += 1
    return store


def is_secure_store(store: TrackerStore) -> bool:
    """True only when Rasa is really using this module's encrypted store."""
    return isinstance(underlying_store(store), EncryptedRedisTrackerStore)
