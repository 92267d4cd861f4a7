"""``patientbot links sweep``: expire the secure links past their 15 minutes that nobody opened,
each audited ``secure_link_expired`` once (bot/records/secure_links.py). Run it from the
scheduler with ``patientbot remind`` (every 15 minutes); runs that overlap are harmless, each
link expires once."""
from __future__ import annotations

import argparse
import asyncio

from bot.cli.common import redis_session


def cmd_links_sweep(args: argparse.Namespace) -> int:
    """Expire the unopened links past their time; print how many."""
    async def sweep() -> int:
        async with redis_session() as s:
            return await s.services.secure_links.sweep()

    print(f"{asyncio.run(sweep())} secure link(s) expired")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``links sweep``."""
    links = sub.add_parser("links", help="one-time links to the secure web chat").add_subparsers(dest="links_cmd",
                                                                                                required=True)
    p = links.add_parser("sweep", help="expire the unopened links past their 15 minutes (audited)")
    p.set_defaults(func=cmd_links_sweep)
