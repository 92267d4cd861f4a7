"""The composition root: every service a process uses, built once from the settings on one
Redis client, with one argument order.

The gateway (channels/gateway/app.py), the action server (actions/common.py), the staff console
(channels/staff) and the CLI (bot/cli) take their services from :func:`build_services`. A few
records still build the stores they use inside themselves (the reminder replies, retention, the
SMS sender's audit log, the NLU capture inside Rasa). One audit writer per process: the stores
built here that audit share it, so their appends share its round trips.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import redis.asyncio as aioredis

from bot.config import Settings, settings
from bot.conversation.web_outbox import WebOutbox
from bot.core.office import Office, load_office
from bot.nlu.inbox import ReviewInbox
from bot.records.appointments import AppointmentStore
from bot.records.consent import ConsentRegistry
from bot.records.handoff import HandoffQueue
from bot.records.identity import IdentityRegistry
from bot.records.outbound import OutboundGate
from bot.records.reminders import ReminderReplies
from bot.records.secure_links import SecureLinks
from bot.records.staff_accounts import StaffAccounts
from bot.records.staff_sessions import StaffSessions
from bot.records.languages import LanguageStore
from bot.records.web_binding import WebBindings
from bot.storage.audit import AuditLog
from bot.storage.crypto import KeyRing, keyring
from bot.storage.redis_client import async_redis


@dataclass(frozen=True)
class Services:
    """The records and their writers, on one Redis client and one key ring."""
    cfg: Settings
    redis: aioredis.Redis
    keys: KeyRing
    office: Office
    audit: AuditLog
    consent: ConsentRegistry
    outbound: OutboundGate  # the one gate every message the office starts passes
    handoff: HandoffQueue
    identity: IdentityRegistry
    web_bindings: WebBindings  # the number on file each web conversation is about
    languages: LanguageStore  # the language each conversation is held in
    appointments: AppointmentStore
    reminder_replies: ReminderReplies
    secure_links: SecureLinks  # one-time links to the secure web chat, sent instead of PHI by SMS
    staff_accounts: StaffAccounts
    staff_sessions: StaffSessions
    review_inbox: ReviewInbox = field(repr=False)
    web_outbox: WebOutbox = field(repr=False)  # what the office sends to web chat browsers

    async def close(self) -> None:
        """Close the Redis client (the process is done with these services)."""
        await self.redis.close()


def build_services(cfg: Optional[Settings] = None, redis: Optional[aioredis.Redis] = None,
                   office: Optional[Office] = None) -> Services:
    """Every service, from ``cfg`` (the process settings by default). ``redis``: a client the
    caller already holds (it then stays the caller's to close); ``office``: one already loaded."""
    cfg = cfg or settings()
    client = redis if redis is not None else async_redis(cfg)
    keys = keyring(cfg)
    prefix = cfg.redis_prefix
    office = office or load_office(cfg.office_config)
    audit = AuditLog(client, keys, prefix)
    consent = ConsentRegistry(client, keys, prefix)
    return Services(
        cfg=cfg, redis=client, keys=keys, office=office, audit=audit, consent=consent,
        outbound=OutboundGate(consent, audit),
        handoff=HandoffQueue(client, keys, prefix, audit),
        identity=IdentityRegistry(client, keys, prefix),
        web_bindings=WebBindings(client, keys, prefix),
        languages=LanguageStore(client, keys, prefix),
        appointments=AppointmentStore(client, keys, prefix),
        reminder_replies=ReminderReplies(client, keys, prefix, office, audit),
        secure_links=SecureLinks(client, keys, prefix, audit),
        staff_accounts=StaffAccounts(client, keys, prefix, cfg.staff_login_max_failures,
                                     cfg.staff_lockout_minutes, cfg.staff_totp_issuer),
        staff_sessions=StaffSessions(client, prefix, cfg.staff_session_idle_minutes, cfg.staff_session_max_hours),
        review_inbox=ReviewInbox(client, keys, prefix, cfg.nlu_inbox_days),
        web_outbox=WebOutbox(client, keys, prefix),
    )
