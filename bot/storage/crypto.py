"""Encryption at rest and keyed pseudonyms, with envelope keys that can be rotated.

* Every stored PHI value is sealed with AES-256-GCM (random 96-bit nonce) and *associated
  data* naming where it is stored (by convention the Redis key, ``key#field`` for a hash
  field), so a ciphertext copied onto another record fails to open, and the re-encryption
  job can re-seal any value knowing only where it found it.
* Envelope keys: the data keys (DEKs) that seal records are random, and are kept in Redis
  only *wrapped* by a key-encryption key (KEK) that a :class:`KeyProvider` holds (an
  environment variable or a key file by default; a KMS or Vault transit plugs in there).
  Every ciphertext names the DEK that sealed it (``pb1.<key id>.<data>``).
* Each DEK yields an HKDF subkey for encryption; the blind index has its own wrapped root and
  HKDF subkey. Data-key rotation (bot.storage.rekey) re-encrypts records and leaves the blind index,
  and with it every Redis key name and conversation id, unchanged.
* Phone numbers are never stored or used as keys in clear: they are looked up through the
  keyed blind index (HMAC-SHA256), and Rasa conversation ids are pseudonyms from that index.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import importlib
import os
import threading
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Dict, List, Optional, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bot.storage.redis_client import as_text

if TYPE_CHECKING:  # pragma: no cover
    import redis

    from bot.config import Settings

FORMAT = "pb1"  # ciphertext format tag: pb1.<key id>.<base64url(nonce || ciphertext+tag)>
NONCE_BYTES = 12
REFRESH_SECONDS = 2.0  # how soon a running process sees a rotation (bot.storage.rekey waits longer)


class DecryptionError(Exception):
    """A ciphertext could not be opened: wrong key, wrong record, or tampered bytes."""


class KeyStoreError(RuntimeError):
    """The stored data keys cannot be used (another KEK, a damaged key store)."""


def _hkdf(root: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(root)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def key_id_of(token) -> Optional[str]:
    """The id of the data key that sealed ``token``, or None if it is not a ciphertext."""
    token = as_text(token)
    if not isinstance(token, str) or not token.startswith(FORMAT + "."):
        return None
    parts = token.split(".")
    return parts[1] if len(parts) == 3 else None


# -- key-encryption keys -----------------------------------------------------------------------
class KeyProvider(Protocol):
    """Holds the key-encryption key; wraps and unwraps data keys.

    The default keeps the KEK in process memory (from PATIENTBOT_DATA_KEY or
    PATIENTBOT_KEY_FILE). A KMS or Vault transit provider implements the same three members
    and is named by KEY_PROVIDER=module:Class (constructed with the settings).
    """

    kek_id: str

    def wrap(self, data_key: bytes, label: str) -> str: ...

    def unwrap(self, wrapped: str, label: str) -> bytes: ...


class LocalKeyProvider:
    """A KEK held in memory; wrapping is AES-256-GCM bound to the data key's label."""

    def __init__(self, kek: bytes) -> None:
        if len(kek) != 32:
            raise ValueError("the key-encryption key must be 32 bytes")
        self.kek_id = _hkdf(kek, b"patientbot kek-id v1").hex()[:8]
        self._aead = AESGCM(_hkdf(kek, b"patientbot key-wrap v1"))

    def wrap(self, data_key: bytes, label: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        return f"{self.kek_id}.{_b64(nonce + self._aead.encrypt(nonce, data_key, label.encode()))}"

    def unwrap(self, wrapped: str, label: str) -> bytes:
        kek_id, _, body = as_text(wrapped).partition(".")
        if kek_id != self.kek_id:
            raise KeyStoreError(f"data key {label} is wrapped by key-encryption key {kek_id}, "
                                f"not by the configured one ({self.kek_id})")
        raw = _unb64(body)
        try:
            return self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], label.encode())
        except InvalidTag:
            raise KeyStoreError(f"data key {label} does not unwrap (damaged key store)") from None


def key_provider(cfg: "Settings") -> KeyProvider:
    """The configured provider: local by default, or KEY_PROVIDER=module:Class."""
    spec = cfg.extra.get("KEY_PROVIDER", "local")
    if spec in ("", "local"):
        return LocalKeyProvider(cfg.data_key)
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)(cfg)


