"""``patientbot nlu``: the admins' review inbox and training examples.

    patientbot nlu inbox [--json]                     what the bot did not understand, scrubbed
    patientbot nlu label ID INTENT [--propose]        an inbox item becomes an example of INTENT
                                                      (--propose: of an intent domain.yml lacks yet)
    patientbot nlu add INTENT "example"               type an example in
    patientbot nlu discard ID                         drop an inbox item
    patientbot nlu check                              the checks ``patientbot train`` runs first
    patientbot nlu train [--force]                    check and train (the same as ``patientbot train``)

``--project DIR`` works on another copy of the project (its data/ and domain.yml; default:
this repository) and ``--models DIR`` trains elsewhere. Inbox texts are only ever shown
scrubbed, and only scrubbed text is written to data/. Every command is audited.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from bot.cli.common import cli_actor, fail, redis_session


async def _session(fn):
    """Run ``fn(inbox, scrubber, audit)`` with the inbox, a scrubber that knows the patients'
    names, and an audit function bound to the CLI actor."""
    from bot.nlu.scrub import scrubber_for

    async with redis_session() as s:
        inbox = s.services.review_inbox
        scrubber = await scrubber_for(s.client, s.keys, s.prefix, s.cfg.default_region)

        async def audit(action: str, subject: str, outcome: str = "ok", **details) -> None:
            await s.audit(action, subject, outcome, details)

        return await fn(inbox, scrubber, audit)


def _project(args: argparse.Namespace) -> Path:
    from bot.config import ROOT

    project = getattr(args, "project", None)  # ``patientbot train`` has no --project: this repository
    return Path(project).resolve() if project else ROOT


def cmd_inbox(args: argparse.Namespace) -> int:
    async def run(inbox, scrubber, audit):
        items = await inbox.items(scrubber)
        await audit("nlu_inbox_viewed", "", items=len(items))
        return items

    items = asyncio.run(_session(run))
    if args.json:
        for item in items:
            print(json.dumps(item.__dict__, sort_keys=True))
        return 0
    if not items:
        print("the review inbox is empty")
        return 0
    for item in items:
        proposed = f"  proposed: {item.proposed_intent}" if item.status == "proposed" else ""
        print(f"{item.id}  x{item.count:<3} {item.reason:14} {item.predicted} ({item.confidence:.2f}){proposed}")
        print(f"    {item.text}")
    return 0


def cmd_label(args: argparse.Namespace) -> int:
    from bot.nlu.data import INTENT_NAME, DataError, add_example

    project = _project(args)

    async def run(inbox, scrubber, audit):
        item = await inbox.get(args.id, scrubber)
        if item is None:
            return fail(f"no inbox item {args.id}")
        if args.propose:
            if not INTENT_NAME.match(args.intent):
                return fail(f"{args.intent!r} is not an intent name (lower case, digits, underscores)")
            await inbox.propose(item.id, args.intent)
            await audit("nlu_intent_proposed", item.id, intent=args.intent)
            print(f"{item.id}: proposed as an example of a new intent {args.intent}")
            return 0
        try:
            added = add_example(project, args.intent, item.text, scrubber, project / "tests" / "nlu" / "holdout.yml")
        except DataError as exc:
            await audit("nlu_labelled", item.id, "refused", intent=args.intent)
            return fail(str(exc))
        await inbox.remove(item.id)
        await audit("nlu_labelled", item.id, intent=args.intent, added=added)
        print(f"{item.id}: {'added to' if added else 'already an example of'} {args.intent} in data/nlu.yml")
        return 0

    return asyncio.run(_session(run))


def cmd_add(args: argparse.Namespace) -> int:
    from bot.nlu.data import DataError, add_example

    project = _project(args)

    async def run(inbox, scrubber, audit):
        try:
            added = add_example(project, args.intent, args.example, scrubber, project / "tests" / "nlu" / "holdout.yml")
        except DataError as exc:
            await audit("nlu_example_added", "", "refused", intent=args.intent)
            return fail(str(exc))
        await audit("nlu_example_added", "", intent=args.intent, added=added)
        print(f"{'added to' if added else 'already an example of'} {args.intent} in data/nlu.yml")
        return 0

    return asyncio.run(_session(run))


def cmd_discard(args: argparse.Namespace) -> int:
    async def run(inbox, scrubber, audit):
        if not await inbox.remove(args.id):
            return fail(f"no inbox item {args.id}")
        await audit("nlu_discarded", args.id)
        print(f"{args.id}: discarded")
        return 0

    return asyncio.run(_session(run))


def cmd_check(args: argparse.Namespace) -> int:
    from bot.nlu.training import TrainingRefused, check

    async def scrubber_only(inbox, scrubber, audit):
        return scrubber

    try:
        check(_project(args), asyncio.run(_session(scrubber_only)))
    except TrainingRefused as refused:
        for problem in refused.problems:
            print(f"  {problem}", file=sys.stderr)
        return fail("the training data fails the checks")
    print("the training data passes the checks")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """``patientbot train`` and ``patientbot nlu train``: refuses data the PHI scrubber flags or
    rasa data validate rejects; audited (bot.nlu.training.train_command)."""
    from bot.nlu.training import default_models_dir, train_command

    models = getattr(args, "models", None)  # only ``nlu train`` has --models
    return train_command(_project(args), Path(models).resolve() if models else default_models_dir(),
                         actor=cli_actor(), force=args.force)


def cmd_calibrate(args: argparse.Namespace) -> int:
    from bot.nlu import calibrate as nlu_calibrate

    return nlu_calibrate.main([])


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``train`` (the same as ``nlu train`` on this repository)."""
    p = sub.add_parser("train", help="validate data and train the model if its inputs changed")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_train)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``nlu`` and its subcommands."""
    nlu = sub.add_parser("nlu", help="the review inbox and training examples").add_subparsers(dest="nlu_cmd",
                                                                                            required=True)

    def project_opt(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--project", help="project directory holding data/ and domain.yml (default: this one)")
        return p

    p = nlu.add_parser("inbox", help="messages the bot did not understand (scrubbed)")
    p.add_argument("--json", action="store_true", help="one JSON object per item")
    p.set_defaults(func=cmd_inbox)
    p = project_opt(nlu.add_parser("label", help="make an inbox item an example of an intent"))
    p.add_argument("id")
    p.add_argument("intent")
    p.add_argument("--propose", action="store_true", help="the intent does not exist yet: propose it")
    p.set_defaults(func=cmd_label)
    p = project_opt(nlu.add_parser("add", help="add a training example"))
    p.add_argument("intent")
    p.add_argument("example")
    p.set_defaults(func=cmd_add)
    p = nlu.add_parser("discard", help="drop an inbox item")
    p.add_argument("id")
    p.set_defaults(func=cmd_discard)
    p = project_opt(nlu.add_parser("check", help="the checks training runs first"))
    p.set_defaults(func=cmd_check)
    p = project_opt(nlu.add_parser("train", help="check the data and train (as patientbot train)"))
    p.add_argument("--models", help="directory for the model (default: the configured one)")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_train)
    nlu.add_parser("calibrate", help="choose the fallback and ambiguity thresholds on a validation split "
                                     "(trains the NLU once; writes data/nlu_thresholds.yml and config.yml)"
                   ).set_defaults(func=cmd_calibrate)
