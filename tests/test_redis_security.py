"""Redis over TLS with an ACL user, from settings alone (bot/storage/redis_client.py, bot/storage/lock_store.py).

A private redis-server is started with TLS only (no plain port), a certificate from a
throwaway CA made here, and the default user disabled; the application user may touch only
keys under its prefix. The project's clients connect with REDIS_URL=rediss://... plus
REDIS_USERNAME / REDIS_PASSWORD; a wrong password, a plain connection and keys outside the
prefix are refused.
"""
from __future__ import annotations

import datetime
import shutil
import socket
import subprocess
import time

import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bot.config import load_settings

PASSWORD = "synthetic-test-password-7"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _certificates(folder):
    """A CA and a server certificate for 127.0.0.1, written as PEM files."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "patientbot test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
          .not_valid_after(now + datetime.timedelta(hours=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    import ipaddress

    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = {name: folder / f"{name}.pem" for name in ("ca", "cert", "key")}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return paths


@pytest.fixture
def tls_redis(tmp_path):
    paths = _certificates(tmp_path)
    port = _free_port()
    conf = tmp_path / "redis.conf"
    conf.write_text("\n".join([
        "port 0", f"tls-port {port}", 'save ""', "appendonly no", f"dir {tmp_path}",
        f"tls-cert-file {paths['cert']}", f"tls-key-file {paths['key']}", f"tls-ca-cert-file {paths['ca']}",
        "tls-auth-clients no",
        "user default off",
        f"user pbapp on >{PASSWORD} ~pbtls:* &* +@all",
    ]) + "\n")
    proc = subprocess.Popen([shutil.which("redis-server"), str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={paths['ca']}"
    probe = redis.Redis.from_url(url, username="pbapp", password=PASSWORD)
    try:
        for _ in range(100):
            try:
                probe.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        else:
            pytest.fail("private TLS redis-server did not start")
        yield port, url
    finally:
        proc.kill()
        proc.wait()


def test_clients_use_tls_and_the_acl_user_from_settings(tls_redis, settings_env, monkeypatch):
    from bot.storage import crypto
    from bot.storage.lock_store import SettingsRedisLockStore
    from bot.storage.redis_client import _sync, sync_redis

    port, url = tls_redis
    for name, value in {"REDIS_URL": url, "REDIS_USERNAME": "pbapp", "REDIS_PASSWORD": PASSWORD,
                        "REDIS_PREFIX": "pbtls:"}.items():
        monkeypatch.setenv(name, value)
    from bot import config

    config.reset_cache()
    crypto.reset_keyrings()
    _sync.clear()
    cfg = load_settings()
    client = sync_redis(cfg)
    assert client.connection_pool.connection_class is redis.SSLConnection
    ring = crypto.keyring(cfg)  # data keys created and loaded over TLS, as the ACL user
    client.set("pbtls:x", ring.encrypt_text("synthetic", "pbtls:x"))
    assert ring.decrypt_text(client.get("pbtls:x"), "pbtls:x") == "synthetic"
    assert client.acl_whoami() in ("pbapp", b"pbapp")
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.set("other:x", "1")  # the ACL confines the app to its prefix
    lock_store = SettingsRedisLockStore()
    assert lock_store.red is client and lock_store.key_prefix == "pbtls:lock:"
    _sync.clear()


def test_wrong_password_and_plain_connections_are_refused(tls_redis):
    port, url = tls_redis
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis.from_url(url, username="pbapp", password="wrong").ping()
    with pytest.raises(redis.exceptions.ConnectionError):
        redis.Redis(port=port, username="pbapp", password=PASSWORD, socket_timeout=2).ping()
    with pytest.raises((redis.exceptions.AuthenticationError, redis.exceptions.ResponseError)):
        redis.Redis.from_url(url).ping()  # the default user is off
