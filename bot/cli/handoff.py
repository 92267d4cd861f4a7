"""``patientbot handoff list``: the staff queue, by pseudonymous conversation id."""
from __future__ import annotations

import argparse
import asyncio

from bot.cli.common import redis_session


def cmd_handoff_list(args: argparse.Namespace) -> int:
    async def waiting():
        async with redis_session() as s:
            return await s.services.handoff.waiting()

    entries = asyncio.run(waiting())
    if not entries:
        print("no conversation is waiting for staff")
    for e in entries:
        print(f"{e['priority']:9} {e['reason']:26} since {e['since']}  {e['conversation']}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``handoff list``."""
    handoff = sub.add_parser("handoff", help="the staff hand-off queue").add_subparsers(dest="handoff_cmd", required=True)
    handoff.add_parser("list", help="conversations waiting for staff").set_defaults(func=cmd_handoff_list)
