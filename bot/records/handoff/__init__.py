"""Escalation to staff: the queue, the conversation's log, the number to text back and the
console's live notifications, in Redis.

Each role lives in its own module (queue, inbox, log, contacts, events, over the key names in
store); :class:`HandoffQueue` joins them for the callers that work a conversation through all
of them (the gateway, the staff console, the reminder replies).
"""
from __future__ import annotations

from bot.records.handoff.inbox import HandoffInbox
from bot.records.handoff.log import LOG_KINDS, HandoffLog
from bot.records.handoff.queue import ACTIVE, PRIORITY, REASONS, EscalationQueue

__all__ = ["ACTIVE", "LOG_KINDS", "PRIORITY", "REASONS", "HandoffQueue"]


class HandoffQueue(EscalationQueue, HandoffInbox, HandoffLog):
    """The staff queue of escalated conversations, with their logs and numbers to reply to.

    ``HandoffQueue(client, keys, prefix, audit=None)``: ``keys`` may be None where a caller only
    reads the queue (sealing and opening log entries and numbers then fail).
    """
