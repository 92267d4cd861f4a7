"""What the web chat keeps in the gateway application, under typed keys."""
from __future__ import annotations

from aiohttp import web

from channels.web.delivery import Delivery
from channels.web.socket_server import WebChat
from channels.web.widget_bundle import WidgetPin
from channels.web.worker_routing import WorkerRoutes

WEB_CHAT = web.AppKey("web_chat", WebChat)  # the socket.io server and the browsers this worker holds
WEB_DELIVERY = web.AppKey("web_chat_delivery", Delivery)  # the outbox's listener in this worker
WORKER_ROUTES = web.AppKey("web_chat_routes", WorkerRoutes)  # set only with several gateway workers
WIDGET = web.AppKey("web_chat_widget", bytes)  # the verified widget bundle, served from memory
PIN = web.AppKey("web_chat_pin", WidgetPin)  # the widget served (channels/web/widget.pin)
