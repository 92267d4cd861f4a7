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
from typing import Any, Dict, List, Optional, Text

from rasa.core.tracker_store import FailSafeTrackerStore, RedisTrackerStore, TrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import UserUttered
from rasa.shared.core.constants import ACTION_SESSION_START_NAME as ACTION_SESSION_START
from rasa.shared.core.trackers import DialogueStateTracker

from bot.config import settings
from bot.storage.crypto import DecryptionError, keyring, phone_index_from_conversation
from bot.storage.redis_client import sync_redis

logger = logging.getLogger(__name__)


REMEMBERED_TURNS = 10_000  # conversations whose last saved user event waits to be looked at


class TrackerUnreadable(RuntimeError):
    """A stored tracker exists but cannot be decrypted or parsed (tampering or a lost key)."""


class EncryptedRedisTrackerStore(RedisTrackerStore):
    """Encrypted Redis tracker store (configured in endpoints.yml as ``bot.storage.tracker_store.EncryptedRedisTrackerStore``)."""

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
        self.holds_key = f"{cfg.redis_prefix}legal-hold"  # bot.storage.retention.LegalHolds
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
    def _last_session_start(events: List[dict]) -> int:
        """Index of the last ``action_session_start`` (0 if none): where Rasa's last session begins."""
        for i in range(len(events) - 1, -1, -1):
            if events[i].get("event") == "action" and events[i].get("name") == ACTION_SESSION_START:
                return i
        return 0

    @classmethod
    def _merged_events(cls, stored_text: str, serialised: str) -> Optional[List[dict]]:
        """The events to store, worked out on the JSON; None if Rasa's merge must do it.

        Rasa saves the tracker it retrieved: the last session only (``_retrieve``). So the new
        events continue the stored ones either from the start (one session) or from the stored
        tracker's last session start (the earlier events, at least the session's metadata
        slot that Rasa sets just before it, are kept in front). Rasa's own merge gives the
        same result but replays every event of both trackers, on every message.
        """
        try:
            prior = json.loads(stored_text)["events"]
        except (ValueError, KeyError, TypeError):
            return None
        new = json.loads(serialised)["events"]
        if new[:len(prior)] == prior:
            return new
        start = cls._last_session_start(prior)
        if start and new[:len(prior) - start] == prior[start:]:
            return prior[:start] + new
        return None

    def _open(self, sender_id: Text, stored: Any) -> DialogueStateTracker:
        return self._tracker(sender_id, self._open_text(sender_id, stored))

    def _tracker(self, sender_id: Text, text: str) -> DialogueStateTracker:
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
        if stored is not None:
            # Rasa retrieved only the last session: the earlier events go back in front.
            events = self._merged_events(self._open_text(tracker.sender_id, stored), serialised)
            if events is None:  # not a plain continuation: Rasa's own (slow) merge
                serialised = self.serialise_tracker(self._merge_trackers(self._open(tracker.sender_id, stored), tracker))
            elif len(events) > len(tracker.events):  # earlier events were put back in front
                serialised = json.dumps({**json.loads(serialised), "events": events})
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
        text = self._open_text(sender_id, stored)
        if not fetch_all_sessions:
            # Rasa works on the last session (from its action_session_start on), as
            # get_trackers_for_conversation_sessions would cut it; cut on the JSON instead, so
            # the events are replayed once rather than for the whole tracker and again per session.
            try:
                doc = json.loads(text)
                start = self._last_session_start(doc["events"])
            except (ValueError, KeyError, TypeError, AttributeError):
                start = 0  # _tracker below reports what is wrong with it
            if start:
                text = json.dumps({**doc, "events": doc["events"][start:]})
        return self._tracker(sender_id, text)

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
