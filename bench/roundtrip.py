"""Round-trip latency of patient messages through the running stack.

    .venv/bin/python bench/roundtrip.py [--n 200]

Needs the stack up (``make up``). Sends N signed SMS webhooks to the gateway, one at a time,
cycling through a realistic mix of messages from a few synthetic numbers, and the same
messages straight to the Rasa connector (no gateway) for comparison. Prints median, p95 and
p99 in milliseconds for both, and the gateway's overhead. A benchmark, not a test: it asserts
nothing about time.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
import urllib.request
from typing import List

from bot.ops.chat import signed_sms
from bot.config import settings
from fresh import forget_conversations  # bench/fresh.py, beside this script

MESSAGES = ["hi", "when is my appointment", "C", "what are your hours", "where do I park",
            "do you take medicaid", "I need a refill", "how do I log into the portal", "thanks", "bye"]
SENDERS = [f"+1555010{n:04d}" for n in range(150, 160)]  # synthetic, 555-01xx


def percentile(values: List[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    cfg = settings()
    forget_conversations(cfg, SENDERS, [f"bench-{s[-4:]}" for s in SENDERS])
    gateway, direct = [], []
    for i in range(args.n):
        body, sender = MESSAGES[i % len(MESSAGES)], SENDERS[(i // len(MESSAGES)) % len(SENDERS)]
        data, headers = signed_sms(cfg, sender, body)
        req = urllib.request.Request(f"http://127.0.0.1:{cfg.gateway_port}/sms/inbound", data=data, headers=headers)
        t0 = time.perf_counter()
        with urllib.request.urlopen(req, timeout=30) as resp:
            resp.read()
        gateway.append((time.perf_counter() - t0) * 1000)
        payload = json.dumps({"sender": f"bench-{sender[-4:]}", "text": body}).encode()
        req = urllib.request.Request(f"{cfg.rasa_url}/webhooks/patientbot/webhook", data=payload,
                                     headers={"X-Patientbot-Secret": cfg.rasa_secret, "Content-Type": "application/json"})
        t0 = time.perf_counter()
        with urllib.request.urlopen(req, timeout=30) as resp:
            resp.read()
        direct.append((time.perf_counter() - t0) * 1000)
    print(f"{args.n} messages, sequential, one at a time")
    print(f"{'path':28} {'median':>8} {'p95':>8} {'p99':>8}  (ms)")
    for name, values in (("gateway (signed SMS -> TwiML)", gateway), ("Rasa connector directly", direct)):
        print(f"{name:28} {statistics.median(values):8.1f} {percentile(values, .95):8.1f} {percentile(values, .99):8.1f}")
    print(f"gateway overhead at the median: {statistics.median(gateway) - statistics.median(direct):.1f} ms "
          f"({statistics.median(gateway) / statistics.median(direct):.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
