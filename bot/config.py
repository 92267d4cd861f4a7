"""Settings, from the environment in one place.

The environment wins; an ignored ``.env`` file in the repository root (written by
``scripts/setup.sh``) fills in what the environment does not set. Required settings are
validated at start-up: a missing one raises :class:`ConfigError` naming the variable.

``python -m bot.config --write-env .env`` writes a new ``.env`` with freshly generated
secrets, so no key ever lives in the repository, not even a development one.
"""
from __future__ import annotations

import argparse
import base64
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ENV_FILE = ROOT / ".env"
# The clarifying question's calibrated thresholds (bot.core.clarify; written by `patientbot nlu calibrate`).
NLU_THRESHOLDS_FILE = ROOT / "data" / "nlu_thresholds.yml"


class ConfigError(RuntimeError):
    """A setting is missing or malformed. The message names the variable."""


def read_env_file(path: Path) -> Dict[str, str]:
    """Parse a ``KEY=value`` file (comments and blank lines ignored, no shell expansion)."""
    values: Dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip('"').strip("'")
    return values


def merged_environ(env_file: Optional[Path] = None) -> Dict[str, str]:
    """The ``.env`` values overlaid by the real environment (environment first)."""
    merged = read_env_file(env_file or Path(os.environ.get("PATIENTBOT_ENV_FILE", DEFAULT_ENV_FILE)))
    merged.update(os.environ)
    return merged


@dataclass(frozen=True)
class Settings:
    """Everything configurable about a running patientbot, validated."""

    data_key: bytes  # 32-byte key-encryption key (KEK): wraps the data keys kept in Redis (bot.storage.crypto)
    sms_auth_token: str
    rasa_secret: str  # shared secret between the gateway and the Rasa-side connector
    rasa_api_token: str  # Rasa HTTP API token (--auth-token)
    action_secret: str  # shared secret between Rasa and the action server
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "pb:"
    # Connections each gateway process opens to Redis at start, before taking traffic: a burst
    # of first messages then finds them open instead of opening them all at once (bot.storage.redis_client).
    redis_warm_connections: int = 64
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8080
    public_base_url: str = "http://127.0.0.1:8080"
    rasa_port: int = 5005
    action_port: int = 5055
    sms_account_sid: str = "AC00000000000000000000000000000000"
    sms_api_base: str = "http://127.0.0.1:8089"
    sms_from_number: str = "+15550100000"
    default_region: str = "US"
    office_config: Path = ROOT / "office.yml"
    model_path: Path = ROOT / "models" / "patientbot.tar.gz"
    rasa_reply_timeout: float = 10.0
    rasa_max_connections: int = 16  # the gateway's kept-alive connections to its Rasa (bot.conversation.rasa_client)
    gateway_workers: int = 2  # gateway processes sharing the port (channels.gateway.workers): one core each
    nlu_nice: int = 10  # CPU niceness of Rasa and the action server (bot.ops.stack); 0: same as the gateway
    # Rasa, the action server and trainings under Linux's SCHED_IDLE: they get the CPU only when
    # the gateway and Redis do not want it, and yield it the moment either wakes (bot.ops.stack).
    nlu_sched_idle: bool = True
    sms_rate_limit_per_minute: int = 20
    sms_holding_after: float = 1.0
    idv_require_code: bool = False  # SMS: a one-time code after the DOB (the code goes to the same phone)
    # Web chat: a one-time code by SMS to the number on file after the DOB. On unless turned off:
    # a browser proves nothing by itself, and with the code step the reply to a date of birth is
    # the same whether or not it matched (bot.conversation.verification).
    webchat_require_code: bool = True
    # Web chat (channels/web): the other sites whose pages may embed it (origins, checked on the
    # socket.io handshake and named in the chat page's frame-ancestors), and its rate limit.
    webchat_allowed_origins: Tuple[str, ...] = ()
    webchat_rate_limit_per_minute: int = 20
    # Staff console (channels/staff): sessions, sign-in lockout, queue SLA.
    staff_session_idle_minutes: int = 15  # signed out after this long without activity
    staff_session_max_hours: int = 12  # and after this long whatever the activity
    staff_cookie_secure: bool = True  # False only for a console on plain http (local development)
    staff_login_max_failures: int = 5  # failed sign-ins in a row before the account is locked
    staff_lockout_minutes: int = 15
    staff_sla_minutes: int = 10  # unclaimed conversations waiting longer are highlighted
    staff_totp_issuer: str = "patientbot"  # the name authenticator apps show
    # Retention in days (bot.storage.retention); audit below six years is refused there.
    retention_conversation_days: int = 90
    retention_message_days: int = 7 * 365
    retention_appointment_days: int = 2 * 365
    retention_consent_days: int = 7 * 365
    retention_audit_days: int = 7 * 365
    # The admins' training loop (bot.nlu.inbox, bot.nlu.training).
    nlu_review_threshold: float = 0.7  # parses below this confidence go to the review inbox
    nlu_inbox_days: int = 30  # unreviewed inbox items (sealed) expire after this long
    rollout_margin: float = 0.01  # a new model may score at most this much below the current one
    nlu_project_dir: Path = ROOT  # where the console writes labelled examples (its data/nlu.yml)
    model_candidate_dir: Path = ROOT / "models" / "candidate"  # the console trains candidates here, beside the live
    evaluation_dir: Path = ROOT / "results" / "evaluation"  # the console's evaluation report (and its job log)
    log_level: str = "INFO"
    extra: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def rasa_url(self) -> str:
        return f"http://127.0.0.1:{self.rasa_port}"

    @property
    def action_url(self) -> str:
        return f"http://127.0.0.1:{self.action_port}"

    @property
    def public_origin(self) -> str:
        """The gateway's own origin as browsers name it (scheme://host[:port] of PUBLIC_BASE_URL)."""
        return _origin(self.public_base_url)

    @property
    def gateway_url(self) -> str:
        return f"http://{self.gateway_host}:{self.gateway_port}"

    def __repr__(self) -> str:  # never print secrets
        return f"Settings(redis_url=<hidden>, gateway_port={self.gateway_port}, rasa_port={self.rasa_port})"


