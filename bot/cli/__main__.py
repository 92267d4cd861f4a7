"""``python -m bot.cli``: the same as the ``patientbot`` command."""
from bot.cli.commands import main

raise SystemExit(main())
