"""The consent record: who may be texted, for what, since when, and why.

Per number (by its blind index, never the number itself):

* ``pb:consent:<phone index>``      sealed JSON of the current state (status, scopes, since);
* ``pb:consent-log:<phone index>``  a Redis stream, append-only: every change ever made, each
  entry sealed (status, scopes, source, the exact words the patient used, when). Nothing is
  overwritten in place; the current state is only a summary of the log's last entry.

Both are written in one MULTI transaction, and the caller acknowledges a change to the patient
only after it returns, so on a Redis configured with ``appendfsync always`` an acknowledged
opt-out survives a crash of every process.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from bot.storage.crypto import KeyRing

OPTED_IN = "opted_in"
OPTED_OUT = "opted_out"
UNKNOWN = "unknown"  # never asked: replies to the patient's own messages only
SCOPES = ("appointment_reminders", "care_messages")  # what a keyword opt-in grants
# Health information in SMS bodies: only with the patient's written authorization after the
# risk notice (a web form, or a signed form staff have on file), never from a keyword, and
# gone with any opt-out (a later START does not bring it back).
PHI_BY_TEXT = "phi_by_text"
ALL_SCOPES = SCOPES + (PHI_BY_TEXT,)
SOURCES = ("keyword", "staff", "import", "web_form", "signed_form")
WRITTEN_SOURCES = ("web_form", "signed_form")  # where a written authorization can come from


@dataclass(frozen=True)
class ConsentState:
    status: str
    scopes: List[str] = field(default_factory=list)
    since: Optional[str] = None
    source: Optional[str] = None

    @property
    def opted_out(self) -> bool:
        return self.status == OPTED_OUT

    def allows(self, scope: str) -> bool:
        """Whether a bot- or staff-initiated message of ``scope`` may be sent."""
        return self.status == OPTED_IN and scope in self.scopes

    @property
    def phi_by_text(self) -> bool:
        """Whether health information may go in SMS bodies to this number (after verification)."""
        return not self.opted_out and PHI_BY_TEXT in self.scopes


def scope_sources(history: List[Dict[str, Any]]) -> Dict[str, Dict[str, str]]:
    """For each scope the number holds after ``history`` (:meth:`ConsentRegistry.history`, oldest
    first): the source and time of the change that granted it (``{"source": ..., "at": ...}``)."""
    held: Dict[str, Dict[str, str]] = {}
    for entry in history:
        held = {scope: held.get(scope) or {"source": entry["source"], "at": entry["at"]} for scope in entry["scopes"]}
    return held


class ConsentRegistry:
    """Reads and records consent, by phone blind index."""

    def __init__(self, client: aioredis.Redis, keys: KeyRing, prefix: str = "pb:") -> None:
        self.redis = client
        self.keys = keys
        self.prefix = prefix

    def _state_key(self, phone_idx: str) -> str:
        return f"{self.prefix}consent:{phone_idx}"

    def _log_key(self, phone_idx: str) -> str:
        return f"{self.prefix}consent-log:{phone_idx}"

    async def state(self, phone_idx: str) -> ConsentState:
        """The current consent of a number (``unknown`` if it never gave or revoked any)."""
        return self._state_from(await self.redis.get(self._state_key(phone_idx)), phone_idx)

    def state_on(self, pipe: Pipeline, phone_idx: str) -> Callable[[list], ConsentState]:
        """Queue the read of :meth:`state` on ``pipe``, to go in the same round trip as other
        commands; the returned function reads the state from the pipeline's results."""
        at = len(pipe)
        pipe.get(self._state_key(phone_idx))
        return lambda results: self._state_from(results[at], phone_idx)

    def _state_from(self, token, phone_idx: str) -> ConsentState:
        if token is None:
            return ConsentState(UNKNOWN)
        doc = json.loads(self.keys.decrypt_text(token.decode() if isinstance(token, bytes) else token,
                                                self._state_key(phone_idx)))
        return ConsentState(doc["status"], doc["scopes"], doc["since"], doc["source"])

    async def _record(self, phone_idx: str, status: str, scopes: List[str], source: str,
                      text: str, at: Optional[datetime]) -> ConsentState:
        if source not in SOURCES:
            raise ValueError(f"unknown consent source {source!r}")
        at = at or datetime.now(timezone.utc)
        entry = {"status": status, "scopes": scopes, "source": source, "text": text, "at": at.isoformat()}
        state = {"status": status, "scopes": scopes, "since": at.isoformat(), "source": source}
        log_key, state_key = self._log_key(phone_idx), self._state_key(phone_idx)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(log_key, {"entry": self.keys.encrypt_text(json.dumps(entry), log_key)})
            pipe.set(state_key, self.keys.encrypt_text(json.dumps(state), state_key))
            await pipe.execute()
        return ConsentState(status, scopes, state["since"], source)

    async def record_opt_out(self, phone_idx: str, source: str, text: str,
                             at: Optional[datetime] = None) -> ConsentState:
        """Revoke all consent (every scope), effective before any reply is sent."""
        return await self._record(phone_idx, OPTED_OUT, [], source, text, at)

    async def record_opt_in(self, phone_idx: str, source: str, text: str,
                            scopes: Optional[List[str]] = None, at: Optional[datetime] = None) -> ConsentState:
        scopes = list(scopes or SCOPES)
        unknown = [s for s in scopes if s not in ALL_SCOPES]
        if unknown:
            raise ValueError(f"unknown consent scope(s) {unknown}")
        if PHI_BY_TEXT in scopes and source not in WRITTEN_SOURCES:
            raise ValueError(f"{PHI_BY_TEXT} needs a written authorization ({', '.join(WRITTEN_SOURCES)})")
        return await self._record(phone_idx, OPTED_IN, scopes, source, text, at)

    async def grant_scope(self, phone_idx: str, scope: str, source: str, text: str,
                          at: Optional[datetime] = None) -> ConsentState:
        """Add ``scope`` to the number's consent, keeping its status and other scopes. ``text``:
        the exact words the patient agreed to (for ``phi_by_text``, including the risk notice)."""
        if scope not in ALL_SCOPES:
            raise ValueError(f"unknown consent scope {scope!r}")
        if scope == PHI_BY_TEXT and source not in WRITTEN_SOURCES:
            raise ValueError(f"{PHI_BY_TEXT} needs a written authorization ({', '.join(WRITTEN_SOURCES)})")
        current = await self.state(phone_idx)
        if current.opted_out:
            raise ValueError("the number has opted out of texts: it must opt in (START) first")
        scopes = sorted(set(current.scopes) | {scope})
        return await self._record(phone_idx, current.status, scopes, source, text, at)

    async def revoke_scope(self, phone_idx: str, scope: str, source: str, text: str,
                           at: Optional[datetime] = None) -> ConsentState:
        """Remove ``scope`` from the number's consent, keeping its status and other scopes."""
        if scope not in ALL_SCOPES:
            raise ValueError(f"unknown consent scope {scope!r}")
        current = await self.state(phone_idx)
        scopes = [s for s in current.scopes if s != scope]
        return await self._record(phone_idx, current.status, scopes, source, text, at)

    async def history(self, phone_idx: str) -> List[Dict[str, Any]]:
        """Every change ever recorded for the number, oldest first (decrypted)."""
        log_key = self._log_key(phone_idx)
        out = []
        for _, fields in await self.redis.xrange(log_key):
            token = fields.get(b"entry") or fields.get("entry")
            out.append(json.loads(self.keys.decrypt_text(token.decode() if isinstance(token, bytes) else token, log_key)))
        return out
