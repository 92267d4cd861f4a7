"""The staff console, served by the gateway under ``/staff/``.

Staff sign in (password and TOTP code), see the hand-off queue live (server-sent events),
open a conversation (the bot's transcript and the hand-off log, decrypted for them and audited
as a PHI view), claim it (one owner at a time), reply by text through the outbound gate, add
internal notes and hand it back to the bot. Admins also see the staff list, the review
inbox and the Model page (train, evaluate, roll out). Access rules:
:mod:`channels.staff.auth`; pages and actions: :mod:`channels.staff.views`.
"""
from __future__ import annotations

from pathlib import Path

import jinja2
from aiohttp import web

from bot.storage.audit import AuditLog
from bot.config import Settings
from bot.records.handoff import HandoffQueue
from bot.records.staff_accounts import StaffAccounts
from bot.records.staff_sessions import StaffSessions
# importing a views module declares its routes
from channels.staff import (conversation_views, model_views, nlu_views, queue_views,  # noqa: F401
                            sign_in_views, staff_list_views, views)
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
    app["staff_templates"] = _templates()
    app.middlewares.append(security_headers)
    app.middlewares.append(guard)

    async def start(app: web.Application) -> None:
        pipeline = app["pipeline"]
        app["staff_services"] = views.StaffServices(
            accounts=StaffAccounts(app["redis"], pipeline.keys, cfg.redis_prefix, cfg.staff_login_max_failures,
                                   cfg.staff_lockout_minutes, cfg.staff_totp_issuer),
            sessions=StaffSessions(app["redis"], cfg.redis_prefix, cfg.staff_session_idle_minutes,
                                   cfg.staff_session_max_hours),
            queue=HandoffQueue(app["redis"], cfg.redis_prefix, pipeline.keys),
            audit=pipeline.audit,
            history=BotHistory(app["http"], cfg.rasa_url, cfg.rasa_secret),
            office=pipeline.office,
        )

    app.on_startup.append(start)
    model_views.add_job_runner(app, cfg)
    for spec in ROUTES:
        app.router.add_route(spec.method, PREFIX + spec.path, spec.handler)
    app.router.add_static(PREFIX + "/static/", HERE / "static")
