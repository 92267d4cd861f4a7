"""bot/config.py: environment over .env, validation of required settings, defaults, --write-env."""
from __future__ import annotations

import base64
import os
import secrets
import stat

import pytest

from bot import config
from bot.config import ROOT, ConfigError, load_settings, main, merged_environ, read_env_file

REQUIRED = ("PATIENTBOT_DATA_KEY", "SMS_AUTH_TOKEN", "RASA_GATEWAY_SECRET", "RASA_API_TOKEN", "ACTION_SERVER_SECRET")


def _key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def _required() -> dict:
    return {
        "PATIENTBOT_DATA_KEY": _key(),
        "SMS_AUTH_TOKEN": secrets.token_hex(16),
        "RASA_GATEWAY_SECRET": secrets.token_urlsafe(24),
        "RASA_API_TOKEN": secrets.token_urlsafe(24),
        "ACTION_SERVER_SECRET": secrets.token_urlsafe(24),
    }


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No patientbot setting in the process environment; .env points at a temp file."""
    for name in list(os.environ):
        if name in REQUIRED or name.startswith(("REDIS_", "GATEWAY_", "RASA_", "SMS_", "PATIENTBOT_")):
            monkeypatch.delenv(name)
    env_file = tmp_path / ".env"
    monkeypatch.setenv("PATIENTBOT_ENV_FILE", str(env_file))
    config.reset_cache()
    yield env_file
    config.reset_cache()


def test_environment_wins_over_env_file_and_file_fills_the_rest(clean_env, monkeypatch):
    values = _required()
    clean_env.write_text(
        "# comment\n\n" + "".join(f"{k}={v}\n" for k, v in values.items())
        + "SMS_AUTH_TOKEN=from-file\nREDIS_PREFIX='file:'\nGATEWAY_PORT=\"9000\"\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("SMS_AUTH_TOKEN", "from-env")
    monkeypatch.setenv("GATEWAY_PORT", "9100")
    cfg = config.settings()
    assert cfg.sms_auth_token == "from-env"
    assert cfg.gateway_port == 9100
    assert cfg.redis_prefix == "file:"  # quotes stripped, value only in the file
    assert cfg.data_key == base64.urlsafe_b64decode(values["PATIENTBOT_DATA_KEY"] + "=")
    assert config.settings() is cfg  # cached until reset


def test_read_env_file_ignores_comments_blank_and_malformed_lines(tmp_path):
    path = tmp_path / "x.env"
    path.write_text("# A=1\n\nnot a setting\n B = two words \nC='q'\nD=a=b\n", encoding="utf-8")
    assert read_env_file(path) == {"B": "two words", "C": "q", "D": "a=b"}
    assert read_env_file(tmp_path / "missing.env") == {}
    assert merged_environ(tmp_path / "missing.env")["PATH"] == os.environ["PATH"]


@pytest.mark.parametrize("name", REQUIRED)
def test_missing_required_setting_names_the_variable(name):
    env = _required()
    present = {k: v for k, v in env.items() if k != name}
    with pytest.raises(ConfigError) as err:
        load_settings(present)
    assert name in str(err.value)
    with pytest.raises(ConfigError, match=name):  # blank counts as missing
        load_settings({**env, name: "   "})


def test_malformed_data_key_names_the_variable_not_its_value():
    short = base64.urlsafe_b64encode(b"k" * 16).decode()
    with pytest.raises(ConfigError) as err:
        load_settings({**_required(), "PATIENTBOT_DATA_KEY": short})
    assert "PATIENTBOT_DATA_KEY" in str(err.value) and "32 bytes" in str(err.value)
    assert short not in str(err.value)
    with pytest.raises(ConfigError, match="PATIENTBOT_DATA_KEY"):
        load_settings({**_required(), "PATIENTBOT_DATA_KEY": "é" * 43})


def test_malformed_numbers_name_the_variable():
    with pytest.raises(ConfigError, match="GATEWAY_PORT"):
        load_settings({**_required(), "GATEWAY_PORT": "eighty"})
    with pytest.raises(ConfigError, match="RASA_REPLY_TIMEOUT"):
        load_settings({**_required(), "RASA_REPLY_TIMEOUT": "soon"})


def test_defaults_and_derived_values():
    cfg = load_settings(_required())
    assert (cfg.redis_url, cfg.redis_prefix) == ("redis://127.0.0.1:6379/0", "pb:")
    assert (cfg.gateway_port, cfg.rasa_port, cfg.action_port) == (8080, 5005, 5055)
    assert cfg.rasa_reply_timeout == 10.0 and cfg.log_level == "INFO" and cfg.default_region == "US"
    assert cfg.office_config == ROOT / "office.yml"
    assert cfg.rasa_url == "http://127.0.0.1:5005" and cfg.action_url == "http://127.0.0.1:5055"

    cfg = load_settings({**_required(), "GATEWAY_PORT": "9001", "OFFICE_CONFIG": "conf/o.yml",
                         "SMS_API_BASE": "http://h:1/", "LOG_LEVEL": "debug"})
    assert cfg.public_base_url == "http://127.0.0.1:9001"  # follows the gateway port
    assert cfg.office_config == ROOT / "conf" / "o.yml"  # relative paths are from the repo root
    assert cfg.sms_api_base == "http://h:1" and cfg.log_level == "DEBUG"


def test_repr_hides_secrets():
    env = _required()
    text = repr(load_settings(env))
    for name in REQUIRED[1:]:
        assert env[name] not in text


def test_write_env_creates_private_file_with_fresh_working_secrets(tmp_path):
    first, second = tmp_path / "a.env", tmp_path / "b.env"
    assert main(["--write-env", str(first)]) == 0
    assert main(["--write-env", str(second)]) == 0
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    a, b = read_env_file(first), read_env_file(second)
    assert set(REQUIRED) <= set(a)
    for name in REQUIRED:
        assert a[name] and a[name] != b[name], name
    cfg = load_settings(a)  # the generated file is a valid configuration
    assert len(cfg.data_key) == 32


def test_write_env_refuses_to_overwrite(tmp_path):
    path = tmp_path / ".env"
    path.write_text("SMS_AUTH_TOKEN=keep-me\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exit_:
        main(["--write-env", str(path)])
    assert "refusing to overwrite" in str(exit_.value.code)
    assert path.read_text(encoding="utf-8") == "SMS_AUTH_TOKEN=keep-me\n"


def test_the_key_encryption_key_can_come_from_a_file(tmp_path):
    kek = secrets.token_bytes(32)
    path = tmp_path / "kek"
    path.write_text(base64.urlsafe_b64encode(kek).decode() + "\n")
    env = {**_required(), "PATIENTBOT_KEY_FILE": str(path)}
    del env["PATIENTBOT_DATA_KEY"]
    assert load_settings(env).data_key == kek  # the file wins; the variable is not needed
    with pytest.raises(ConfigError, match="PATIENTBOT_KEY_FILE"):
        load_settings({**env, "PATIENTBOT_KEY_FILE": str(tmp_path / "missing")})
    path.write_text("dG9vIHNob3J0")
    with pytest.raises(ConfigError, match="PATIENTBOT_KEY_FILE must decode to 32 bytes"):
        load_settings(env)


class _TransitStandIn:
    """A KMS-like provider for the test: wraps by XOR with a pad it alone holds (synthetic)."""

    kek_id = "transit1"

    def __init__(self, cfg) -> None:
        self.pad = secrets.token_bytes(32)

    def wrap(self, data_key: bytes, label: str) -> str:
        return f"{self.kek_id}." + bytes(a ^ b for a, b in zip(data_key, self.pad)).hex()

    def unwrap(self, wrapped: str, label: str) -> bytes:
        return bytes(a ^ b for a, b in zip(bytes.fromhex(wrapped.split(".", 1)[1]), self.pad))


def test_a_key_provider_plugs_in_by_name():
    from bot.storage.crypto import LocalKeyProvider, key_provider

    cfg = load_settings(_required())
    assert isinstance(key_provider(cfg), LocalKeyProvider)
    plugged = load_settings({**_required(), "KEY_PROVIDER": "tests.test_config:_TransitStandIn"})
    provider = key_provider(plugged)
    assert type(provider).__name__ == "_TransitStandIn" and provider.kek_id == "transit1"
    assert provider.unwrap(provider.wrap(b"k" * 32, "dek:x"), "dek:x") == b"k" * 32


def test_nlu_cpu_priority_setting():
    """SCHED_IDLE by default on Linux; NLU_SCHED_IDLE=false falls back to NLU_NICE; a typo is refused."""
    import shutil
    import sys

    from bot.ops.stack import low_priority

    default = low_priority(load_settings(_required()))
    if sys.platform.startswith("linux") and shutil.which("chrt"):
        assert default == ["chrt", "--idle", "0"]
    assert low_priority(load_settings({**_required(), "NLU_SCHED_IDLE": "false"})) == ["nice", "-n", "10"]
    assert low_priority(load_settings({**_required(), "NLU_SCHED_IDLE": "off", "NLU_NICE": "0"})) == []
    with pytest.raises(ConfigError, match="NLU_SCHED_IDLE"):
        load_settings({**_required(), "NLU_SCHED_IDLE": "idle"})