_REQUIRED_HELP = "run scripts/setup.sh to generate one into .env, or set it in the environment"


def _require(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"missing setting {name}: {_REQUIRED_HELP}")
    return value


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"setting {name} must be a whole number, got {raw!r}") from None


def _workers(env: Mapping[str, str]) -> int:
    workers = _int(env, "GATEWAY_WORKERS", 2)
    if not 1 <= workers <= 64:
        raise ConfigError(f"setting GATEWAY_WORKERS must be between 1 and 64, got {workers}")
    return workers


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"setting {name} must be true or false, got {raw!r}")


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"setting {name} must be a number, got {raw!r}") from None


def _path(env: Mapping[str, str], name: str, default: Path) -> Path:
    """A directory setting; relative paths are relative to the checkout, as MODEL_PATH is."""
    raw = Path(env.get(name) or default)
    return raw if raw.is_absolute() else ROOT / raw


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _origins(env: Mapping[str, str], name: str) -> Tuple[str, ...]:
    """A comma-separated list of web origins (``https://www.example.org``: scheme, host, optional
    port, nothing else), as browsers send them in the Origin header."""
    found = []
    for raw in (env.get(name) or "").split(","):
        item = raw.strip().rstrip("/")
        if not item:
            continue
        parts = urlsplit(item)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query \
                or parts.fragment or parts.username or parts.password or "*" in item:
            raise ConfigError(f"setting {name}: {item!r} is not an origin like https://www.example.org")
        found.append(_origin(item))
    return tuple(dict.fromkeys(found))


