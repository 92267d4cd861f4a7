"""``patientbot up | down | status | chat``: the whole stack in the background, on loopback
(bot.ops.stack), and a terminal chat with it as a patient (bot.ops.chat)."""
from __future__ import annotations

import argparse

from bot.cli.common import cli_actor, fail, phone_number
from bot.config import settings


def cmd_up(args: argparse.Namespace) -> int:
    from bot.ops.stack import Stack, StackError

    try:
        Stack.from_env(scale=args.scale).up(timeout=args.timeout, actor=cli_actor())
    except StackError as exc:
        return fail(str(exc))
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from bot.ops.stack import Stack

    Stack.from_env().down()
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from bot.ops.stack import Stack

    stack = Stack.from_env()  # every instance that runs (scale-out: gateway-2, rasa-2, ...)
    for name in stack.processes:
        pid = stack.running(name)
        print(f"{name:11} {'running, pid ' + str(pid) if pid else 'stopped'}")
    healthy = True
    for inst in stack.instances:
        status = stack.healthz(inst.number)
        healthy = healthy and status == 200
        label = "healthz" if inst.number == 1 else f"healthz-{inst.number}"
        print(f"{label}  {status or 'no answer'}")
    return 0 if healthy else 1


def cmd_chat(args: argparse.Namespace) -> int:
    from bot.ops.chat import run_chat

    sender = phone_number(args.sender)
    if sender is None:
        return fail("--from is not a phone number")
    return run_chat(settings(), sender)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``up``, ``down``, ``status`` and ``chat``."""
    from bot.ops.chat import DEMO_PATIENT_NUMBER

    p = sub.add_parser("up", help="start the stack in the background and wait until healthy")
    p.add_argument("--timeout", type=float, default=240.0)
    p.add_argument("--scale", type=int, default=None, metavar="N",
                   help="run N gateways, Rasa servers and action servers against the one Redis "
                        "(default: as many as run now, else 1; fewer than run now stops the extra ones)")
    p.set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop the stack").set_defaults(func=cmd_down)
    sub.add_parser("status", help="show what runs").set_defaults(func=cmd_status)
    p = sub.add_parser("chat", help="chat with the running bot as a patient, over signed SMS webhooks")
    p.add_argument("--from", dest="sender", default=DEMO_PATIENT_NUMBER)
    p.set_defaults(func=cmd_chat)
