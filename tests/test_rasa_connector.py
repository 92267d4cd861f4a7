"""The Rasa-side connector's routes (channels/rasa_bridge/connector.py), called as Rasa's web
server calls them, with a stand-in agent: the shared secret, the checks on what the gateway
posts, the message path and the staff messages recorded into the tracker. No model, no Redis."""
from __future__ import annotations

import json
from contextlib import asynccontextmanager
from types import SimpleNamespace

import pytest

from bot.conversation.rasa_client import SECRET_HEADER
from bot.safety.screen import RISK_KEY
from channels.rasa_bridge import connector

SECRET = "s" * 24


class FakeTracker:
    def __init__(self) -> None:
        self.events = []

    def update(self, event, domain) -> None:
        self.events.append(event)


class FakeAgent:
    def __init__(self) -> None:
        self.tracker = FakeTracker()
        self.saved = []
        self.locked = []
        self.tracker_store = SimpleNamespace(retrieve=self._retrieve, save=self._save)
        self.lock_store = SimpleNamespace(lock=self._lock)
        self.processor = SimpleNamespace(fetch_tracker_with_initial_session=self._retrieve)
        self.domain = object()

    def is_ready(self) -> bool:
        return True

    async def _retrieve(self, sender):
        return self.tracker

    async def _save(self, tracker) -> None:
        self.saved.append(tracker)

    @asynccontextmanager
    async def _lock(self, sender):
        self.locked.append(sender)
        yield


@pytest.fixture
def agent(monkeypatch):
    monkeypatch.setattr(connector, "is_secure_store", lambda store: True)
    return FakeAgent()


def routes(on_new_message=None):
    async def nothing(message):
        return None

    bp = connector.GatewayInput(SECRET).blueprint(on_new_message or nothing)
    return {route.uri: route.handler for route in bp._future_routes}


def request(agent, body=None, secret=SECRET, method="POST", args=None):
    return SimpleNamespace(headers={SECRET_HEADER: secret}, json=body, args=args or {}, method=method,
                           app=SimpleNamespace(ctx=SimpleNamespace(agent=agent)))


def answer(resp):
    return resp.status, json.loads(resp.body)


def test_the_routes_rasa_serves():
    assert set(routes()) == {"/health", "/webhook", "/model", "/transcript", "/staff_messages"}


@pytest.mark.parametrize("uri", ["/health", "/webhook", "/model", "/transcript", "/staff_messages"])
async def test_without_the_secret_nothing_is_done(agent, uri):
    status, body = answer(await routes()[uri](request(agent, {"sender": "x", "text": "hi"}, secret="wrong" * 5)))
    assert status == 403 and body == {"error": "forbidden"}


@pytest.mark.parametrize("uri,body,error", [
    ("/webhook", {"text": "hi"}, "sender and text are required"),
    ("/webhook", {"sender": "", "text": "hi"}, "sender and text are required"),
    ("/webhook", {"sender": "sms-1", "text": 5}, "sender and text are required"),
    ("/webhook", ["not", "a", "dict"], "sender and text are required"),
    ("/staff_messages", {"sender": "sms-1", "messages": "hi"}, "sender and messages are required"),
    ("/staff_messages", {"messages": []}, "sender and messages are required"),
    ("/staff_messages", {"sender": "sms-1", "messages": [{"text": "ok"}, {"author": "staff"}]},
     "each message needs a text"),
])
async def test_what_the_gateway_posts_is_checked(agent, uri, body, error):
    assert answer(await routes()[uri](request(agent, body))) == (400, {"error": error})
    assert agent.saved == []


async def test_a_message_goes_to_rasa_with_its_metadata_and_replies_come_back(agent, monkeypatch):
    seen, captured = [], []

    async def on_new_message(message):
        seen.append(message)
        await message.output_channel.send_response(message.sender_id, {"text": "Hello (synthetic)",
                                                                       "custom": {"phi_class": "phi"}})

    async def capture(agent_, sender):
        captured.append(sender)

    monkeypatch.setattr(connector, "capture_latest_turn", capture)
    body = {"sender": "sms-1", "text": "hi", "channel": "sms", "message_id": "m1", RISK_KEY: 1}
    status, out = answer(await routes(on_new_message)["/webhook"](request(agent, body)))
    assert status == 200 and out == {"messages": [{"text": "Hello (synthetic)", "phi_class": "phi", "safety": ""}]}
    [message] = seen
    assert (message.text, message.sender_id, message.input_channel) == ("hi", "sms-1", "patientbot")
    assert message.metadata == {"channel": "sms", "message_id": "m1", RISK_KEY: 1.0}
    assert captured == ["sms-1"]


async def test_a_failure_in_rasa_is_a_500_without_the_text(agent):
    async def on_new_message(message):
        raise RuntimeError("boom")

    status, out = answer(await routes(on_new_message)["/webhook"](request(agent, {"sender": "sms-1", "text": "hi"})))
    assert (status, out) == (500, {"error": "processing_failed"})


async def test_staff_messages_are_recorded_as_bot_utterances_under_the_lock(agent):
    body = {"sender": "sms-1", "messages": [{"text": "On my way (synthetic)", "timestamp": 100.0},
                                            {"text": "Back to the bot", "author": "bot", "timestamp": 101.0}]}
    status, out = answer(await routes()["/staff_messages"](request(agent, body)))
    assert (status, out) == (200, {"recorded": 2})
    assert agent.locked == ["sms-1"] and agent.saved == [agent.tracker]
    assert [(e.text, e.metadata["author"], e.timestamp) for e in agent.tracker.events] == [
        ("On my way (synthetic)", "staff", 100.0), ("Back to the bot", "bot", 101.0)]


async def test_the_transcript_needs_a_sender_and_gives_user_and_bot_texts(agent):
    handler = routes()["/transcript"]
    assert answer(await handler(request(agent, method="GET"))) == (400, {"error": "sender is required"})
    status, out = answer(await handler(request(agent, method="GET", args={"sender": "sms-1"})))
    assert (status, out) == (200, {"messages": []})


async def test_buttons_travel_with_their_reply_and_a_command_payload_is_dropped():
    """Buttons reach the gateway (the web chat shows them); a "/intent" payload never does: the
    gateway strips a leading "/" from what patients send, so it would arrive as other text."""
    output = connector.GatewayOutput()
    await output.send_response("web-x", {"text": "Did you mean: 1) hours 2) parking", "custom": {"phi_class": "public"},
                                         "buttons": [{"title": "hours", "payload": "1"},
                                                     {"title": "parking", "payload": " 2 "},
                                                     {"title": "sneaky", "payload": "/ask_hours"},
                                                     {"title": "", "payload": "3"}, "not a button"]})
    await output.send_response("web-x", {"text": "plain", "custom": {"phi_class": "public"}})
    assert output.messages == [
        {"text": "Did you mean: 1) hours 2) parking", "phi_class": "public", "safety": "",
         "buttons": [{"title": "hours", "payload": "1"}, {"title": "parking", "payload": "2"}]},
        {"text": "plain", "phi_class": "public", "safety": ""}]
