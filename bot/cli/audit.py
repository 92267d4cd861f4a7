"""``patientbot audit head | verify | export``: the hash-chained audit trail.

    patientbot audit head                  the chain's head (JSON), to keep outside Redis
    patientbot audit verify [--head FILE]  check the chain (and, with an exported head, for truncation)
    patientbot audit export [--since --until --number --format jsonl|fhir --out FILE]   audited itself
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime
from pathlib import Path

from bot.cli.common import fail, output, phone_number, redis_session


async def _with_audit(fn):
    """``fn(log, session)`` with the audit log of a Redis session."""
    async with redis_session() as s:
        return await fn(s.services.audit, s)


def cmd_audit_head(args: argparse.Namespace) -> int:
    """Print the chain's head as JSON: keep it outside Redis to detect truncation later."""
    print(json.dumps(asyncio.run(_with_audit(lambda log, s: log.head_record()))))
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    exported = json.loads(Path(args.head).read_text(encoding="utf-8")) if args.head else None
    broken = asyncio.run(_with_audit(lambda log, s: log.verify(exported)))
    if broken is None:
        print("audit log intact" + (" and not truncated since the exported head" if exported else ""))
        return 0
    print(f"audit log BROKEN at {broken}", file=sys.stderr)
    return 1


def _when(raw):
    if not raw:
        return None
    value = datetime.fromisoformat(raw)
    if value.tzinfo is None:
        raise ValueError("times need a zone, e.g. 2030-01-01T00:00:00+00:00")
    return value


def cmd_audit_export(args: argparse.Namespace) -> int:
    from bot.storage import audit_export
    from bot.storage.crypto import conversation_id

    try:
        since, until = _when(args.since), _when(args.until)
    except ValueError as exc:
        return fail(str(exc))

    number = phone_number(args.number) if args.number else None
    if args.number and number is None:
        return fail("not a phone number")

    async def export(log, s):
        subject = conversation_id(log.keys, "sms", number) if number else None
        events = audit_export.select(await log.events(), since, until, subject)
        await s.audit("audit_exported", subject or "", "ok",
                      {"events": len(events), "format": args.format, "since": args.since or "",
                       "until": args.until or ""})
        return events

    events = asyncio.run(_with_audit(export))
    render = audit_export.as_fhir if args.format == "fhir" else audit_export.as_json
    with output(args.out) as out:
        for event in events:
            out.write(json.dumps(render(event), sort_keys=True) + "\n")
    print(f"exported {len(events)} audit events", file=sys.stderr)
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``audit head``, ``audit verify`` and ``audit export``."""
    audit = sub.add_parser("audit", help="the audit trail").add_subparsers(dest="audit_cmd", required=True)
    p = audit.add_parser("head", help="print the chain head (JSON) to keep outside Redis")
    p.set_defaults(func=cmd_audit_head)
    p = audit.add_parser("verify", help="check the hash chain (and, with --head, for truncation)")
    p.add_argument("--head", help="a file written by 'patientbot audit head' earlier")
    p.set_defaults(func=cmd_audit_verify)
    p = audit.add_parser("export", help="audit events as JSONL or FHIR AuditEvent (audited)")
    p.add_argument("--since")
    p.add_argument("--until")
    p.add_argument("--number", help="only this patient's conversation (by its pseudonym)")
    p.add_argument("--format", choices=["jsonl", "fhir"], default="jsonl")
    p.add_argument("--out")
    p.set_defaults(func=cmd_audit_export)
