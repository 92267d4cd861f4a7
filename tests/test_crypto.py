"""bot/storage/crypto.py: AES-GCM sealing bound to its record, keyed blind indexes, pseudonymous ids."""
from __future__ import annotations

import base64
import hashlib
import hmac
import os

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bot.storage import crypto
from bot.storage.crypto import DecryptionError, KeyRing, conversation_id, phone_index, phone_index_from_conversation

NUMBERS = ["+15550100101", "+15550100102", "+442079460123"]  # synthetic


@pytest.fixture
def root() -> bytes:
    return os.urandom(32)


@pytest.fixture
def keys(root) -> KeyRing:
    return KeyRing.from_root(root)


def _flip_char(token: str, at: int = -6) -> str:
    """Change one base64 character that carries only data bits (not the final padding bits)."""
    return token[:at] + ("A" if token[at] != "A" else "B") + token[at + 1:]


def test_round_trip_text_and_bytes(keys):
    token = keys.encrypt_text("synthetic note: ünïcode ✓", "patient:p1:record")
    assert keys.decrypt_text(token, "patient:p1:record") == "synthetic note: ünïcode ✓"
    assert keys.decrypt(token.encode("ascii"), "patient:p1:record") == "synthetic note: ünïcode ✓".encode()
    assert keys.decrypt(keys.encrypt(b"", "a"), "a") == b""
    assert "synthetic" not in token


@pytest.mark.parametrize("other_aad", ["patient:p2:record", "patient:p1:phone", "patient:p1:record ", ""])
def test_ciphertext_is_bound_to_its_record_and_field(keys, other_aad):
    token = keys.encrypt_text("synthetic", "patient:p1:record")
    with pytest.raises(DecryptionError):
        keys.decrypt(token, other_aad)


def test_tampered_or_malformed_ciphertext_fails(keys):
    token = keys.encrypt_text("synthetic value", "a")
    fmt, key_id, body = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    for i in (0, 12, len(raw) - 1):  # nonce, ciphertext, tag
        bad = bytearray(raw)
        bad[i] ^= 0x01
        forged = f"{fmt}.{key_id}." + base64.urlsafe_b64encode(bytes(bad)).decode().rstrip("=")
        with pytest.raises(DecryptionError):
            keys.decrypt(forged, "a")
    for broken in (_flip_char(token), token[:-4], f"{fmt}.{key_id}.", "pb2" + token[3:], "not-a-token", body):
        with pytest.raises(DecryptionError):
            keys.decrypt(broken, "a")


def test_nonces_differ(keys):
    tokens = {keys.encrypt_text("same plaintext", "a") for _ in range(50)}
    assert len(tokens) == 50
    nonces = {base64.urlsafe_b64decode(t.split(".")[2] + "==")[:12] for t in tokens}
    assert len(nonces) == 50


def test_ciphertext_names_the_key_that_sealed_it(root, keys):
    token = keys.encrypt_text("synthetic", "a")
    fmt, key_id, _ = token.split(".")
    assert fmt == "pb1" and key_id == keys.key_id and len(key_id) == 8
    assert KeyRing.from_root(root).key_id == key_id  # stable for the same root
    other = KeyRing.from_root(os.urandom(32))
    assert other.key_id != key_id
    with pytest.raises(DecryptionError, match=key_id):
        other.decrypt(token, "a")
    # Even with the key id relabelled, another key does not open it.
    with pytest.raises(DecryptionError):
        other.decrypt(token.replace(key_id, other.key_id, 1), "a")


def test_blind_index_is_deterministic_keyed_and_purpose_separated(root, keys):
    value = "+15550100101"
    assert keys.blind_index(value, "phone") == KeyRing.from_root(root).blind_index(value, "phone")
    assert keys.blind_index(value, "phone") != KeyRing.from_root(os.urandom(32)).blind_index(value, "phone")
    assert keys.blind_index(value, "phone") != keys.blind_index(value, "patient")
    assert keys.blind_index(value, "phone") != keys.blind_index("+15550100102", "phone")
    unkeyed = hashlib.sha256(f"phone\x00{value}".encode()).hexdigest()
    assert keys.blind_index(value, "phone") != unkeyed


def test_encryption_and_index_use_different_subkeys(root, keys):
    data_key = crypto._hkdf(root, b"patientbot data-key v1")  # noqa: SLF001
    enc_key = crypto._hkdf(data_key, b"patientbot encryption v1")  # noqa: SLF001
    index_key = crypto._hkdf(crypto._hkdf(root, b"patientbot index-root v1"), b"patientbot blind-index v1")  # noqa: SLF001
    assert len({enc_key, index_key, root, data_key}) == 4
    # The index is an HMAC under the index subkey (not the root, not the encryption key) ...
    expected = hmac.new(index_key, b"phone\x00+15550100101", hashlib.sha256).hexdigest()
    assert keys.blind_index("+15550100101", "phone") == expected
    for wrong in (root, enc_key):
        assert hmac.new(wrong, b"phone\x00+15550100101", hashlib.sha256).hexdigest() != expected
    # ... and ciphertexts open with the encryption subkey, not with the index key.
    raw = base64.urlsafe_b64decode(keys.encrypt(b"synthetic", "a").split(".")[2] + "==")
    assert AESGCM(enc_key).decrypt(raw[:12], raw[12:], b"a") == b"synthetic"
    with pytest.raises(InvalidTag):
        AESGCM(index_key).decrypt(raw[:12], raw[12:], b"a")


@pytest.mark.parametrize("number", NUMBERS)
def test_phone_index_and_conversation_id_never_contain_the_number(keys, number):
    digits = number.lstrip("+")
    national = digits[-10:]
    ids = [phone_index(keys, number), conversation_id(keys, "sms", number), conversation_id(keys, "web", number)]
    for value in ids:
        assert digits not in value and national not in value and number not in value
        assert national[-7:] not in value  # not even the subscriber part
    idx, sms_id, web_id = ids
    assert len(idx) == 40 and int(idx, 16) >= 0
    assert sms_id == f"sms-{idx}" and phone_index_from_conversation(sms_id) == idx
    assert web_id.startswith("web-") and web_id[4:] != idx  # web ids live in their own index space
    assert phone_index_from_conversation(web_id) is None
    assert phone_index(keys, number) == idx  # deterministic: the same sender maps to one conversation


def test_root_key_must_be_32_bytes():
    with pytest.raises(ValueError):
        KeyRing.from_root(b"short")
    with pytest.raises(ValueError):
        crypto.LocalKeyProvider(b"short")
