"""``patientbot import-fhir | demo-data``: load patients, practitioners and appointments from
a FHIR R4 Bundle (the demo's synthetic bundle with its dates moved to this week)."""
from __future__ import annotations

import argparse
import asyncio
from datetime import datetime, timedelta
from pathlib import Path

from bot.cli.common import fail, redis_session
from bot.config import ROOT

DEMO_BUNDLE = ROOT / "data" / "demo" / "synthetic_bundle.json"


async def _import(path: Path, source: str, shift_to_tomorrow: bool = False) -> dict:
    """Validate the bundle at ``path``, then store it; returns the counts imported."""
    from bot.config import settings
    from bot.records.fhir import load_bundle_file

    bundle = load_bundle_file(path, settings().default_region)
    if shift_to_tomorrow and bundle.appointments:
        first = min(a.start for a in bundle.appointments.values())
        days = (datetime.now(first.tzinfo).date() + timedelta(days=1) - first.date()).days
        for appt in bundle.appointments.values():
            appt.start += timedelta(days=days)
            appt.end = appt.end + timedelta(days=days) if appt.end else None
    async with redis_session() as s:
        return await s.services.appointments.import_bundle(bundle, source)


def cmd_import_fhir(args: argparse.Namespace) -> int:
    from bot.records.fhir import BundleError

    try:
        counts = asyncio.run(_import(Path(args.bundle), source="import:fhir"))
    except BundleError as exc:
        return fail(f"bundle rejected, nothing imported: {exc}")
    print(f"imported {counts['patients']} patients, {counts['practitioners']} practitioners, "
          f"{counts['appointments']} appointments")
    return 0


def cmd_demo_data(args: argparse.Namespace) -> int:
    counts = asyncio.run(_import(DEMO_BUNDLE, source="import:demo", shift_to_tomorrow=True))
    print(f"loaded the SYNTHETIC demo bundle: {counts['patients']} patients, {counts['appointments']} appointments "
          "(dates moved so the first is tomorrow)")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``import-fhir`` and ``demo-data``."""
    p = sub.add_parser("import-fhir", help="import a FHIR R4 Bundle (Patient, Practitioner, Appointment)")
    p.add_argument("bundle")
    p.set_defaults(func=cmd_import_fhir)
    sub.add_parser("demo-data", help="load the synthetic demo bundle").set_defaults(func=cmd_demo_data)
