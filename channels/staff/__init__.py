"""The staff console, served by the gateway under ``/staff/``.

Staff sign in (password and TOTP code), see the hand-off queue live (server-sent events),
open a conversation (the bot's transcript and the hand-off log, decrypted for them and audited
as a PHI view), claim it (one owner at a time), reply by text through the outbound gate, add
internal notes and hand it back to the bot, and record a patient's written authorization for
health information by text (or its withdrawal). Admins also see the staff list, the review
inbox and the Model page (train, evaluate, roll out). Access rules:
:mod:`channels.staff.auth`; what every page shares: :mod:`channels.staff.views`; the pages: one
``*_views`` module each.
"""
from __future__ import annotations

from pathlib import Path

import jinja2
from aiohttp import web

from bot.config import Settings
from channels.gateway.app_keys import HTTP, SERVICES
# importing a views module declares its routes
from channels.staff import (consent_views, conversation_views, model_views, nlu_views, queue_views,  # noqa: F401
                            sign_in_views, staff_list_views, views)
from channels.staff.app_keys import STAFF_SERVICES, STAFF_TEMPLATES, StaffServices
from channels.staff.auth import ROUTES, guard, security_headers
from channels.staff.bot_history import BotHistory

HERE = Path(__file__).resolve().parent
PREFIX = "/staff"


def _templates() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                             autoescape=jinja2.select_autoescape(["html"], default=True),
                             undefined=jinja2.StrictUndefined)
    env.filters["minutes"] = lambda seconds: f"{int(seconds) // 60} min"
    return env


def add_console(app: web.Application, cfg: Settings) -> None:
    """Add the console's routes and middlewares to the gateway ``app``; its services are built
    at start-up, after the gateway's own (it shares their Redis client, keys and audit log).

    Routes are added to the gateway itself, not as an aiohttp sub-application: sub-application
    prefix matching reads ``request.url``, which this aiohttp/yarl pair cannot build.
    """
    app[STAFF_TEMPLATES] = _templates()
    app.middlewares.append(security_headers)
    app.middlewares.append(guard)

    async def start(app: web.Application) -> None:
        services = app[SERVICES]
        app[STAFF_SERVICES] = StaffServices(
            accounts=services.staff_accounts,
            sessions=services.staff_sessions,
            queue=services.handoff,
            audit=services.audit,
            history=BotHistory(app[HTTP], cfg.rasa_url, cfg.rasa_secret),
            office=services.office,
        )

    app.on_startup.append(start)
    model_views.add_job_runner(app, cfg)
    for spec in ROUTES:
        app.router.add_route(spec.method, PREFIX + spec.path, spec.handler)
    app.router.add_static(PREFIX + "/static/", HERE / "static")
