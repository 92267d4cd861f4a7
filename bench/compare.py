"""The benchmark: patientbot's gateway against a stock Rasa server, same model, same messages.

    make bench                                   # 1, 20 and 100 concurrent patients
    .venv/bin/python bench/compare.py --levels 1 20 --out results/

What it does, on its own ports and Redis prefix (a running `make up` stack is not touched):

1. trains the model if its inputs changed; loads synthetic patients (generated here, one per
   simulated patient, each with an appointment tomorrow and a made-up date of birth);
2. starts the stack (action server, Rasa with the encrypted Redis tracker store, gateway, SMS
   provider stand-in) and, beside it, a *stock* Rasa server: REST channel, in-memory tracker
   and lock stores, the same model and the same action server;
3. for each level N, drives N simulated patients at once, each through a realistic
   conversation (greeting, appointment date, FAQs, the question that needs a date of birth
   and the date of birth, confirmation, something unintelligible, HELP, STOP, START, an
   emergency): to the gateway as signed SMS webhooks, then the same texts to stock Rasa;
4. reports per message type the median, p95 and p99 round trip, the throughput, and each
   process's peak memory (VmHWM), as a Markdown table and a PNG plot in ``--out``.

Message types: ``nlu`` (answered by Rasa in both), ``verification`` (the date of birth: our
gateway checks it and asks Rasa for the answer; stock Rasa just classifies it), ``gate``
(STOP, START, HELP, emergencies: ours answers them before the NLU, stock Rasa sends them
through the NLU like anything else).

Beside the patients on the gateway, a probe sends one safety message every 50 ms (HELP, STOP,
START, an emergency, from 8 numbers of its own). The script's own safety messages arrive in
bursts (its last four messages are all safety messages, and patients leave Rasa's queue
together); the probe's do not, so they show what the NLU's load alone costs the gate. They
are reported apart and counted in no throughput.

Beside the SMS rows, a web chat row: the same gateway through its socket.io endpoint, as the
rasa-webchat widget talks to it (each simulated patient a browser with its own session
cookie, on long polling, on the gateway's two workers), with a shorter script of its own
(FAQs, an unintelligible message, an emergency; no STOP or date of birth, which are SMS's).

To compare processing, not the SMS user experience, the gateway is configured to wait for
Rasa's answer instead of sending a holding message after 1 s (SMS_HOLDING_AFTER_SECONDS=300)
and to give Rasa up to 300 s (RASA_REPLY_TIMEOUT); the per-sender rate limit is lifted. A
benchmark, not a test: it asserts nothing about time.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.ops.chat import parse_twiml, signed_sms  # noqa: E402
from bot.config import ROOT as PROJECT_ROOT, load_settings, merged_environ  # noqa: E402
from bot.storage.crypto import conversation_id, keyring  # noqa: E402
from bot.ops.stack import Stack  # noqa: E402
from bot.cli.common import cli_actor  # noqa: E402
from bot.nlu.training import is_current, model_path, rasa_bin, rasa_env, train_command  # noqa: E402

TYPES = ("nlu", "verification", "gate")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- synthetic patients ------------------------------------------------------------------------
@dataclass(frozen=True)
class Patient:
    number: str
    dob: date


def synthetic_patients(count: int, first: int) -> List[Patient]:
    """Fictional patients: numbers in the 555 area code, made-up dates of birth."""
    return [Patient(f"+1555011{first + i:04d}", date(1950, 1, 1) + timedelta(days=97 * (first + i)))
            for i in range(count)]


def bundle_for(patients: List[Patient]) -> dict:
    """A FHIR R4 Bundle: each patient with one appointment tomorrow at 10:00 (synthetic)."""
    tomorrow = (datetime.now(timezone.utc) + timedelta(days=1)).date()
    entries = [{"resource": {"resourceType": "Practitioner", "id": "bench-pr-1",
                             "name": [{"given": ["Synthetic"], "family": "Clinician"}]}}]
    for i, p in enumerate(patients):
        pid = f"bench-p-{p.number[-6:]}"
        entries.append({"resource": {
            "resourceType": "Patient", "id": pid, "name": [{"given": ["Synthetic"], "family": f"Patient{i}"}],
            "birthDate": p.dob.isoformat(), "telecom": [{"system": "phone", "value": p.number, "use": "mobile"}]}})
        entries.append({"resource": {
            "resourceType": "Appointment", "id": f"bench-a-{p.number[-6:]}", "status": "booked",
            "serviceType": [{"text": "Synthetic visit"}], "start": f"{tomorrow}T10:00:00-06:00",
            "end": f"{tomorrow}T10:30:00-06:00",
            "participant": [{"actor": {"reference": f"Patient/{pid}"}, "status": "needs-action"},
                            {"actor": {"reference": "Practitioner/bench-pr-1"}, "status": "accepted"}]}})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def conversation_script(p: Patient) -> List[Tuple[str, str]]:
    """(message type, text) in the order a patient would send them."""
    return [
        ("nlu", "hi"), ("nlu", "when is my appointment"), ("nlu", "what are your hours"),
        ("nlu", "where do I park"), ("nlu", "what is my appointment for"),
        ("verification", p.dob.strftime("%m/%d/%Y")), ("nlu", "C"), ("nlu", "zxq blorp wug"),
        ("gate", "HELP"), ("gate", "STOP"), ("gate", "START"),
        ("gate", "I took a whole bottle of pills"),  # last: an emergency escalates to staff
    ]


# -- the two targets ---------------------------------------------------------------------------
@dataclass
class Sample:
    kind: str
    ms: float
    ok: bool
    step: int = 0  # position in the conversation script
    at: float = 0.0  # seconds since the level started, when the answer came
    server_ms: Optional[float] = None  # the gateway's own time for it (Server-Timing), if given


def _server_timing(header: str) -> Optional[float]:
    """The gateway's own time from ``Server-Timing: app;dur=<ms>`` (channels/sms/webhook.py)."""
    for part in header.split(";"):
        if part.strip().startswith("dur="):
            return float(part.strip()[4:])
    return None