# -- the key ring --------------------------------------------------------------------------------
class KeyRing:
    """The data keys a process holds: one active for sealing, the others for opening."""

    def __init__(self, keys: Dict[str, bytes], active: str, index_root: bytes,
                 store: Optional["KeyStore"] = None, version: str = "") -> None:
        if active not in keys:
            raise KeyStoreError(f"the active data key {active} is missing")
        self._aeads = {kid: AESGCM(_hkdf(k, b"patientbot encryption v1")) for kid, k in keys.items()}
        self._active = active
        self._index_key = _hkdf(index_root, b"patientbot blind-index v1")
        self._store, self._version = store, version
        self._checked = time.monotonic()
        self._lock = threading.Lock()

    @classmethod
    def deferred(cls, store: "KeyStore") -> "KeyRing":
        """A ring that loads its keys from ``store`` on first use, not now.

        A process may start while Redis is down (the gateway must still redirect emergencies);
        the first use then raises Redis's connection error, which callers treat as an outage.
        """
        ring = cls.__new__(cls)
        ring._store, ring._version, ring._checked = store, None, 0.0
        ring._lock = threading.Lock()
        return ring

    def _ensure(self) -> None:
        if self._version is None:
            with self._lock:
                if self._version is None:
                    self._adopt(self._store.load())

    def _adopt(self, fresh: "KeyRing") -> None:
        self._aeads, self._active, self._index_key = fresh._aeads, fresh._active, fresh._index_key
        self._checked, self._version = time.monotonic(), fresh._version

    @property
    def key_id(self) -> str:
        """The id of the data key that seals new values."""
        self._ensure()
        return self._active

    @classmethod
    def from_root(cls, root: bytes) -> "KeyRing":
        """A one-key ring derived from ``root``, kept nowhere: for unit tests and benchmarks.

        Running processes use :func:`keyring`, whose data keys live wrapped in Redis.
        """
        if len(root) != 32:
            raise ValueError("the root key must be 32 bytes")
        kid = _hkdf(root, b"patientbot key-id v1").hex()[:8]
        return cls({kid: _hkdf(root, b"patientbot data-key v1")}, kid, _hkdf(root, b"patientbot index-root v1"))

    @property
    def key_ids(self) -> List[str]:
        self._ensure()
        return sorted(self._aeads)

    def _refresh(self, force: bool = False) -> None:
        """Pick up a rotation made by another process (at most every REFRESH_SECONDS)."""
        self._ensure()
        if self._store is None or (not force and time.monotonic() - self._checked < REFRESH_SECONDS):
            return
        with self._lock:
            self._checked = time.monotonic()
            if self._store.version() != self._version:
                self._adopt(self._store.load())

    # -- sealing -----------------------------------------------------------------------------
    def encrypt(self, plaintext: bytes, aad: str) -> str:
        """Seal ``plaintext`` bound to ``aad`` (the Redis key it is stored under)."""
        self._refresh()
        nonce = os.urandom(NONCE_BYTES)
        kid = self._active
        sealed = self._aeads[kid].encrypt(nonce, plaintext, aad.encode("utf-8"))
        return f"{FORMAT}.{kid}.{_b64(nonce + sealed)}"

    def decrypt(self, token: str, aad: str) -> bytes:
        """Open a ciphertext made by :meth:`encrypt` with the same ``aad``."""
        token = as_text(token)
        parts = token.split(".") if isinstance(token, str) else []
        if len(parts) != 3 or parts[0] != FORMAT:
            raise DecryptionError("not a patientbot ciphertext")
        self._ensure()
        if parts[1] not in self._aeads:
            self._refresh(force=True)  # a key added by a rotation this process has not seen yet
        aead = self._aeads.get(parts[1])
        if aead is None:
            raise DecryptionError(f"sealed with key {parts[1]}, which this key ring does not hold (retired?)")
        try:
            raw = _unb64(parts[2])
            return aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad.encode("utf-8"))
        except (InvalidTag, ValueError):
            raise DecryptionError("ciphertext does not open for this record (tampered, moved or wrong key)") from None

    def encrypt_text(self, text: str, aad: str) -> str:
        return self.encrypt(text.encode("utf-8"), aad)

    def decrypt_text(self, token: str, aad: str) -> str:
        return self.decrypt(token, aad).decode("utf-8")

    # -- blind index -------------------------------------------------------------------------
    def blind_index(self, value: str, purpose: str) -> str:
        """Keyed HMAC-SHA256 of ``value`` for lookups; ``purpose`` separates index spaces."""
        self._ensure()
        mac = hmac.new(self._index_key, f"{purpose}\x00{value}".encode("utf-8"), hashlib.sha256)
        return mac.hexdigest()


