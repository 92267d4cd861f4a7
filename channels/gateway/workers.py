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
import socket
import sys
from typing import List, Optional

_PR_SET_PDEATHSIG = 1
_number = 0  # this process's worker number: 0 for the first, 1..N-1 for the forked ones


def fork_workers(count: int) -> List[int]:
    """Fork ``count - 1`` workers. In the first process, returns their pids; in a worker, []."""
    global _number
    parent = os.getpid()
    children: List[int] = []
    for n in range(1, count):
        pid = os.fork()
        if pid == 0:
            _number = n
            _end_with(parent)
            return []
        children.append(pid)
    return children


def worker_number() -> int:
    """This process's number among the workers (0 for the process that forked the others)."""
    return _number


def private_listeners(count: int) -> List[socket.socket]:
    """One loopback socket per worker, bound before the fork so that every worker knows every
    other's port. What reaches the shared port is the kernel's choice of worker; a request that
    must reach one worker in particular (a web chat's long-polling session lives in the worker
    that opened it: channels/web/worker_routing.py) is passed on to that worker's own port."""
    listeners = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        listeners.append(sock)
    return listeners


def keep_own_listener(listeners: List[socket.socket]) -> Optional[socket.socket]:
    """After the fork: this worker's private socket, listening; the others' closed here."""
    own = None
    for n, sock in enumerate(listeners):
        if n == _number:
            sock.listen(128)
            own = sock
        else:
            sock.close()
    return own


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
