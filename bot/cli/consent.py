"""``patientbot consent show | export | record | grant | revoke``: the consent record, kept by
blind index.

    patientbot consent show NUMBER      a number's consent state, its scopes with their sources, the full history
    patientbot consent export [--format jsonl|csv] [--out FILE]   every consent change, for review
    patientbot consent record NUMBER opted_in|opted_out --source staff|web_form|signed_form|import --text "..."
    patientbot consent grant NUMBER SCOPE --source ... --text "..."    add one scope, keep the others
    patientbot consent revoke NUMBER SCOPE --source ... --text "..."   remove one scope, keep the others

``phi_by_text`` (health information in text messages) needs the patient's written
authorization: ``--source signed_form`` (a signed form on file) or ``web_form``, with the exact
words agreed, risk notice included (the standard words: bot.core.replies.phi_by_text_authorization).
Every command is audited.
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys

from bot.cli.common import fail, number_index, output, redis_session
from bot.records.consent import ALL_SCOPES, scope_sources

RECORDED_SOURCES = ("staff", "web_form", "signed_form", "import")  # what a person records (not "keyword")


async def _with_registry(fn):
    """``fn(registry, session)`` with the consent registry of a Redis session."""
    async with redis_session() as s:
        return await fn(s.services.consent, s)


def _state_line(idx: str, state, sources=None) -> str:
    """A number's consent state as one line (by blind index, never the number); with
    ``sources`` (:func:`scope_sources`), each scope with the source that granted it and when."""
    def scope(name: str) -> str:
        by = (sources or {}).get(name)
        return f"{name} [{by['source']}, {by['at']}]" if by else name

    scopes = f" (scopes: {', '.join(scope(s) for s in state.scopes)})" if state.scopes else ""
    return f"number index {idx}: {state.status}{scopes}"


def cmd_consent_show(args: argparse.Namespace) -> int:
    idx = number_index(args.number)
    if idx is None:
        return fail("not a phone number")

    async def show(registry, s):
        await s.audit("consent_viewed", idx)
        return await registry.state(idx), await registry.history(idx)

    state, history = asyncio.run(_with_registry(show))
    print(_state_line(idx, state, scope_sources(history)))
    for entry in history:
        print(f"  {entry['at']}  {entry['status']:9}  source={entry['source']:8}  text={entry['text']!r}"
              f"  scopes={','.join(entry['scopes']) or '-'}")
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

    try:
        state = asyncio.run(_with_registry(record))
    except ValueError as exc:  # a scope the source cannot give (phi_by_text needs a written form)
        return fail(str(exc))
    print(_state_line(idx, state))
    return 0


def cmd_consent_scope(args: argparse.Namespace) -> int:
    """``consent grant`` / ``consent revoke``: one scope added or removed, the others kept."""
    idx = number_index(args.number)
    if idx is None:
        return fail("not a phone number")
    granting = args.consent_cmd == "grant"

    async def change(registry, s):
        change_scope = registry.grant_scope if granting else registry.revoke_scope
        state = await change_scope(idx, args.scope, args.source, args.text)
        await s.audit(f"consent_scope_{'granted' if granting else 'revoked'}", idx, "ok",
                      {"scope": args.scope, "source": args.source})
        return state

    try:
        state = asyncio.run(_with_registry(change))
    except ValueError as exc:  # refused: nothing recorded, nothing audited as done
        return fail(str(exc))
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
    p.add_argument("--source", choices=RECORDED_SOURCES, required=True)
    p.add_argument("--scope", action="append", choices=ALL_SCOPES,
                   help="what the consent covers (opted_in; repeat; default appointment_reminders and "
                        "care_messages; phi_by_text only from signed_form or web_form)")
    p.add_argument("--text", required=True, help="the patient's words or the form's wording, kept with the record")
    p.set_defaults(func=cmd_consent_record)
    for name, what in (("grant", "add one scope to a number's consent (the others kept)"),
                       ("revoke", "remove one scope from a number's consent (the others kept)")):
        p = consent.add_parser(name, help=what)
        p.add_argument("number")
        p.add_argument("scope", choices=ALL_SCOPES)
        p.add_argument("--source", choices=RECORDED_SOURCES, required=True,
                       help="where it comes from; phi_by_text is granted only from signed_form or web_form")
        p.add_argument("--text", required=True,
                       help="the exact words the patient agreed to (phi_by_text: with the risk notice) or asked")
        p.set_defaults(func=cmd_consent_scope)