class Gateway:
    name = "patientbot gateway"

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self.url = f"http://127.0.0.1:{cfg.gateway_port}/sms/inbound"

    async def send(self, session: aiohttp.ClientSession, p: Patient, text: str) -> Tuple[bool, Optional[float]]:
        data, headers = signed_sms(self.cfg, p.number, text)
        async with session.post(self.url, data=data, headers=headers) as resp:
            body = await resp.text()
        # Every message in the script gets an answer; the gateway says how long it took itself.
        return resp.status == 200 and bool(parse_twiml(body)), _server_timing(resp.headers.get("Server-Timing", ""))


class WebChat:
    """The gateway's web chat (channels/web): one socket.io client per patient, kept for the
    level, its round trip the time to the first ``bot_uttered`` (all of a message's replies
    are emitted together)."""

    name = "patientbot web chat"

    def __init__(self, cfg) -> None:
        self.base = f"http://127.0.0.1:{cfg.gateway_port}"
        self.open: Dict[str, Tuple[object, asyncio.Queue, aiohttp.ClientSession]] = {}

    @staticmethod
    def script(p: Patient) -> List[Tuple[str, str]]:
        return [("nlu", "hi"), ("nlu", "what are your hours"), ("nlu", "where do I park"),
                ("nlu", "do you take my insurance"), ("nlu", "zxq blorp wug"),
                ("gate", "I took a whole bottle of pills")]

    async def prepare(self, session: aiohttp.ClientSession, p: Patient) -> None:
        import socketio
        from yarl import URL

        async with session.get(self.base + "/chat") as page:  # the page sets the session cookie
            cookie = page.cookies["pb_chat"].value
        jar = aiohttp.CookieJar(unsafe=True)
        jar.update_cookies({"pb_chat": cookie}, URL(self.base))
        http = aiohttp.ClientSession(cookie_jar=jar, connector=aiohttp.TCPConnector(force_close=True))
        client, replies = socketio.AsyncClient(reconnection=False, http_session=http), asyncio.Queue()
        client.on("bot_uttered", replies.put)
        await client.connect(self.base, transports=["polling"], socketio_path="/socket.io/", wait_timeout=60)
        await client.emit("session_request", {"session_id": None})
        self.open[p.number] = (client, replies, http)

    async def send(self, session: aiohttp.ClientSession, p: Patient, text: str) -> Tuple[bool, Optional[float]]:
        client, replies, _ = self.open[p.number]
        while not replies.empty():  # a reply of the previous message that came after its first
            replies.get_nowait()
        await client.emit("user_uttered", {"message": text, "customData": {}})
        try:
            await asyncio.wait_for(replies.get(), 320)
        except asyncio.TimeoutError:
            return False, None
        return True, None

    async def finish(self) -> None:
        for client, _, http in self.open.values():
            try:
                await client.eio.disconnect(abort=True)
            finally:
                await http.close()
        self.open.clear()


