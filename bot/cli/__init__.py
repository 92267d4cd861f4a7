"""The ``patientbot`` command: ``main`` parses and dispatches (bot.cli.commands), one module per
command group (stack, appointments, handoff, staff, reminders, audit, identity, consent, data,
nlu, models), what they share in bot.cli.common."""
from bot.cli.commands import main

__all__ = ["main"]
