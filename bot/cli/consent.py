"""``patientbot consent show | export | record``: the consent record, kept by blind index.

    patientbot consent show NUMBER      a number's consent state and full history
    patientbot consent export [--format jsonl|csv] [--out FILE]   every consent change, for review
    patientbot consent record NUMBER opted_in|opted_out --source staff|web_form|import --text "..."

Every command is audited.
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys

from bot.cli.common import fail, number_index, output, redis_session


async def _with_registry(fn):
    """``fn(registry, session)`` with the consent registry of a Redis session."""
    async with redis_session() as s:
        return await fn(s.services.consent, s)


def _state_line(idx: str, state) -> str:
    """A number's consent state as one line (by blind index, never the number)."""
    scopes = f" (scopes: {', '.join(state.scopes)})" if state.scopes else ""
    return f"number index {idx}: {state.status}{scopes}"


def cmd_consent_show(args: argparse.Namespace) -> int:
    idx = number_index(args.number)
    if idx is None:
        return fail("not a phone number")

    async def show(registry, s):
        await s.audit("consent_viewed", idx)
        return await registry.state(idx), await registry.history(idx)

    state, history = asyncio.run(_with_registry(show))
    print(_state_line(idx, state))
    for entry in history:
        print(f"  {entry['at']}  {entry['status']:9}  source={entry['source']:8}  text={entry['text']!r}")
    if not history:
        print("  no consent change recorded")
    return 0


def cmd_consent_record(args: argparse.Namespace) -> int:
    idx = number_index(args.number)
    if idx is None:
        return fail("not a phone number")

    async def record(registry, s):
        if args.status == "opted_in":
            state = await registry.record_opt_in(idx, args.source, args.text, scopes=args.scope)
        else:
            state = await registry.record_opt_out(idx, args.source, args.text)
        await s.audit(f"consent_{'opt_in' if args.status == 'opted_in' else 'opt_out'}", idx, "ok",
                      {"source": args.source})
        return state

    state = asyncio.run(_with_registry(record))
    print(_state_line(idx, state))
    return 0


def cmd_consent_export(args: argparse.Namespace) -> int:
    async def collect(registry, s):
        rows = []
        async for key in s.client.scan_iter(match=f"{s.prefix}consent-log:*", count=500):
            idx = (key.decode() if isinstance(key, bytes) else key).rsplit(":", 1)[1]
            rows += [{"number_index": idx, **entry} for entry in await registry.history(idx)]
        await s.audit("consent_exported", "", "ok", {"rows": len(rows), "format": args.format})
        return sorted(rows, key=lambda r: (r["at"], r["number_index"]))

    rows = asyncio.run(_with_registry(collect))
    with output(args.out, newline="") as out:
        if args.format == "csv":
            writer = csv.DictWriter(out, fieldnames=["at", "number_index", "status", "scopes", "source", "text"])
            writer.writeheader()
            for row in rows:
                writer.writerow({**row, "scopes": " ".join(row["scopes"])})
        else:
            for row in rows:
                out.write(json.dumps(row, sort_keys=True) + "\n")
    print(f"exported {len(rows)} consent changes", file=sys.stderr)
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``consent show``, ``consent export`` and ``consent record``."""
    consent = sub.add_parser("consent", help="the consent record").add_subparsers(dest="consent_cmd", required=True)
    p = consent.add_parser("show", help="a number's consent state and history")
    p.add_argument("number")
    p.set_defaults(func=cmd_consent_show)
    p = consent.add_parser("export", help="every consent change, for compliance review")
    p.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    p.add_argument("--out", help="file to write (default: standard output)")
    p.set_defaults(func=cmd_consent_export)
    p = consent.add_parser("record", help="record consent given or withdrawn outside texts (staff, web form, import)")
    p.add_argument("number")
    p.add_argument("status", choices=("opted_in", "opted_out"))
    p.add_argument("--source", choices=("staff", "web_form", "import"), required=True)
    p.add_argument("--scope", action="append", choices=("appointment_reminders", "care_messages"),
                   help="what the consent covers (opted_in; repeat; default both)")
    p.add_argument("--text", required=True, help="the patient's words or the form's wording, kept with the record")
    p.set_defaults(func=cmd_consent_record)
