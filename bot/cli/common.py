"""What every ``patientbot`` command shares: who runs it (the audit trail's actor), how it
fails, and a Redis session with the key ring that audits as that actor."""
from __future__ import annotations

import asyncio
import getpass
import os
import re
import sys
from contextlib import asynccontextmanager, contextmanager
from typing import IO, TYPE_CHECKING, Any, AsyncIterator, Iterator, NamedTuple, Optional

from bot.config import Settings, settings

if TYPE_CHECKING:
    from bot.services import Services


def cli_actor() -> str:
    """Who ran the command, for the audit trail: the operating-system account, or the staff
    member in ``PATIENTBOT_ACTOR`` (``staff:<id>``) when the console runs the command for them.

    Only ``staff:`` ids are taken from the environment: anyone who can run the command could
    set it, so it may name a console user but never pass for another kind of actor."""
    claimed = os.environ.get("PATIENTBOT_ACTOR", "")
    if re.fullmatch(r"staff:[A-Za-z0-9-]{1,64}", claimed):
        return claimed
    try:
        return f"admin:cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"admin:cli:uid{os.getuid()}"


def fail(message: str) -> int:
    """Print ``patientbot: message`` on standard error; returns the exit code 1."""
    print(f"patientbot: {message}", file=sys.stderr)
    return 1


def phone_number(raw: str) -> Optional[str]:
    """``raw`` as an E.164 number (the office's region for local numbers), or None."""
    from bot.core.phone import try_e164

    return try_e164(raw, settings().default_region)


def number_index(raw: str) -> Optional[str]:
    """The blind index of the phone number ``raw`` (how records are kept), or None if it is not one."""
    from bot.storage.crypto import keyring, phone_index

    number = phone_number(raw)
    return None if number is None else phone_index(keyring(), number)


@contextmanager
def output(path: Optional[str], newline: Optional[str] = None) -> Iterator[IO[str]]:
    """The file at ``path``, written and closed, or standard output if no path is given."""
    if not path:
        yield sys.stdout
        return
    with open(path, "w", newline=newline, encoding="utf-8") as out:
        yield out


class Session(NamedTuple):
    """One command's services (bot.services: the stores on one Redis client, the key ring,
    the settings), and an audit call that records as the CLI actor."""

    services: "Services"

    @property
    def client(self) -> Any:
        return self.services.redis

    @property
    def keys(self) -> Any:
        return self.services.keys

    @property
    def cfg(self) -> Settings:
        return self.services.cfg

    @property
    def prefix(self) -> str:
        return self.cfg.redis_prefix

    async def audit(self, action: str, subject: str = "", outcome: str = "ok", details: Optional[dict] = None,
                    actor: Optional[str] = None) -> None:
        """Record ``action`` in the audit log, as the CLI actor unless ``actor`` is given."""
        await self.services.audit.record(actor or cli_actor(), action, subject, outcome, details or {})


@asynccontextmanager
async def redis_session() -> AsyncIterator[Session]:
    """The services from the settings (the composition root, bot.services); the Redis client
    is closed on the way out. The key ring loads its data keys only when first used."""
    from bot.services import build_services

    services = build_services(settings())
    try:
        yield Session(services)
    finally:
        await services.close()


def audited(action: str, subject: str = "", outcome: str = "ok", details: Optional[dict] = None,
            actor: Optional[str] = None) -> None:
    """Record one audit event (as the CLI actor unless ``actor`` is given) in a session of its own."""
    async def record() -> None:
        async with redis_session() as session:
            await session.audit(action, subject, outcome, details, actor)

    asyncio.run(record())
