"""What the gateway application holds, under typed keys (aiohttp's ``web.AppKey``): the
handlers of every channel served by the gateway read them, ``app[PIPELINE]`` rather than a
string key a typo would miss."""
from __future__ import annotations

import aiohttp
from aiohttp import web

from bot.config import Settings
from bot.conversation.pipeline import InboundPipeline
from bot.conversation.rasa_client import RasaClient
from bot.services import Services
from channels.sms.sender import SmsSender

SETTINGS = web.AppKey("settings", Settings)
SERVICES = web.AppKey("services", Services)  # built once at start-up (bot.services)
HTTP = web.AppKey("http", aiohttp.ClientSession)  # the process's outbound HTTP client
RASA = web.AppKey("rasa", RasaClient)
PIPELINE = web.AppKey("pipeline", InboundPipeline)
SMS_SENDER = web.AppKey("sms_sender", SmsSender)
