"""The gateway in several processes on one port (channels/gateway/workers.py), run as it is deployed
(``python -m channels.gateway.app``) against the real Redis: both workers answer, and no worker
outlives the process that started it, however that process ends."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import http.client
from pathlib import Path
from typing import List

import pytest

from bot.ops.chat import parse_twiml, signed_sms
from bot.config import ROOT, load_settings
from tests.conftest import make_test_env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> List[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _accepted(pid: int, port: int) -> int:
    """Open connections a process has accepted on ``port`` (from /proc/net/tcp and its fds)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "01":  # local port, ESTABLISHED
            inodes.add(fields[9])
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        count += target.startswith("socket:[") and target[8:-1] in inodes
    return count


def _gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def gateway(prefix):
    port = _free_port()
    env = make_test_env(prefix, GATEWAY_PORT=str(port), PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
                        RASA_PORT=str(_free_port()), ACTION_PORT=str(_free_port()), GATEWAY_WORKERS="2",
                        SMS_RATE_LIMIT_PER_MINUTE="1000", LOG_LEVEL="WARNING")
    proc = subprocess.Popen([sys.executable, "-m", "channels.gateway.app"], cwd=ROOT, env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(200):
            workers = _children(proc.pid)
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    pass
                if workers:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        time.sleep(1)  # the worker binds after its own start-up
        yield proc, load_settings(env), port
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_both_workers_answer_on_the_one_port(gateway):
    proc, cfg, port = gateway
    [worker] = _children(proc.pid)
    connections = []
    try:
        for n in range(24):  # kept open, so each stays with the worker the kernel gave it
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            data, headers = signed_sms(cfg, f"+1555010{n:04d}", "HELP")
            conn.request("POST", "/sms/inbound", body=data, headers=headers)
            [answer] = parse_twiml(conn.getresponse().read().decode())
            assert "STOP" in answer
            connections.append(conn)
        # The kernel spread the connections over both processes, and each answered on them.
        served = {pid: _accepted(pid, port) for pid in (proc.pid, worker)}
        assert sum(served.values()) == 24 and all(served.values()), served
    finally:
        for conn in connections:
            conn.close()


def test_a_worker_stops_with_the_gateway(gateway):
    proc, cfg, port = gateway
    [worker] = _children(proc.pid)
    proc.send_signal(signal.SIGTERM)
    assert _gone(worker, 20) and proc.wait(20) is not None


def test_a_worker_never_outlives_a_killed_gateway(gateway):
    proc, cfg, port = gateway
    [worker] = _children(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)  # no chance to stop its workers itself
    proc.wait()
    assert _gone(worker, 20)
