"""``patientbot identity unlock NUMBER``: lift a verification lock-out (staff, after checking
the caller's identity by phone)."""
from __future__ import annotations

import argparse
import asyncio

from bot.cli.common import fail, phone_number, redis_session


def cmd_identity_unlock(args: argparse.Namespace) -> int:
    """Staff lift a verification lock-out (after checking the caller's identity by phone)."""
    from bot.storage.crypto import conversation_id

    number = phone_number(args.number)
    if number is None:
        return fail("not a phone number")

    async def unlock():
        async with redis_session() as s:
            conv = conversation_id(s.keys, "sms", number)
            await s.services.identity.staff_unlock(conv)
            await s.audit("verification_unlocked", conv)
            return conv

    print(f"verification unlocked for conversation {asyncio.run(unlock())}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``identity unlock``."""
    identity = sub.add_parser("identity", help="identity verification").add_subparsers(dest="identity_cmd",
                                                                                     required=True)
    p = identity.add_parser("unlock", help="lift a verification lock-out for a number")
    p.add_argument("number")
    p.set_defaults(func=cmd_identity_unlock)
