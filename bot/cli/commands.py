"""The ``patientbot`` command: ``main`` parses the command line and runs the command.

    patientbot up | down | status       whole stack in the background, on loopback (bot/cli/stack.py)
    patientbot chat [--from NUMBER]     terminal chat through the gateway, as a patient (bot/cli/stack.py)
    patientbot train [--force]          check (PHI scrubber, rasa data validate) and train if inputs changed
    patientbot import-fhir BUNDLE.json  load patients, practitioners and appointments (bot/cli/appointments.py)
    patientbot demo-data                load the synthetic demo bundle, dates moved to this week
    patientbot handoff list             the staff queue (pseudonymous conversation ids)
    patientbot staff add | reset | disable | enable | unlock | list   console accounts (bot/cli/staff.py)
    patientbot remind [--at TIME]       send the appointment reminders due; show who got one, who not, why
    patientbot audit head | verify [--head FILE] | export [--since --until --number --format jsonl|fhir]
    patientbot identity unlock NUMBER   lift a verification lock-out (staff, after a phone check)
    patientbot consent show | export | record | grant | revoke   the consent record (bot/cli/consent.py)
    patientbot links sweep              expire the unopened secure links past their time (bot/cli/links.py)
    patientbot keys status | rotate | rewrap      data keys (bot/cli/data.py)
    patientbot retention run | hold | release | holds   retention policy and legal holds (bot/cli/data.py)
    patientbot nlu inbox | label | add | discard | check | train | calibrate   the training loop (bot/cli/nlu.py)
    patientbot evaluate | model status | rollout | rollback   models (bot/cli/models.py)

Each command module registers its own subcommands (``add_parsers``); the order below is the
order ``patientbot --help`` lists them in.
"""
from __future__ import annotations

import argparse
from typing import List, Optional

from bot.cli import appointments, audit, consent, data, handoff, identity, links, models, nlu, reminders, stack, staff
from bot.cli.common import fail
from bot.config import ConfigError


def build_parser() -> argparse.ArgumentParser:
    """The ``patientbot`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="patientbot", description="patient messaging bot for medical offices")
    sub = parser.add_subparsers(dest="command", required=True)
    for register in (stack.add_parsers, nlu.add_train_parser, appointments.add_parsers, handoff.add_parsers,
                     staff.add_parsers, reminders.add_parsers, audit.add_parsers, identity.add_parsers,
                     consent.add_parsers, links.add_parsers, data.add_parsers, nlu.add_parsers, models.add_parsers):
        register(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run ``patientbot`` with ``argv`` (default: the command line); returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        return fail(str(exc))