# -- wrapped data keys in Redis --------------------------------------------------------------
class KeyStore:
    """The wrapped data keys, one Redis hash ``<prefix>keys``.

    Fields: ``index`` (wrapped blind-index root), ``dek:<id>`` (wrapped data keys),
    ``active`` (the id that seals), ``version`` (bumped on every change, so processes reload),
    ``retired:<id>`` (when a key was destroyed). No key is ever stored unwrapped.
    """

    def __init__(self, client: "redis.Redis", provider: KeyProvider, prefix: str = "pb:") -> None:
        self.redis = client
        self.provider = provider
        self.key = f"{prefix}keys"

    def version(self) -> str:
        return as_text(self.redis.hget(self.key, "version")) or ""

    def _new_key(self) -> tuple:
        data_key = os.urandom(32)
        kid = hashlib.sha256(data_key + b"patientbot key-id").hexdigest()[:8]
        return kid, self.provider.wrap(data_key, f"dek:{kid}")

    def bootstrap(self) -> None:
        """Create the first data key and the index root once (safe if processes race)."""
        if self.redis.hexists(self.key, "active"):
            return
        self.redis.hsetnx(self.key, "index", self.provider.wrap(os.urandom(32), "index"))
        kid, wrapped = self._new_key()
        self.redis.hset(self.key, f"dek:{kid}", wrapped)
        if self.redis.hsetnx(self.key, "active", kid):
            self.redis.hincrby(self.key, "version", 1)
        else:  # another process won the race: drop our unused key
            self.redis.hdel(self.key, f"dek:{kid}")

    def load(self) -> KeyRing:
        self.bootstrap()
        raw = {as_text(k): as_text(v) for k, v in self.redis.hgetall(self.key).items()}
        keys = {f[4:]: self.provider.unwrap(v, f) for f, v in raw.items() if f.startswith("dek:")}
        index_root = self.provider.unwrap(raw["index"], "index")
        return KeyRing(keys, raw["active"], index_root, store=self, version=raw.get("version", ""))

    def status(self) -> Dict[str, object]:
        raw = {as_text(k): as_text(v) for k, v in self.redis.hgetall(self.key).items()}
        return {
            "active": raw.get("active"),
            "keys": sorted(f[4:] for f in raw if f.startswith("dek:")),
            "retired": {f[8:]: v for f, v in raw.items() if f.startswith("retired:")},
            "kek_id": self.provider.kek_id,
            "version": raw.get("version"),
        }

    def add_key(self) -> str:
        """A new data key becomes active; older keys still open what they sealed."""
        self.bootstrap()
        kid, wrapped = self._new_key()
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.key, mapping={f"dek:{kid}": wrapped, "active": kid})
            pipe.hincrby(self.key, "version", 1)
            pipe.execute()
        return kid

    def retire(self, kid: str) -> None:
        """Destroy a data key: whatever it sealed can no longer be opened by anyone."""
        if kid == as_text(self.redis.hget(self.key, "active")):
            raise KeyStoreError("the active data key cannot be retired")
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self.key, f"dek:{kid}")
            pipe.hset(self.key, f"retired:{kid}", datetime.now(timezone.utc).isoformat())
            pipe.hincrby(self.key, "version", 1)
            pipe.execute()

    def rewrap(self, new_provider: KeyProvider) -> int:
        """Re-wrap every data key under a new KEK (the data itself is untouched)."""
        raw = {as_text(k): as_text(v) for k, v in self.redis.hgetall(self.key).items()}
        rewrapped = {f: new_provider.wrap(self.provider.unwrap(v, f), f)
                     for f, v in raw.items() if f == "index" or f.startswith("dek:")}
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.key, mapping=rewrapped)
            pipe.hincrby(self.key, "version", 1)
            pipe.execute()
        self.provider = new_provider
        return len(rewrapped)


def phone_index(keys: KeyRing, e164: str) -> str:
    """The blind index of an E.164 phone number (the only form a number is stored in).

    160 bits of the HMAC are kept: ample against collisions, and short enough for a key.
    """
    return keys.blind_index(e164, "phone")[:40]


def conversation_id(keys: KeyRing, channel: str, e164_or_session: str) -> str:
    """Rasa conversation id for a sender: a pseudonym, never the number itself.

    ``sms`` conversations use the phone blind index, so actions can find the patient records
    linked to the sender without ever seeing the number.
    """
    if channel == "sms":
        return f"sms-{phone_index(keys, e164_or_session)}"
    return f"{channel}-{keys.blind_index(e164_or_session, channel)[:40]}"


def phone_index_from_conversation(conversation: str) -> Optional[str]:
    """The phone index inside an SMS conversation id, or None for other channels."""
    if conversation.startswith("sms-"):
        return conversation[4:]
    return None


_keyrings: Dict[tuple, KeyRing] = {}


def reset_keyrings() -> None:
    """Forget the loaded key rings (tests switch settings between cases)."""
    _keyrings.clear()


def keyring(cfg: Optional["Settings"] = None) -> KeyRing:
    """The process's key ring: the data keys in Redis, unwrapped with the configured KEK.

    Loaded once per (Redis, prefix, KEK) and refreshed when a rotation changes the key store.
    """
    from bot.config import settings
    from bot.storage.redis_client import sync_redis

    cfg = cfg or settings()
    provider = key_provider(cfg)
    ident = (cfg.redis_url, cfg.redis_prefix, provider.kek_id)
    ring = _keyrings.get(ident)
    if ring is None:
        ring = _keyrings[ident] = KeyRing.deferred(KeyStore(sync_redis(cfg), provider, cfg.redis_prefix))
    return ring


def key_store(cfg: Optional["Settings"] = None) -> KeyStore:
    from bot.config import settings
    from bot.storage.redis_client import sync_redis

    cfg = cfg or settings()
    return KeyStore(sync_redis(cfg), key_provider(cfg), cfg.redis_prefix)
