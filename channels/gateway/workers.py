"""Several gateway processes on one port, so the gateway can use more than one core.

The gateway is one asyncio process, so one core. With ``GATEWAY_WORKERS=N`` it forks N - 1
more before any event loop, thread or connection exists; all N serve the same port
(SO_REUSEPORT: the kernel spreads incoming connections over them), each with its own
connections to Redis and to its Rasa. They share nothing but Redis, like the gateways of a
scale-out (bot/ops/stack.py), so everything that holds across gateways holds across workers:
idempotency, rate limits, consent, hand-off and one audit chain.

Why: the safety gate's answers are cheap (about 0.9 ms of CPU each) but many can arrive at
once, and one process answers them one after another (make bench, gateway only, 20 patients:
their p99 was 18-24 ms with one worker, 11 ms with two).
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
from typing import List

_PR_SET_PDEATHSIG = 1


def fork_workers(count: int) -> List[int]:
    """Fork ``count - 1`` workers. In the first process, returns their pids; in a worker, []."""
    parent = os.getpid()
    children: List[int] = []
    for _ in range(count - 1):
        pid = os.fork()
        if pid == 0:
            _end_with(parent)
            return []
        children.append(pid)
    return children


def _end_with(parent: int) -> None:
    """A worker gets SIGTERM when the process that forked it ends, even by SIGKILL: no orphan
    goes on answering on the port after a stop or a crash."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it ended before that took effect
        os._exit(0)


def stop_workers(children: List[int]) -> None:
    """Ask the workers to stop (each shuts down gracefully on SIGTERM) and wait for them."""
    for pid in children:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for pid in children:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