class OurRasaDirect:
    """Our Rasa (encrypted Redis tracker store, Redis lock store) without the gateway: splits
    the difference to stock Rasa into what the stores cost and what the gateway costs."""

    name = "patientbot Rasa, no gateway"

    def __init__(self, cfg, keys) -> None:
        from bot.conversation.rasa_client import SECRET_HEADER, WEBHOOK_PATH

        self.url = f"http://127.0.0.1:{cfg.rasa_port}{WEBHOOK_PATH}"
        self.headers = {SECRET_HEADER: cfg.rasa_secret}
        self.keys = keys

    async def send(self, session: aiohttp.ClientSession, p: Patient, text: str) -> Tuple[bool, Optional[float]]:
        sender = conversation_id(self.keys, "sms", p.number)  # its own patients, as the gateway would name them
        payload = {"sender": sender, "text": text, "channel": "sms", "message_id": ""}
        async with session.post(self.url, json=payload, headers=self.headers) as resp:
            body = await resp.json(content_type=None)
        return resp.status == 200 and isinstance(body.get("messages"), list), None


class StockRasa:
    name = "stock Rasa"

    def __init__(self, port: int, keys) -> None:
        self.url = f"http://127.0.0.1:{port}/webhooks/rest/webhook"
        self.keys = keys

    async def send(self, session: aiohttp.ClientSession, p: Patient, text: str) -> Tuple[bool, Optional[float]]:
        # The same pseudonymous conversation id the gateway would use, so the actions find the
        # same kind of patient record and do the same work.
        sender = conversation_id(self.keys, "sms", p.number)
        async with session.post(self.url, json={"sender": sender, "message": text}) as resp:
            body = await resp.json(content_type=None)
        return resp.status == 200 and isinstance(body, list), None


async def _patient(target, session, p: Patient, samples: List[Sample], started: float) -> None:
    if hasattr(target, "prepare"):
        await target.prepare(session, p)
    for step, (kind, text) in enumerate(getattr(target, "script", conversation_script)(p)):
        t0 = time.perf_counter()
        try:
            ok, server_ms = await target.send(session, p, text)
        except (aiohttp.ClientError, asyncio.TimeoutError):
            ok, server_ms = False, None
        done = time.perf_counter()
        samples.append(Sample(kind, (done - t0) * 1000, ok, step, done - started, server_ms))


PROBE_TEXTS = ("HELP", "STOP", "START", "I took a whole bottle of pills")
PROBE_INTERVAL = 0.05  # seconds between the probe's messages: 20 a second


