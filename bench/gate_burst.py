"""The gateway alone under bursts of safety answers: its CPU per message and the latency of a burst.

    .venv/bin/python bench/gate_burst.py --burst 20 --rounds 30 --workers 2

Starts a gateway (``python -m channels.gateway.app``, ``--workers`` processes) on its own port and
Redis prefix, with no Rasa behind it (the safety gate never asks Rasa), and sends bursts of
``--burst`` signed SMS webhooks at once, from as many synthetic numbers, each burst one of
HELP, STOP, START and an emergency, ``--rounds`` times over. Prints the gateway's CPU time
per message (from /proc) and the median and p99 round trip and time in the gateway
(Server-Timing). A benchmark, not a test: it asserts nothing about time.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Tuple

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.ops.chat import signed_sms  # noqa: E402
from bot.config import load_settings, merged_environ  # noqa: E402
from bot.storage.redis_client import sync_redis  # noqa: E402

TEXTS = ("HELP", "STOP", "START", "I took a whole bottle of pills")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_seconds(pids: List[int]) -> float:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / os.sysconf("SC_CLK_TCK")


def _workers_of(pid: int) -> List[int]:
    found = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


async def _burst(session, url, cfg, text: str, numbers: List[str], out: List[Tuple[float, float]]) -> None:
    async def one(number: str) -> None:
        data, headers = signed_sms(cfg, number, text)
        started = time.perf_counter()
        async with session.post(url, data=data, headers=headers) as resp:
            await resp.text()
            timing = resp.headers.get("Server-Timing", "")
        out.append(((time.perf_counter() - started) * 1000, float(timing.split("dur=")[1]) if "dur=" in timing else 0.0))

    await asyncio.gather(*(one(n) for n in numbers))


async def drive(cfg, port: int, pids: List[int], burst: int, rounds: int) -> None:
    url = f"http://127.0.0.1:{port}/sms/inbound"
    samples: List[Tuple[float, float]] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await _burst(session, url, cfg, "HELP", [f"+1555013{n:04d}" for n in range(burst)], [])  # warm-up
        cpu_before = _cpu_seconds(pids)
        for r in range(rounds):
            numbers = [f"+1555014{(r % 5) * burst + n:04d}" for n in range(burst)]  # synthetic
            for text in TEXTS:
                await _burst(session, url, cfg, text, numbers, samples)
        cpu = _cpu_seconds(pids) - cpu_before

    def pct(values: List[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]

    trip, inside = [s[0] for s in samples], [s[1] for s in samples]
    print(f"{len(samples)} safety answers in bursts of {burst}, {len(pids)} gateway process(es): "
          f"gateway CPU {cpu * 1000 / len(samples):.2f} ms per message; round trip median "
          f"{statistics.median(trip):.1f} ms, p99 {pct(trip, .99):.1f} ms; in the gateway median "
          f"{statistics.median(inside):.1f} ms, p99 {pct(inside, .99):.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    port = _free_port()
    env = merged_environ()
    env.update({"REDIS_PREFIX": f"pbburst{secrets.token_hex(3)}:", "GATEWAY_PORT": str(port),
                "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "RASA_PORT": str(_free_port()),
                "ACTION_PORT": str(_free_port()), "GATEWAY_WORKERS": str(args.workers),
                "SMS_RATE_LIMIT_PER_MINUTE": "100000000", "LOG_LEVEL": "ERROR"})
    cfg = load_settings(env)
    proc = subprocess.Popen([sys.executable, "-m", "channels.gateway.app"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):  # every worker has bound the port once all exist and a second has passed
            if len(_workers_of(proc.pid)) == args.workers:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    pass
            time.sleep(0.1)
        time.sleep(1)
        asyncio.run(drive(cfg, port, _workers_of(proc.pid), args.burst, args.rounds))
    finally:
        proc.terminate()
        proc.wait()
        client = sync_redis(cfg)
        keys = list(client.scan_iter(match=env["REDIS_PREFIX"] + "*", count=1000))
        if keys:
            client.delete(*keys)
    return 0


if __name__ == "__main__":
    sys.exit(main())
