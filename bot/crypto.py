"""Encryption at rest and keyed pseudonyms.

* Every stored PHI value is sealed with AES-256-GCM (random 96-bit nonce) and *associated
  data* naming the record and field it belongs to, so a ciphertext copied onto another record
  fails to open.
* Phone numbers are never stored or used as keys in clear: they are looked up through a keyed
  blind index (HMAC-SHA256), and Rasa conversation ids are pseudonyms from that index.
* The encryption key and the blind-index key are separate HKDF subkeys of one root key
  (``PATIENTBOT_DATA_KEY``), and every ciphertext names the key id that sealed it, so keys
  can be rotated later without guessing which key opens what.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Optional

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

FORMAT = "pb1"  # ciphertext format tag: pb1.<key id>.<base64url(nonce || ciphertext+tag)>
NONCE_BYTES = 12


class DecryptionError(Exception):
    """A ciphertext could not be opened: wrong key, wrong record, or tampered bytes."""


def _hkdf(root: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(root)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class KeyRing:
    """Subkeys derived once from the root key (derivation is not repeated per message)."""

    key_id: str
    _enc: AESGCM
    _index_key: bytes

    @classmethod
    def from_root(cls, root: bytes) -> "KeyRing":
        if len(root) != 32:
            raise ValueError("the root key must be 32 bytes")
        key_id = _hkdf(root, b"patientbot key-id v1").hex()[:8]
        return cls(
            key_id=key_id,
            _enc=AESGCM(_hkdf(root, b"patientbot encryption v1")),
            _index_key=_hkdf(root, b"patientbot blind-index v1"),
        )

    # -- sealing -----------------------------------------------------------------------------
    def encrypt(self, plaintext: bytes, aad: str) -> str:
        """Seal ``plaintext`` bound to ``aad`` (e.g. ``"patient:<id>:record"``)."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._enc.encrypt(nonce, plaintext, aad.encode("utf-8"))
        return f"{FORMAT}.{self.key_id}.{_b64(nonce + sealed)}"

    def decrypt(self, token: str, aad: str) -> bytes:
        """Open a ciphertext made by :meth:`encrypt` with the same ``aad``."""
        if isinstance(token, bytes):
            token = token.decode("ascii", errors="replace")
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != FORMAT:
            raise DecryptionError("not a patientbot ciphertext")
        if parts[1] != self.key_id:
            raise DecryptionError(f"sealed with key {parts[1]}, which this key ring does not hold")
        try:
            raw = _unb64(parts[2])
            return self._enc.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad.encode("utf-8"))
        except (InvalidTag, ValueError):
            raise DecryptionError("ciphertext does not open for this record (tampered, moved or wrong key)") from None

    def encrypt_text(self, text: str, aad: str) -> str:
        return self.encrypt(text.encode("utf-8"), aad)

    def decrypt_text(self, token: str, aad: str) -> str:
        return self.decrypt(token, aad).decode("utf-8")

    # -- blind index -------------------------------------------------------------------------
    def blind_index(self, value: str, purpose: str) -> str:
        """Keyed HMAC-SHA256 of ``value`` for lookups; ``purpose`` separates index spaces."""
        mac = hmac.new(self._index_key, f"{purpose}\x00{value}".encode("utf-8"), hashlib.sha256)
        return mac.hexdigest()


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


_keyring: Optional[KeyRing] = None
_keyring_root: Optional[bytes] = None


def keyring(root: Optional[bytes] = None) -> KeyRing:
    """The process-wide key ring, derived once from the configured root key."""
    global _keyring, _keyring_root
    if root is None:
        from bot.config import settings

        root = settings().data_key
    if _keyring is None or _keyring_root != root:
        _keyring, _keyring_root = KeyRing.from_root(root), root
    return _keyring
