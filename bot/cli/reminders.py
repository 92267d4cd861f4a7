"""``patientbot remind``: send the appointment reminders due now (or at ``--at``), and show
who got one, who did not, and why."""
from __future__ import annotations

import argparse
import asyncio
from datetime import datetime, timezone

from bot.cli.common import fail
from bot.config import settings


def cmd_remind(args: argparse.Namespace) -> int:
    """Send the reminders due now (or at --at), and print who got one and who did not, and why."""
    import aiohttp

    from bot.records.reminders import Reminders
    from bot.services import build_services
    from channels.sms.sender import SmsSender

    cfg = settings()
    at = datetime.fromisoformat(args.at) if args.at else datetime.now(timezone.utc)
    if at.tzinfo is None:
        return fail("--at needs a time zone, e.g. 2030-01-14T15:00:00+00:00")
    windows = [int(w) for w in args.windows.split(",")]

    async def run():
        services = build_services(cfg)
        try:
            async with aiohttp.ClientSession() as http:
                sender = SmsSender(http, cfg, services.redis, services.keys)

                async def send(to, body, conversation):
                    return await sender.send(to, body, conversation, actor="system:reminders")

                return await Reminders(services.redis, services.keys, cfg.redis_prefix, services.office,
                                       services.outbound, send, windows).run(at)
        finally:
            await services.close()

    outcomes = asyncio.run(run())
    for o in outcomes:
        print(f"{o.result:7} {o.reason:20} {o.window_hours:>3} h  appointment {o.appointment[:12]}  number {o.number_index[:12]}")
    sent = sum(o.result == "sent" for o in outcomes)
    print(f"{sent} reminder(s) sent, {len(outcomes) - sent} not sent")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``remind``."""
    p = sub.add_parser("remind", help="send the appointment reminders that are due")
    p.add_argument("--at", help="pretend it is this time (ISO 8601 with zone); default now")
    p.add_argument("--windows", default="48,2", help="hours before the appointment, comma-separated")
    p.set_defaults(func=cmd_remind)
