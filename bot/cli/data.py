"""``patientbot keys`` and ``patientbot retention``: the data-protection commands.

    patientbot keys status                       data key ids, which one seals, retired keys, rotation progress
    patientbot keys rotate [--grace SECONDS]     new data key; re-encrypt everything online; destroy the old key
    patientbot keys rewrap --new-key-file FILE   wrap the data keys under a new key-encryption key
    patientbot retention run [--dry-run]         purge what the retention policy says is due
    patientbot retention hold NUMBER --reason T  legal hold: nothing linked to the number is purged
    patientbot retention release NUMBER          lift a legal hold
    patientbot retention holds                   the numbers under hold (by blind index), with reasons

Every one of these is audited with the operating-system account that ran it.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from bot.cli.common import audited, cli_actor, fail, number_index, redis_session
from bot.config import settings


# -- keys -------------------------------------------------------------------------------------
def cmd_keys_status(args: argparse.Namespace) -> int:
    from bot.storage.crypto import key_store
    from bot.storage.redis_client import sync_redis

    store = key_store()
    store.bootstrap()
    status = store.status()
    progress = {k.decode(): v.decode() for k, v in sync_redis().hgetall(f"{settings().redis_prefix}keys:rotation").items()}
    print(json.dumps({**status, "last_rotation": progress}, indent=2, sort_keys=True))
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    from bot.storage.crypto import key_store
    from bot.storage.rekey import GRACE_SECONDS, Rekeyer
    from bot.storage.redis_client import sync_redis

    cfg = settings()
    store = key_store(cfg)
    store.bootstrap()

    def progress(done: int, total: int) -> None:
        print(f"re-encrypting: {done}/{total} Redis keys", file=sys.stderr)

    print("new data key added; waiting for running processes to pick it up ...", file=sys.stderr)
    grace = GRACE_SECONDS if args.grace is None else args.grace
    report = Rekeyer(sync_redis(cfg), store, cfg.redis_prefix, progress).rotate(grace=grace)
    details = {"new_key": report.new_key, "old_keys": report.old_keys, "retired": report.retired,
               "keys_scanned": report.keys_scanned, "values_reencrypted": report.values_reencrypted,
               "unreadable_keys": len(report.unreadable), "seconds": round(report.seconds, 1)}
    audited("keys_rotated", "", "ok" if report.complete else "incomplete", details)
    print(json.dumps(details, sort_keys=True))
    if not report.complete:
        return fail(f"{len(report.unreadable)} Redis keys hold values that did not re-encrypt; the old keys "
                     f"were kept so nothing becomes unreadable: {', '.join(report.unreadable[:10])}")
    print(f"rotation complete: {report.values_reencrypted} values re-encrypted under {report.new_key}; "
          f"retired {', '.join(report.retired) or 'nothing'}")
    return 0


def cmd_keys_rewrap(args: argparse.Namespace) -> int:
    from bot.config import ConfigError, _decode_key
    from bot.storage.crypto import LocalKeyProvider, key_store

    try:
        new_kek = _decode_key("--new-key-file", Path(args.new_key_file).read_text(encoding="ascii").strip())
    except (OSError, UnicodeDecodeError):
        return fail(f"cannot read {args.new_key_file}")
    except ConfigError as exc:
        return fail(str(exc))
    store = key_store()
    new = LocalKeyProvider(new_kek)
    # Audited before the re-wrap: afterwards this process's KEK no longer opens the data keys.
    audited("kek_rewrap", "", "requested", {"kek_id": new.kek_id})
    count = store.rewrap(new)
    print(f"re-wrapped {count} keys under key-encryption key {new.kek_id}; set PATIENTBOT_KEY_FILE (or "
          f"PATIENTBOT_DATA_KEY) to the new key before restarting the stack")
    return 0


# -- retention --------------------------------------------------------------------------------
async def _with_retention(fn):
    """``fn(retention, session)`` with the retention policy of a Redis session."""
    from bot.storage.retention import Retention, policy_from

    async with redis_session() as s:
        audit = s.services.audit
        return await fn(Retention(s.client, s.keys, s.prefix, policy_from(s.cfg), audit), s)


def cmd_retention_run(args: argparse.Namespace) -> int:
    try:
        counts = asyncio.run(_with_retention(lambda r, s: r.run(cli_actor(), dry_run=args.dry_run)))
    except ValueError as exc:  # a policy below the legal minimum
        return fail(str(exc))
    label = "would purge" if args.dry_run else "purged"
    print(f"{label}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def cmd_retention_hold(args: argparse.Namespace) -> int:
    idx = number_index(args.number)
    if idx is None:
        return fail("not a phone number")

    async def hold(r, s):
        await r.holds.place(idx, args.reason, cli_actor())
        await s.audit("legal_hold_placed", idx, "ok", {"reason": args.reason})

    asyncio.run(_with_retention(hold))
    print(f"legal hold placed on number index {idx}")
    return 0


def cmd_retention_release(args: argparse.Namespace) -> int:
    idx = number_index(args.number)
    if idx is None:
        return fail("not a phone number")

    async def release(r, s):
        released = await r.holds.release(idx)
        await s.audit("legal_hold_released", idx, "ok" if released else "not_held")
        return released

    if not asyncio.run(_with_retention(release)):
        return fail(f"number index {idx} was not under a legal hold")
    print(f"legal hold released on number index {idx}; the next retention run applies the policy again")
    return 0


def cmd_retention_holds(args: argparse.Namespace) -> int:
    for idx, doc in sorted(asyncio.run(_with_retention(lambda r, s: r.holds.held())).items()):
        print(f"{idx}  since {doc['at']}  by {doc['by']}  reason: {doc['reason']}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``keys`` and ``retention``."""
    keys = sub.add_parser("keys", help="data keys: status, rotation, KEK re-wrap").add_subparsers(
        dest="keys_cmd", required=True)
    keys.add_parser("status", help="key ids, the active one, retired ones, rotation progress").set_defaults(
        func=cmd_keys_status)
    p = keys.add_parser("rotate", help="add a data key, re-encrypt everything with it, destroy the old key")
    p.add_argument("--grace", type=float, default=None,
                   help="seconds to wait for running processes to pick up the new key (default 5)")
    p.set_defaults(func=cmd_keys_rotate)
    p = keys.add_parser("rewrap", help="wrap the data keys under a new key-encryption key")
    p.add_argument("--new-key-file", required=True, help="file holding the new KEK (base64 of 32 bytes)")
    p.set_defaults(func=cmd_keys_rewrap)

    retention = sub.add_parser("retention", help="the retention policy and legal holds").add_subparsers(
        dest="retention_cmd", required=True)
    p = retention.add_parser("run", help="purge what the policy says is due (audited)")
    p.add_argument("--dry-run", action="store_true", help="count only")
    p.set_defaults(func=cmd_retention_run)
    p = retention.add_parser("hold", help="place a legal hold on a number")
    p.add_argument("number")
    p.add_argument("--reason", required=True)
    p.set_defaults(func=cmd_retention_hold)
    p = retention.add_parser("release", help="release a legal hold")
    p.add_argument("number")
    p.set_defaults(func=cmd_retention_release)
    retention.add_parser("holds", help="numbers under legal hold").set_defaults(func=cmd_retention_holds)
