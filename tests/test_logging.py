"""bot/logging_setup.py: libraries' debug records dropped, numbers and dates masked, pseudonyms kept."""
from __future__ import annotations

import logging

import pytest

from bot.logging_setup import RedactingFilter, guard_all_handlers


def _record(name: str, level: int, msg: str, *args) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


@pytest.mark.parametrize("name", ["rasa.core.processor", "rasa_sdk.executor", "sanic.root", "aiohttp.access"])
def test_libraries_debug_records_are_dropped(name):
    # Rasa's processor prints every message this way at DEBUG.
    assert not RedactingFilter().filter(_record(name, logging.DEBUG, "Received user message 'synthetic text'"))
    assert RedactingFilter().filter(_record(name, logging.INFO, "started"))


@pytest.mark.parametrize("name", ["bot.storage.audit", "bot.conversation.pipeline", "actions.faq", "__main__"])
def test_our_own_debug_records_pass(name):
    assert RedactingFilter().filter(_record(name, logging.DEBUG, "conversation %s answered", "sms-abc"))


def test_numbers_and_dates_are_masked_but_pseudonyms_are_not():
    record = _record("rasa.core", logging.ERROR, "failed for %s (%s) on %s, conversation %s",
                     "+1 555-010-0101", "5550100101", "01/01/1980", "sms-2434a0ab95f1234567890c937d")
    assert RedactingFilter().filter(record)
    message = record.getMessage()
    assert "555" not in message and "1980" not in message
    assert "[number]" in message and "[date]" in message
    assert "sms-2434a0ab95f1234567890c937d" in message  # hex pseudonyms are not phone numbers


def test_guard_puts_the_filter_on_every_handler_once():
    logger = logging.getLogger("pbtest.guarded")
    handler = logging.StreamHandler()
    logger.addHandler(handler)
    try:
        guard_all_handlers()
        guard_all_handlers()
        assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
    finally:
        logger.removeHandler(handler)
