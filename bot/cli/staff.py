"""``patientbot staff``: console accounts, managed by an administrator at the server.

    patientbot staff add USERNAME [--role agent|admin] [--password-stdin]
    patientbot staff reset USERNAME [--password-stdin]     new password and TOTP secret; signs out
    patientbot staff disable | enable | unlock USERNAME
    patientbot staff list

``add`` and ``reset`` print the password (unless given on standard input) and the TOTP secret
with its ``otpauth://`` provisioning URI exactly once; neither is kept in the clear anywhere.
Every change is audited with the operating-system account that ran the command.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Awaitable, Callable, TypeVar

from bot.cli.common import fail, redis_session

T = TypeVar("T")


async def _with_accounts(fn: Callable[..., Awaitable[T]]) -> T:
    """``fn(accounts, sessions, session)`` with the staff accounts and sessions of a Redis session."""
    async with redis_session() as s:
        return await fn(s.services.staff_accounts, s.services.staff_sessions, s)


def _password(args: argparse.Namespace):
    if not args.password_stdin:
        return None
    line = sys.stdin.readline().rstrip("\n")
    if not line:
        raise SystemExit("patientbot: --password-stdin given but standard input had no password")
    return line


def _print_enrolment(enrolment, generated: bool, what: str) -> None:
    m = enrolment.member
    print(f"{what}: {m.username} ({m.role}), id staff:{m.id}")
    if generated:
        print(f"password: {enrolment.password}")
    print(f"TOTP secret: {enrolment.totp_secret}")
    print(f"provisioning URI: {enrolment.provisioning_uri}")
    print("Shown once: hand them to the staff member in person; add the secret to an authenticator app "
          "(or make a QR code of the URI). The console is at /staff/login on the gateway.")


def cmd_add(args: argparse.Namespace) -> int:
    from bot.records.staff_accounts import StaffError

    password = _password(args)

    async def add(accounts, sessions, s):
        enrolment = await accounts.add(args.username, args.role, password)
        await s.audit("staff_added", enrolment.member.actor, "ok", {"role": args.role})
        return enrolment

    try:
        enrolment = asyncio.run(_with_accounts(add))
    except StaffError as exc:
        return fail(str(exc))
    _print_enrolment(enrolment, password is None, "staff member added")
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    from bot.records.staff_accounts import StaffError

    password = _password(args)

    async def reset(accounts, sessions, s):
        enrolment = await accounts.reset(args.username, password)
        ended = await sessions.end_all(enrolment.member.id)
        await s.audit("staff_reset", enrolment.member.actor, "ok", {"sessions_ended": ended})
        return enrolment

    try:
        enrolment = asyncio.run(_with_accounts(reset))
    except StaffError as exc:
        return fail(str(exc))
    _print_enrolment(enrolment, password is None, "staff member reset (signed out everywhere)")
    return 0


def _change(action: str):
    def run(args: argparse.Namespace) -> int:
        from bot.records.staff_accounts import StaffError

        async def change(accounts, sessions, s):
            if action == "unlock":
                member = await accounts.unlock(args.username)
            else:
                member = await accounts.set_disabled(args.username, action == "disable")
            ended = await sessions.end_all(member.id) if action == "disable" else 0
            await s.audit(f"staff_{action}d" if action != "unlock" else "staff_unlocked", member.actor, "ok",
                          {"sessions_ended": ended})
            return member, ended

        try:
            member, ended = asyncio.run(_with_accounts(change))
        except StaffError as exc:
            return fail(str(exc))
        done = {"disable": f"disabled ({ended} session(s) ended)", "enable": "enabled", "unlock": "unlocked"}[action]
        print(f"{member.username}: {done}")
        return 0

    return run


def cmd_list(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    async def members(accounts, sessions, s):
        await s.audit("staff_list_viewed")
        return await accounts.list()

    found = asyncio.run(_with_accounts(members))
    if not found:
        print("no staff accounts; add one with 'patientbot staff add USERNAME --role admin'")
    now = datetime.now(timezone.utc)
    for m in found:
        state = "disabled" if m.disabled else "locked" if m.locked(now) else "active"
        print(f"{m.username:24} {m.role:6} {state:8} staff:{m.id}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``staff`` on the ``patientbot`` parser's subcommands."""
    staff = sub.add_parser("staff", help="staff console accounts").add_subparsers(dest="staff_cmd", required=True)
    p = staff.add_parser("add", help="create an account; prints its password and TOTP secret once")
    p.add_argument("username")
    p.add_argument("--role", choices=("agent", "admin"), default="agent")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p.set_defaults(func=cmd_add)
    p = staff.add_parser("reset", help="new password and TOTP secret; ends the account's sessions")
    p.add_argument("username")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p.set_defaults(func=cmd_reset)
    for action, text in (("disable", "block sign-in and end the account's sessions"),
                         ("enable", "allow sign-in again"), ("unlock", "lift a lockout after failed sign-ins")):
        p = staff.add_parser(action, help=text)
        p.add_argument("username")
        p.set_defaults(func=_change(action))
    staff.add_parser("list", help="every account, its role and state").set_defaults(func=cmd_list)
