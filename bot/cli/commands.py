"""The ``patientbot`` command.

    patientbot up | down | status       whole stack in the background, on loopback
    patientbot chat [--from NUMBER]     terminal chat through the gateway, as a patient
    patientbot train [--force]          check (PHI scrubber, rasa data validate) and train if inputs changed
    patientbot import-fhir BUNDLE.json  load patients, practitioners and appointments
    patientbot demo-data                load the synthetic demo bundle, dates moved to this week
    patientbot handoff list             the staff queue (pseudonymous conversation ids)
    patientbot staff add | reset | disable | enable | unlock | list   console accounts (bot/cli/staff.py)
    patientbot remind [--at TIME]       send the appointment reminders due; show who got one, who not, why
    patientbot audit head | verify [--head FILE] | export [--since --until --number --format jsonl|fhir]
    patientbot identity unlock NUMBER   lift a verification lock-out (staff, after a phone check)
    patientbot consent show NUMBER      a number's consent state and full history
    patientbot consent export [--format jsonl|csv] [--out FILE]   every consent change, for review
    patientbot consent record NUMBER opted_in|opted_out --source staff|web_form|import --text "..."
    patientbot keys status | rotate | rewrap      data keys (bot/cli/data.py)
    patientbot retention run | hold | release | holds   retention policy and legal holds (bot/cli/data.py)
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import List, Optional

from bot.config import ROOT, ConfigError, settings

DEMO_BUNDLE = ROOT / "data" / "demo" / "synthetic_bundle.json"


def _fail(message: str) -> int:
    print(f"patientbot: {message}", file=sys.stderr)
    return 1


async def _import(path: Path, source: str, shift_to_tomorrow: bool = False) -> dict:
    from bot.records.appointments import AppointmentStore
    from bot.storage.crypto import keyring
    from bot.records.fhir import load_bundle_file
    from bot.storage.redis_client import async_redis

    cfg = settings()
    bundle = load_bundle_file(path, cfg.default_region)
    if shift_to_tomorrow and bundle.appointments:
        first = min(a.start for a in bundle.appointments.values())
        days = (datetime.now(first.tzinfo).date() + timedelta(days=1) - first.date()).days
        for appt in bundle.appointments.values():
            appt.start += timedelta(days=days)
            appt.end = appt.end + timedelta(days=days) if appt.end else None
    client = async_redis(cfg)
    try:
        return await AppointmentStore(client, keyring(cfg), cfg.redis_prefix).import_bundle(bundle, source)
    finally:
        await client.close()


def cmd_import_fhir(args: argparse.Namespace) -> int:
    from bot.records.fhir import BundleError

    try:
        counts = asyncio.run(_import(Path(args.bundle), source="import:fhir"))
    except BundleError as exc:
        return _fail(f"bundle rejected, nothing imported: {exc}")
    print(f"imported {counts['patients']} patients, {counts['practitioners']} practitioners, "
          f"{counts['appointments']} appointments")
    return 0


def cmd_demo_data(args: argparse.Namespace) -> int:
    counts = asyncio.run(_import(DEMO_BUNDLE, source="import:demo", shift_to_tomorrow=True))
    print(f"loaded the SYNTHETIC demo bundle: {counts['patients']} patients, {counts['appointments']} appointments "
          "(dates moved so the first is tomorrow)")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from bot.nlu.train import default_models_dir, train_command

    # Refuses data the PHI scrubber flags or rasa data validate rejects; audited (bot.nlu.train).
    return train_command(ROOT, default_models_dir(), force=args.force)


def cmd_up(args: argparse.Namespace) -> int:
    from bot.ops.stack import Stack, StackError

    try:
        Stack.from_env(scale=args.scale).up(timeout=args.timeout)
    except StackError as exc:
        return _fail(str(exc))
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from bot.ops.stack import Stack

    Stack.from_env().down()
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from bot.ops.stack import Stack

    stack = Stack.from_env()  # every instance that runs (scale-out: gateway-2, rasa-2, ...)
    for name in stack.processes:
        pid = stack.running(name)
        print(f"{name:11} {'running, pid ' + str(pid) if pid else 'stopped'}")
    healthy = True
    for inst in stack.instances:
        status = stack.healthz(inst.number)
        healthy = healthy and status == 200
        label = "healthz" if inst.number == 1 else f"healthz-{inst.number}"
        print(f"{label}  {status or 'no answer'}")
    return 0 if healthy else 1


def cmd_chat(args: argparse.Namespace) -> int:
    from bot.ops.chat import run_chat
    from bot.core.phone import try_e164

    cfg = settings()
    sender = try_e164(args.sender, cfg.default_region)
    if sender is None:
        return _fail("--from is not a phone number")
    return run_chat(cfg, sender)


def cmd_handoff_list(args: argparse.Namespace) -> int:
    from bot.records.handoff import HandoffQueue
    from bot.storage.redis_client import async_redis

    async def waiting():
        client = async_redis()
        try:
            return await HandoffQueue(client, None, settings().redis_prefix).waiting()
        finally:
            await client.close()

    entries = asyncio.run(waiting())
    if not entries:
        print("no conversation is waiting for staff")
    for e in entries:
        print(f"{e['priority']:9} {e['reason']:26} since {e['since']}  {e['conversation']}")
    return 0


def cmd_remind(args: argparse.Namespace) -> int:
    """Send the reminders due now (or at --at), and print who got one and who did not, and why."""
    import aiohttp

    from bot.storage.audit import AuditLog
    from bot.records.consent import ConsentRegistry
    from bot.storage.crypto import keyring
    from bot.core.office import load_office
    from bot.records.outbound import OutboundGate
    from bot.storage.redis_client import async_redis
    from bot.records.reminders import Reminders
    from channels.sms.sender import SmsSender

    cfg = settings()
    at = datetime.fromisoformat(args.at) if args.at else datetime.now(timezone.utc)
    if at.tzinfo is None:
        return _fail("--at needs a time zone, e.g. 2030-01-14T15:00:00+00:00")
    windows = [int(w) for w in args.windows.split(",")]

    async def run():
        client = async_redis(cfg)
        keys = keyring(cfg)
        try:
            async with aiohttp.ClientSession() as http:
                sender = SmsSender(http, cfg, client, keys)
                gate = OutboundGate(ConsentRegistry(client, keys, cfg.redis_prefix), AuditLog(client, keys, cfg.redis_prefix))

                async def send(to, body, conversation):
                    return await sender.send(to, body, conversation, actor="system:reminders")

                return await Reminders(client, keys, cfg.redis_prefix, load_office(cfg.office_config), gate, send,
                                       windows).run(at)
        finally:
            await client.close()

    outcomes = asyncio.run(run())
    for o in outcomes:
        print(f"{o.result:7} {o.reason:20} {o.window_hours:>3} h  appointment {o.appointment[:12]}  number {o.number_index[:12]}")
    sent = sum(o.result == "sent" for o in outcomes)
    print(f"{sent} reminder(s) sent, {len(outcomes) - sent} not sent")
    return 0


def cmd_identity_unlock(args: argparse.Namespace) -> int:
    """Staff lift a verification lock-out (after checking the caller's identity by phone)."""
    from bot.storage.crypto import conversation_id
    from bot.records.identity import IdentityRegistry
    from bot.core.phone import try_e164

    number = try_e164(args.number, settings().default_region)
    if number is None:
        return _fail("not a phone number")

    async def unlock(registry, client, cfg):
        conv = conversation_id(registry.keys, "sms", number)
        await IdentityRegistry(client, registry.keys, cfg.redis_prefix).staff_unlock(conv)
        await _audit(client, cfg, "verification_unlocked", conv, {})
        return conv

    print(f"verification unlocked for conversation {asyncio.run(_with_registry(unlock))}")
    return 0


async def _with_store(store_class, fn):
    """Run ``fn(store, client, settings)`` with a Redis client opened and closed around it."""
    from bot.storage.crypto import keyring
    from bot.storage.redis_client import async_redis

    cfg = settings()
    client = async_redis(cfg)
    try:
        return await fn(store_class(client, keyring(cfg), cfg.redis_prefix), client, cfg)
    finally:
        await client.close()


async def _with_audit(fn):
    from bot.storage.audit import AuditLog

    return await _with_store(AuditLog, fn)


def cmd_audit_head(args: argparse.Namespace) -> int:
    """Print the chain's head as JSON: keep it outside Redis to detect truncation later."""
    import json

    print(json.dumps(asyncio.run(_with_audit(lambda log, client, cfg: log.head_record()))))
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    import json

    exported = json.loads(Path(args.head).read_text(encoding="utf-8")) if args.head else None
    broken = asyncio.run(_with_audit(lambda log, client, cfg: log.verify(exported)))
    if broken is None:
        print("audit log intact" + (" and not truncated since the exported head" if exported else ""))
        return 0
    print(f"audit log BROKEN at {broken}", file=sys.stderr)
    return 1


def cmd_audit_export(args: argparse.Namespace) -> int:
    import json
    from datetime import datetime

    from bot.storage import audit_export
    from bot.storage.crypto import conversation_id
    from bot.core.phone import try_e164

    def when(raw):
        if not raw:
            return None
        value = datetime.fromisoformat(raw)
        if value.tzinfo is None:
            raise ValueError("times need a zone, e.g. 2030-01-01T00:00:00+00:00")
        return value

    try:
        since, until = when(args.since), when(args.until)
    except ValueError as exc:
        return _fail(str(exc))

    number = try_e164(args.number, settings().default_region) if args.number else None
    if args.number and number is None:
        return _fail("not a phone number")

    async def export(log, client, cfg):
        subject = conversation_id(log.keys, "sms", number) if number else None
        events = audit_export.select(await log.events(), since, until, subject)
        await log.record(_cli_actor(), "audit_exported", subject or "", "ok",
                         {"events": len(events), "format": args.format, "since": args.since or "",
                          "until": args.until or ""})
        return events

    events = asyncio.run(_with_audit(export))
    render = audit_export.as_fhir if args.format == "fhir" else audit_export.as_json
    out = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout
    try:
        for event in events:
            out.write(json.dumps(render(event), sort_keys=True) + "\n")
    finally:
        if args.out:
            out.close()
    print(f"exported {len(events)} audit events", file=sys.stderr)
    return 0


def _cli_actor() -> str:
    """Who ran the command, for the audit trail: the operating-system account, or the staff
    member in ``PATIENTBOT_ACTOR`` (``staff:<id>``) when the console runs the command for them.

    Only ``staff:`` ids are taken from the environment: anyone who can run the command could
    set it, so it may name a console user but never pass for another kind of actor."""
    import getpass
    import re

    claimed = os.environ.get("PATIENTBOT_ACTOR", "")
    if re.fullmatch(r"staff:[A-Za-z0-9-]{1,64}", claimed):
        return claimed

    try:
        return f"admin:cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"admin:cli:uid{os.getuid()}"


async def _audit(client, cfg, action: str, subject: str, details: dict) -> None:
    from bot.storage.audit import AuditLog
    from bot.storage.crypto import keyring

    await AuditLog(client, keyring(cfg), cfg.redis_prefix).record(_cli_actor(), action, subject, "ok", details)


async def _with_registry(fn):
    from bot.records.consent import ConsentRegistry

    return await _with_store(ConsentRegistry, fn)


def _state_line(idx: str, state) -> str:
    """A number's consent state as one line (by blind index, never the number)."""
    scopes = f" (scopes: {', '.join(state.scopes)})" if state.scopes else ""
    return f"number index {idx}: {state.status}{scopes}"


def cmd_consent_show(args: argparse.Namespace) -> int:
    from bot.storage.crypto import phone_index
    from bot.core.phone import try_e164

    number = try_e164(args.number, settings().default_region)
    if number is None:
        return _fail("not a phone number")

    async def show(registry, client, cfg):
        idx = phone_index(registry.keys, number)
        await _audit(client, cfg, "consent_viewed", idx, {})
        return idx, await registry.state(idx), await registry.history(idx)

    idx, state, history = asyncio.run(_with_registry(show))
    print(_state_line(idx, state))
    for entry in history:
        print(f"  {entry['at']}  {entry['status']:9}  source={entry['source']:8}  text={entry['text']!r}")
    if not history:
        print("  no consent change recorded")
    return 0


def cmd_consent_record(args: argparse.Namespace) -> int:
    from bot.storage.crypto import phone_index
    from bot.core.phone import try_e164

    number = try_e164(args.number, settings().default_region)
    if number is None:
        return _fail("not a phone number")

    async def record(registry, client, cfg):
        idx = phone_index(registry.keys, number)
        if args.status == "opted_in":
            state = await registry.record_opt_in(idx, args.source, args.text, scopes=args.scope)
        else:
            state = await registry.record_opt_out(idx, args.source, args.text)
        await _audit(client, cfg, f"consent_{'opt_in' if args.status == 'opted_in' else 'opt_out'}", idx,
                     {"source": args.source})
        return idx, state

    idx, state = asyncio.run(_with_registry(record))
    print(_state_line(idx, state))
    return 0


def cmd_consent_export(args: argparse.Namespace) -> int:
    import csv
    import json

    async def collect(registry, client, cfg):
        rows = []
        async for key in client.scan_iter(match=f"{cfg.redis_prefix}consent-log:*", count=500):
            idx = (key.decode() if isinstance(key, bytes) else key).rsplit(":", 1)[1]
            rows += [{"number_index": idx, **entry} for entry in await registry.history(idx)]
        await _audit(client, cfg, "consent_exported", "", {"rows": len(rows), "format": args.format})
        return sorted(rows, key=lambda r: (r["at"], r["number_index"]))

    rows = asyncio.run(_with_registry(collect))
    out = open(args.out, "w", newline="", encoding="utf-8") if args.out else sys.stdout
    try:
        if args.format == "csv":
            writer = csv.DictWriter(out, fieldnames=["at", "number_index", "status", "scopes", "source", "text"])
            writer.writeheader()
            for row in rows:
                writer.writerow({**row, "scopes": " ".join(row["scopes"])})
        else:
            for row in rows:
                out.write(json.dumps(row, sort_keys=True) + "\n")
    finally:
        if args.out:
            out.close()
    print(f"exported {len(rows)} consent changes", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from bot.ops.chat import DEMO_PATIENT_NUMBER

    parser = argparse.ArgumentParser(prog="patientbot", description="patient messaging bot for medical offices")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("up", help="start the stack in the background and wait until healthy")
    p.add_argument("--timeout", type=float, default=240.0)
    p.add_argument("--scale", type=int, default=None, metavar="N",
                   help="run N gateways, Rasa servers and action servers against the one Redis "
                        "(default: as many as run now, else 1; fewer than run now stops the extra ones)")
    p.set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop the stack").set_defaults(func=cmd_down)
    sub.add_parser("status", help="show what runs").set_defaults(func=cmd_status)
    p = sub.add_parser("chat", help="chat with the running bot as a patient, over signed SMS webhooks")
    p.add_argument("--from", dest="sender", default=DEMO_PATIENT_NUMBER)
    p.set_defaults(func=cmd_chat)
    p = sub.add_parser("train", help="validate data and train the model if its inputs changed")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("import-fhir", help="import a FHIR R4 Bundle (Patient, Practitioner, Appointment)")
    p.add_argument("bundle")
    p.set_defaults(func=cmd_import_fhir)
    sub.add_parser("demo-data", help="load the synthetic demo bundle").set_defaults(func=cmd_demo_data)
    handoff = sub.add_parser("handoff", help="the staff hand-off queue").add_subparsers(dest="handoff_cmd", required=True)
    handoff.add_parser("list", help="conversations waiting for staff").set_defaults(func=cmd_handoff_list)
    from bot.cli import staff as cli_staff

    cli_staff.add_commands(sub)
    p = sub.add_parser("remind", help="send the appointment reminders that are due")
    p.add_argument("--at", help="pretend it is this time (ISO 8601 with zone); default now")
    p.add_argument("--windows", default="48,2", help="hours before the appointment, comma-separated")
    p.set_defaults(func=cmd_remind)
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
    identity = sub.add_parser("identity", help="identity verification").add_subparsers(dest="identity_cmd",
                                                                                     required=True)
    p = identity.add_parser("unlock", help="lift a verification lock-out for a number")
    p.add_argument("number")
    p.set_defaults(func=cmd_identity_unlock)
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
    from bot.cli import data as cli_data, models as cli_models, nlu as cli_nlu

    cli_data.add_commands(sub)
    cli_nlu.add_commands(sub)
    cli_models.add_commands(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        return _fail(str(exc))


