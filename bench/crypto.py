"""Cost of encryption at rest per message, in process.

    .venv/bin/python bench/crypto.py

Times the sealing work one inbound SMS causes in the gateway (audit "received" and "sent"
details, the stored idempotent reply) and in Rasa's tracker store (the whole tracker sealed
and opened once per turn, for trackers of 10 and 100 turns), plus the blind index of the
sender. AES-256-GCM via the cryptography package; the figures are medians of many rounds.

The key ring is the one a running process holds: data keys loaded from Redis (a throwaway
prefix on REDIS_URL, default 127.0.0.1:6379/15) and checked for a rotation every 2 s, so
that check is in the figures too.
"""
from __future__ import annotations

import json
import os
import secrets
import statistics
import time

import redis

from bot.storage.crypto import KeyRing, KeyStore, LocalKeyProvider, phone_index

ROUNDS = 2000


def median_us(fn, rounds: int = ROUNDS) -> float:
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e6


def main() -> None:
    client = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15"))
    prefix = f"pbbench{secrets.token_hex(3)}:"
    try:
        run(KeyRing.deferred(KeyStore(client, LocalKeyProvider(os.urandom(32)), prefix)))
    finally:
        client.delete(f"{prefix}keys")


def run(keys: KeyRing) -> None:
    body = "when is my appointment (synthetic)"
    details = json.dumps({"channel": "sms", "body": body})
    reply = json.dumps(["Your next appointment at Maple Street Family Medicine is Thu, Jan 15 at 9:30 AM."])
    turn = {"event": "user", "text": body, "parse_data": {"intent": {"name": "ask_appointment_details"}}}
    rows = [
        ("blind index of the sender", lambda: phone_index(keys, "+15550100101")),
        ("seal audit details", lambda: keys.encrypt_text(details, "pb:audit:x")),
        ("seal the stored reply", lambda: keys.encrypt_text(reply, "pb:idem:x")),
    ]
    for turns in (10, 100):
        tracker = json.dumps({"events": [turn] * (turns * 6)})  # ~6 events a turn
        sealed = keys.encrypt_text(tracker, "tracker:x")
        rows.append((f"seal + open a {turns}-turn tracker ({len(tracker) // 1024} KiB)",
                     lambda t=tracker, s=sealed: (keys.encrypt_text(t, "tracker:x"), keys.decrypt_text(s, "tracker:x"))))
    total = 0.0
    for name, fn in rows:
        us = median_us(fn)
        total += us if "100-turn" not in name else 0
        print(f"{name:45} {us:8.1f} us")
    print(f"{'per message, 10-turn conversation':45} {total:8.1f} us")


if __name__ == "__main__":
    main()
