"""How fast a data-key rotation re-encrypts, on a throwaway Redis prefix.

    .venv/bin/python bench/rotation.py [--strings 20000] [--audit 5000]

Fills a prefix on REDIS_URL (default 127.0.0.1:6379/15) with sealed strings the size of a
short conversation's tracker (about 7 KiB) and an audit stream, rotates the data key (no grace
period: nothing else writes there), prints the time and the rate, and deletes the prefix.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import time

import redis

from bot.storage.audit import AuditLog
from bot.storage.crypto import KeyRing, KeyStore, LocalKeyProvider
from bot.storage.rekey import Rekeyer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--strings", type=int, default=20000)
    parser.add_argument("--audit", type=int, default=5000)
    args = parser.parse_args()
    client = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15"))
    prefix = f"pbrot{secrets.token_hex(3)}:"
    store = KeyStore(client, LocalKeyProvider(os.urandom(32)), prefix)
    ring = KeyRing.deferred(store)
    tracker = '{"events": [' + ",".join(['{"event": "user", "text": "synthetic"}'] * 150) + "]}"
    try:
        pipe = client.pipeline(transaction=False)
        for i in range(args.strings):
            key = f"{prefix}tracker:sms-{i}"
            pipe.set(key, ring.encrypt_text(tracker, key))
        pipe.execute()

        async def fill_audit() -> None:
            aclient = redis.asyncio.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15"))
            log = AuditLog(aclient, ring, prefix)
            for i in range(args.audit):
                await log.record("system:bench", "message_received", f"sms-{i}", "ok", {"n": i})
            await aclient.close()

        asyncio.run(fill_audit())
        t0 = time.perf_counter()
        report = Rekeyer(client, store, prefix).rotate(grace=0)
        took = time.perf_counter() - t0
        print(f"re-encrypted {report.values_reencrypted} values in {report.keys_scanned} Redis keys "
              f"({args.strings} trackers of {len(tracker) // 1024} KiB, an audit stream of {args.audit} entries) "
              f"in {took:.1f} s: {report.values_reencrypted / took:.0f} values/s; old key retired: {report.retired}")
    finally:
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            client.delete(key)


if __name__ == "__main__":
    main()