def _decode_key(name: str, raw: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(raw.encode("ascii") + b"=" * (-len(raw) % 4))
    except (ValueError, UnicodeEncodeError):
        raise ConfigError(f"setting {name} must be base64 (url-safe) of 32 random bytes") from None
    if len(key) != 32:
        raise ConfigError(f"setting {name} must decode to 32 bytes, got {len(key)}")
    return key


def _key_encryption_key(env: Mapping[str, str]) -> bytes:
    """The KEK from PATIENTBOT_KEY_FILE (a file holding its base64) or PATIENTBOT_DATA_KEY."""
    path = env.get("PATIENTBOT_KEY_FILE", "").strip()
    if path:
        try:
            raw = Path(path).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            raise ConfigError(f"setting PATIENTBOT_KEY_FILE: cannot read {path}") from None
        return _decode_key("PATIENTBOT_KEY_FILE", raw)
    return _decode_key("PATIENTBOT_DATA_KEY", _require(env, "PATIENTBOT_DATA_KEY"))


def load_settings(env: Optional[Mapping[str, str]] = None) -> Settings:
    """Build validated :class:`Settings` from ``env`` (default: environment over ``.env``)."""
    env = merged_environ() if env is None else env
    gateway_port = _int(env, "GATEWAY_PORT", 8080)
    gateway_host = env.get("GATEWAY_HOST", "127.0.0.1")
    office = Path(env.get("OFFICE_CONFIG", str(ROOT / "office.yml")))
    model = Path(env.get("MODEL_PATH", str(ROOT / "models" / "patientbot.tar.gz")))
    return Settings(
        data_key=_key_encryption_key(env),
        sms_auth_token=_require(env, "SMS_AUTH_TOKEN"),
        rasa_secret=_require(env, "RASA_GATEWAY_SECRET"),
        rasa_api_token=_require(env, "RASA_API_TOKEN"),
        action_secret=_require(env, "ACTION_SERVER_SECRET"),
        redis_url=env.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        redis_prefix=env.get("REDIS_PREFIX", "pb:"),
        redis_warm_connections=_int(env, "REDIS_WARM_CONNECTIONS", 64),
        gateway_host=gateway_host,
        gateway_port=gateway_port,
        public_base_url=env.get("PUBLIC_BASE_URL", f"http://127.0.0.1:{gateway_port}").rstrip("/"),
        rasa_port=_int(env, "RASA_PORT", 5005),
        action_port=_int(env, "ACTION_PORT", 5055),
        sms_account_sid=env.get("SMS_ACCOUNT_SID", "AC00000000000000000000000000000000"),
        sms_api_base=env.get("SMS_API_BASE", "http://127.0.0.1:8089").rstrip("/"),
        sms_from_number=env.get("SMS_FROM_NUMBER", "+15550100000"),
        default_region=env.get("DEFAULT_REGION", "US"),
        office_config=office if office.is_absolute() else ROOT / office,
        model_path=model if model.is_absolute() else ROOT / model,
        rasa_reply_timeout=_float(env, "RASA_REPLY_TIMEOUT", 10.0),
        rasa_max_connections=_int(env, "RASA_MAX_CONNECTIONS", 16),
        gateway_workers=_workers(env),
        nlu_nice=_int(env, "NLU_NICE", 10),
        nlu_sched_idle=_bool(env, "NLU_SCHED_IDLE", True),
        sms_rate_limit_per_minute=_int(env, "SMS_RATE_LIMIT_PER_MINUTE", 20),
        sms_holding_after=_float(env, "SMS_HOLDING_AFTER_SECONDS", 1.0),
        idv_require_code=_bool(env, "IDV_REQUIRE_CODE", False),
        webchat_require_code=_bool(env, "WEBCHAT_REQUIRE_CODE", True),
        webchat_allowed_origins=_origins(env, "WEBCHAT_ALLOWED_ORIGINS"),
        webchat_rate_limit_per_minute=_int(env, "WEBCHAT_RATE_LIMIT_PER_MINUTE", 20),
        staff_session_idle_minutes=_int(env, "STAFF_SESSION_IDLE_MINUTES", 15),
        staff_session_max_hours=_int(env, "STAFF_SESSION_MAX_HOURS", 12),
        staff_cookie_secure=_bool(env, "STAFF_COOKIE_SECURE", True),
        staff_login_max_failures=_int(env, "STAFF_LOGIN_MAX_FAILURES", 5),
        staff_lockout_minutes=_int(env, "STAFF_LOCKOUT_MINUTES", 15),
        staff_sla_minutes=_int(env, "STAFF_SLA_MINUTES", 10),
        staff_totp_issuer=env.get("STAFF_TOTP_ISSUER", "patientbot"),
        retention_conversation_days=_int(env, "RETENTION_CONVERSATION_DAYS", 90),
        retention_message_days=_int(env, "RETENTION_MESSAGE_DAYS", 7 * 365),
        retention_appointment_days=_int(env, "RETENTION_APPOINTMENT_DAYS", 2 * 365),
        retention_consent_days=_int(env, "RETENTION_CONSENT_DAYS", 7 * 365),
        retention_audit_days=_int(env, "RETENTION_AUDIT_DAYS", 7 * 365),
        nlu_review_threshold=_float(env, "NLU_REVIEW_THRESHOLD", 0.7),
        nlu_inbox_days=_int(env, "NLU_INBOX_DAYS", 30),
        rollout_margin=_float(env, "ROLLOUT_MARGIN", 0.01),
        nlu_project_dir=Path(env.get("NLU_PROJECT_DIR", str(ROOT))),
        model_candidate_dir=_path(env, "MODEL_CANDIDATE_DIR", ROOT / "models" / "candidate"),
        evaluation_dir=_path(env, "EVALUATION_DIR", ROOT / "results" / "evaluation"),
        log_level=env.get("LOG_LEVEL", "INFO").upper(),
        extra=dict(env),
    )


_cached: Optional[Settings] = None


def settings() -> Settings:
    """The process-wide settings, loaded once."""
    global _cached
    if _cached is None:
        _cached = load_settings()
    return _cached


def reset_cache() -> None:
    """Forget the cached settings (tests that change the environment call this)."""
    global _cached
    _cached = None


def generate_env_text() -> str:
    """A new ``.env`` body with random secrets for every required setting."""

    def token(n: int = 32) -> str:
        return secrets.token_urlsafe(n)

    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii").rstrip("=")
    return (
        "# Generated by scripts/setup.sh for this machine only. Never commit this file.\n"
        f"PATIENTBOT_DATA_KEY={key}\n"
        f"SMS_AUTH_TOKEN={secrets.token_hex(16)}\n"
        f"RASA_GATEWAY_SECRET={token()}\n"
        f"RASA_API_TOKEN={token()}\n"
        f"ACTION_SERVER_SECRET={token()}\n"
    )


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description="patientbot settings helper")
    parser.add_argument("--write-env", metavar="PATH", help="write a new .env with generated secrets")
    args = parser.parse_args(argv)
    if args.write_env:
        path = Path(args.write_env)
        try:  # created private and exclusively: secrets are never readable by others, never overwritten
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise SystemExit(f"{path} exists; refusing to overwrite its secrets") from None
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(generate_env_text())
        return 0
    load_settings()
    print("settings OK")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
