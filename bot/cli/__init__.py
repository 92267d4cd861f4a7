"""The ``patientbot`` command: ``main`` parses and dispatches (bot.cli.commands), one module per
command group (data, models, nlu, staff), what they share in bot.cli.common."""
from bot.cli.commands import main

__all__ = ["main"]
