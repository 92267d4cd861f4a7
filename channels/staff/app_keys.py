"""What the console keeps in the gateway application, under typed keys: its services (built at
start-up from the gateway's own, bot.services), its templates and the Model page's job runner."""
from __future__ import annotations

from dataclasses import dataclass

import jinja2
from aiohttp import web

from bot.core.office import Office
from bot.nlu.jobs import JobRunner
from bot.records.handoff import HandoffQueue
from bot.records.staff_accounts import StaffAccounts
from bot.records.staff_sessions import StaffSessions
from bot.storage.audit import AuditLog
from channels.staff.bot_history import BotHistory


@dataclass
class StaffServices:
    """What the console works with, built once when the gateway starts."""

    accounts: StaffAccounts
    sessions: StaffSessions
    queue: HandoffQueue
    audit: AuditLog
    history: BotHistory
    office: Office


STAFF_SERVICES = web.AppKey("staff_services", StaffServices)
STAFF_TEMPLATES = web.AppKey("staff_templates", jinja2.Environment)
MODEL_JOBS = web.AppKey("model_jobs", JobRunner)