async def _probe(target, session, numbers: List[Patient], samples: List[Sample], started: float,
                 done: asyncio.Event) -> None:
    """One safety message at a time, every PROBE_INTERVAL, while the patients run: how fast the
    gate answers beside a saturated NLU when safety messages are not themselves arriving in a
    burst. Each probe number sends HELP, STOP, START and an emergency, in that order."""
    k = 0
    while not done.is_set():
        number, text = numbers[(k // len(PROBE_TEXTS)) % len(numbers)], PROBE_TEXTS[k % len(PROBE_TEXTS)]
        t0 = time.perf_counter()
        try:
            ok, server_ms = await target.send(session, number, text)
        except (aiohttp.ClientError, asyncio.TimeoutError):
            ok, server_ms = False, None
        samples.append(Sample("probe", (time.perf_counter() - t0) * 1000, ok, k, time.perf_counter() - started,
                              server_ms))
        k += 1
        try:
            await asyncio.wait_for(done.wait(), PROBE_INTERVAL)
        except asyncio.TimeoutError:
            pass


async def drive(target, patients: List[Patient],
                probe: Optional[List[Patient]] = None) -> Tuple[List[Sample], float, List[Sample]]:
    """The patients' samples and wall time, and the probe's samples if ``probe`` numbers are given."""
    samples: List[Sample] = []
    probed: List[Sample] = []
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
        done = asyncio.Event()
        prober = asyncio.ensure_future(_probe(target, session, probe, probed, time.perf_counter(), done)
                                       if probe else asyncio.sleep(0))
        t0 = time.perf_counter()
        await asyncio.gather(*(_patient(target, session, p, samples, t0) for p in patients))
        wall = time.perf_counter() - t0
        if hasattr(target, "finish"):
            await target.finish()
        done.set()
        await prober
        return samples, wall, probed


# -- processes ---------------------------------------------------------------------------------
def peak_rss_mb(pid: Optional[int]) -> Optional[float]:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


def start_stock_rasa(run_dir: Path, port: int, stack: Stack) -> subprocess.Popen:
    """Stock Rasa: REST channel, in-memory tracker and lock stores, our model and action server."""
    endpoints = run_dir / "stock-endpoints.yml"
    endpoints.write_text(
        "action_endpoint:\n"
        f"  url: http://127.0.0.1:{stack.cfg.action_port}/webhook\n"
        "  headers:\n"
        f"    X-Patientbot-Action-Secret: {stack.cfg.action_secret}\n")
    credentials = run_dir / "stock-credentials.yml"
    credentials.write_text("rest:\n")
    log = open(run_dir / "stock-rasa.log", "ab")
    env = {**rasa_env(), **{k: v for k, v in stack.child_env().items() if k.startswith(("REDIS", "PATIENTBOT"))}}
    proc = subprocess.Popen(
        [rasa_bin(), "run", "--model", str(model_path(stack.cfg.model_path.parent)), "--endpoints", str(endpoints),
         "--credentials", str(credentials), "--interface", "127.0.0.1", "--port", str(port)],
        cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    import urllib.request

    for _ in range(600):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"stock Rasa exited; see {run_dir / 'stock-rasa.log'}")
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("stock Rasa did not start in 300 s")


# -- report ------------------------------------------------------------------------------------
def pct(values: List[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else float("nan")


@dataclass
class Run:
    target: str
    level: int
    samples: List[Sample]
    wall: float
    probe: List[Sample] = field(default_factory=list)  # the probe's safety messages (gateway only)
    by_kind: Dict[str, List[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        groups = defaultdict(list)
        for s in self.samples:
            groups[s.kind].append(s.ms)
            groups["all"].append(s.ms)
        self.by_kind = dict(groups)

    @property
    def throughput(self) -> float:
        return len(self.samples) / self.wall

    @property
    def failures(self) -> int:
        return sum(not s.ok for s in self.samples)

    def throughput_of(self, kinds: Tuple[str, ...]) -> float:
        """Messages of these kinds answered per second of the run."""
        return sum(s.kind in kinds for s in self.samples) / self.wall

    def server_ms(self, kind: str) -> List[float]:
        """The gateway's own time (Server-Timing) for the messages of a kind."""
        return [s.server_ms for s in self.samples if s.kind == kind and s.server_ms is not None]


def report(runs: List[Run], memory: Dict[str, Optional[float]], out: Path, machine: str) -> str:
    lines = [f"# Benchmark: patientbot gateway vs stock Rasa ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)", "",
             f"Machine: {machine}. Command: `make bench` (bench/compare.py). Each simulated patient sends "
             f"{len(conversation_script(Patient('+15550000000', date(1980, 1, 1))))} messages.", "",
             "| patients | target | msgs | failed | throughput (msg/s) | all: median / p95 / p99 ms | nlu median / p99 | "
             "verification median / p99 | gate median / p99 |", "|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        k = r.by_kind
        cell = lambda kind: f"{statistics.median(k[kind]):.0f} / {pct(k[kind], .99):.0f}" if kind in k else "-"  # noqa: E731
        lines.append(f"| {r.level} | {r.target} | {len(r.samples)} | {r.failures} | {r.throughput:.1f} | "
                     f"{statistics.median(k['all']):.0f} / {pct(k['all'], .95):.0f} / {pct(k['all'], .99):.0f} | "
                     f"{cell('nlu')} | {cell('verification')} | {cell('gate')} |")
    lines += ["", "| patients | gateway / stock: median round trip (nlu) | of which our Rasa's stores "
              "(no gateway / stock) | gateway / stock: throughput (all / reaching Rasa) | "
              "STOP/HELP/START/emergency p99: round trip / in the gateway | "
              "probe, one every 50 ms beside them: n, median / p99 round trip, p99 in the gateway |",
              "|---|---|---|---|---|---|"]
    for level in sorted({r.level for r in runs}):
        pick = lambda name: next((r for r in runs if r.level == level and r.target == name), None)  # noqa: E731
        ours, direct, stock = pick(Gateway.name), pick(OurRasaDirect.name), pick(StockRasa.name)
        if ours is None:
            continue
        gate = f"{pct(ours.by_kind['gate'], .99):.1f} ms / {pct(ours.server_ms('gate'), .99):.1f} ms"
        trips = [p.ms for p in ours.probe]
        inside = [p.server_ms for p in ours.probe if p.server_ms is not None]
        gate += (f" | {len(trips)}, {statistics.median(trips):.1f} / {pct(trips, .99):.1f} ms, "
                 f"{pct(inside, .99):.1f} ms" if trips and inside else " | -")
        if direct is None or stock is None:  # --gateway-only
            lines.append(f"| {level} | - | - | - | {gate} |")
            continue
        nlu = lambda r: statistics.median(r.by_kind["nlu"])  # noqa: E731
        lines.append(f"| {level} | {nlu(ours) / nlu(stock):.2f}x | {nlu(direct) / nlu(stock):.2f}x | "
                     f"{ours.throughput / stock.throughput:.2f}x / "
                     # Messages Rasa processed per second: all of stock's, our nlu and verification ones.
                     f"{ours.throughput_of(('nlu', 'verification')) / stock.throughput:.2f}x"
                     f" | {gate} |")
    lines += ["", "Peak memory (VmHWM) per process:", ""]
    lines += [f"* {name}: {mb:.0f} MB" if mb else f"* {name}: n/a" for name, mb in memory.items()]
    text = "\n".join(lines) + "\n"
    (out / "bench.md").write_text(text)
    (out / "bench.json").write_text(json.dumps([{"target": r.target, "level": r.level, "wall": r.wall,
                                                   "samples": [[s.kind, s.ms, s.ok, s.step, s.at, s.server_ms]
                                                               for s in r.samples + r.probe]}
                                                  for r in runs]))
    if {Gateway.name, OurRasaDirect.name, StockRasa.name} <= {r.target for r in runs}:
        plot(runs, out / "bench.png")
    return text


def plot(runs: List[Run], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = sorted({r.level for r in runs})
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for target, colour in ((Gateway.name, "tab:blue"), (OurRasaDirect.name, "tab:green"), (StockRasa.name, "tab:grey")):
        mine = [next(r for r in runs if r.level == lv and r.target == target) for lv in levels]
        left.plot(levels, [statistics.median(r.by_kind["nlu"]) for r in mine], "o-", color=colour,
                  label=f"{target}, median (nlu)")
        left.plot(levels, [pct(r.by_kind["nlu"], .99) for r in mine], "o--", color=colour,
                  label=f"{target}, p99 (nlu)")
        right.plot(levels, [r.throughput for r in mine], "o-", color=colour, label=target)
    ours = [next(r for r in runs if r.level == lv and r.target == Gateway.name) for lv in levels]
    left.plot(levels, [pct(r.by_kind["gate"], .99) for r in ours], "s:", color="tab:red",
              label="gateway, p99 of STOP/HELP/emergency")
    for ax, title, unit in ((left, "round trip", "ms"), (right, "throughput", "messages/s")):
        ax.set_xscale("log")
        ax.set_xticks(levels, [str(lv) for lv in levels])
        ax.set_xlabel("concurrent patients")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.legend(fontsize=7)
    left.set_yscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# -- main --------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 20, 100])
    parser.add_argument("--out", default=str(PROJECT_ROOT / "results"))
    parser.add_argument("--gateway-only", action="store_true", help="skip the two Rasa baselines (profiling)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    if not is_current() and train_command(PROJECT_ROOT, PROJECT_ROOT / "models", actor=cli_actor()) != 0:
        return 1
    run_dir = PROJECT_ROOT / ".run" / "bench"
    run_dir.mkdir(parents=True, exist_ok=True)
    env = merged_environ()
    env.update({
        "REDIS_PREFIX": f"pbbench{secrets.token_hex(3)}:", "GATEWAY_PORT": str(_free_port()),
        "RASA_PORT": str(_free_port()), "ACTION_PORT": str(_free_port()),
        "SMS_API_BASE": f"http://127.0.0.1:{_free_port()}", "PATIENTBOT_RUN_DIR": str(run_dir),
        "SMS_RATE_LIMIT_PER_MINUTE": "100000000", "SMS_HOLDING_AFTER_SECONDS": "300", "RASA_REPLY_TIMEOUT": "300",
        "WEBCHAT_RATE_LIMIT_PER_MINUTE": "100000000",
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"),
    })
    env["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{env['GATEWAY_PORT']}"
    os.environ.update(env)  # this process reads the same settings (keys, Redis prefix)
    from bot import config

    config.reset_cache()
    cfg = load_settings(env)
    stack = Stack.from_env(env)
    total = sum(args.levels)
    ours_patients, stock_patients = synthetic_patients(total, 0), synthetic_patients(total, total)
    direct_patients = synthetic_patients(total, 2 * total + 2)
    web_patients = synthetic_patients(total, 3 * total + 12)  # keys of their browsers (no records needed)

    from bot.storage.redis_client import sync_redis

    warm = synthetic_patients(2, 2 * total)  # warm-up senders, not measured
    probe = synthetic_patients(8, 3 * total + 4)  # the probe's numbers (no appointments needed)
    asyncio.run(load_patients(cfg, ours_patients + stock_patients + direct_patients + warm))
    stock_port = _free_port()
    stock_proc = None
    print("starting the stack and a stock Rasa server ...", flush=True)
    stack.up(timeout=600, train=False, say=lambda *a: None)
    try:
        stock_proc = start_stock_rasa(run_dir, stock_port, stack)
        targets = [(Gateway(cfg), ours_patients), (WebChat(cfg), web_patients),
                   (OurRasaDirect(cfg, keyring(cfg)), direct_patients),
                   (StockRasa(stock_port, keyring(cfg)), stock_patients)][:2 if args.gateway_only else 4]
        for target, _ in targets:  # first requests load lazily: warm each up on unmeasured senders
            asyncio.run(drive(target, warm[:1] if isinstance(target, Gateway) else warm[1:]))
        runs: List[Run] = []
        start = 0
        for level in args.levels:
            for target, pool in targets:
                samples, wall, probed = asyncio.run(drive(target, pool[start:start + level],
                                                          probe if isinstance(target, Gateway) else None))
                run = Run(target.name, level, samples, wall, probed)
                runs.append(run)
                print(f"{level:>4} patients  {target.name:20} {len(samples)} msgs in {wall:.1f} s "
                      f"({run.throughput:.1f}/s), median {statistics.median(run.by_kind['all']):.0f} ms, "
                      f"failed {run.failures}", flush=True)
            start += level
        memory = {name: peak_rss_mb(stack.running(name)) for name in stack.processes}
        memory["stock Rasa"] = peak_rss_mb(stock_proc.pid)
        machine = f"{os.cpu_count()} cores, {os.uname().machine}, Python {sys.version.split()[0]}"
        print(report(runs, memory, out, machine))
        print(f"written: {out / 'bench.md'}, {out / 'bench.png'}")
    finally:
        if stock_proc is not None:
            stock_proc.terminate()
            stock_proc.wait(timeout=30)
        stack.down(say=lambda *a: None)
        client = sync_redis(cfg)
        for key in client.scan_iter(match=f"{cfg.redis_prefix}*", count=1000):
            client.delete(key)
    return 0


async def load_patients(cfg, patients: List[Patient]) -> None:
    from bot.records.appointments import AppointmentStore
    from bot.records.fhir import parse_bundle
    from bot.storage.redis_client import async_redis

    client = async_redis(cfg)
    try:
        await AppointmentStore(client, keyring(cfg), cfg.redis_prefix).import_bundle(
            parse_bundle(bundle_for(patients)), "import:bench")
    finally:
        await client.close()


if __name__ == "__main__":
    raise SystemExit(main())
