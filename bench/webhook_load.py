"""Webhook latency under concurrent senders, through the running stack.

    .venv/bin/python bench/webhook_load.py [--senders 20] [--per-sender 10]

Needs the stack up (``make up``). Each synthetic sender texts its messages one after another;
all senders run at once (with --wait-for-answer, a sender whose answer comes late by the
provider API waits for it before texting again, as people do). Prints median, p95, p99 and max of the webhook's answer time, how
many answers were holding messages (Rasa slower than SMS_HOLDING_AFTER_SECONDS, the answer then
goes out by the provider API), and the HTTP statuses. A benchmark, not a test.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections import Counter
from typing import List

import aiohttp

from bot.ops.chat import parse_twiml, signed_sms
from bot.config import settings
from fresh import forget_conversations  # bench/fresh.py, beside this script

MESSAGES = ["hi", "when is my appointment", "what are your hours", "where do I park", "do you take medicaid",
            "I need a refill", "how do I log into the portal", "running 10 min late", "thanks", "bye"]


def percentile(values: List[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def delivered_to(session, cfg, number: str) -> int:
    """How many texts the provider stand-in has delivered to ``number`` (late answers)."""
    async with session.get(f"{cfg.sms_api_base}/_standin/messages") as resp:
        return sum(m["To"] == number for m in (await resp.json())["messages"])


async def sender(session, cfg, number: str, count: int, timings: List[float], statuses: Counter, holding: Counter,
                 wait: bool = False):
    for i in range(count):
        data, headers = signed_sms(cfg, number, MESSAGES[i % len(MESSAGES)])
        t0 = time.perf_counter()
        async with session.post(f"http://127.0.0.1:{cfg.gateway_port}/sms/inbound", data=data, headers=headers) as resp:
            body = await resp.text()
        timings.append((time.perf_counter() - t0) * 1000)
        statuses[resp.status] += 1
        if resp.status == 200 and any("in a moment" in m for m in parse_twiml(body)):
            holding["holding"] += 1
            if wait:  # a patient waits for the answer before texting again
                for _ in range(300):
                    if await delivered_to(session, cfg, number) >= holding[number] + 1:
                        break
                    await asyncio.sleep(0.1)
                holding[number] += 1


async def main_async(n_senders: int, per_sender: int, wait: bool) -> None:
    cfg = settings()
    timings: List[float] = []
    statuses: Counter = Counter()
    holding: Counter = Counter()
    numbers = [f"+1555010{n:04d}" for n in range(200, 200 + n_senders)]  # synthetic, 555-01xx
    forget_conversations(cfg, numbers)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=n_senders)) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(sender(session, cfg, n, per_sender, timings, statuses, holding, wait) for n in numbers))
        wall = time.perf_counter() - t0
    mode = "each waiting for its answer" if wait else "each texting again as soon as the webhook answers"
    print(f"{len(timings)} webhooks from {n_senders} concurrent senders ({mode}) in {wall:.1f} s "
          f"({len(timings) / wall:.1f}/s); statuses {dict(statuses)}; holding messages {holding['holding']}")
    print(f"median {statistics.median(timings):.0f} ms, p95 {percentile(timings, .95):.0f} ms, "
          f"p99 {percentile(timings, .99):.0f} ms, max {max(timings):.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--senders", type=int, default=20)
    parser.add_argument("--per-sender", type=int, default=10)
    parser.add_argument("--wait-for-answer", action="store_true",
                        help="each sender waits for a late answer before its next text (as people do); "
                             "needs the provider stand-in (development SMS_API_BASE)")
    args = parser.parse_args()
    asyncio.run(main_async(args.senders, args.per_sender, args.wait_for_answer))


if __name__ == "__main__":
    main()
