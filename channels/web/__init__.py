"""The web chat, served by the gateway: ``GET /chat`` (a page with the real rasa-webchat
widget), ``/chat/static/`` (the pinned widget and the page's own files), ``POST /chat/sign-out``
and the socket.io endpoint ``/socket.io/`` that speaks the widget's protocol.

A web message goes through the same pipeline as an SMS (bot/conversation/pipeline.py) as
``Inbound("web", <web session id>, text, message_id)``. The modules: the session cookie
(``session_cookie``), who may connect (``handshake``), the protocol (``socket_server``), what the
office sends to browsers (``delivery``, from bot/conversation/web_outbox.py), the page
(``page``), the pinned widget (``widget_bundle``), and each connection kept with its gateway
worker (``worker_routing``).
"""
from __future__ import annotations

import asyncio
import logging
from typing import List, Optional

from aiohttp import web

from bot.config import Settings
from bot.storage.redis_client import async_redis
from channels.gateway.app_keys import PIPELINE, SERVICES
from channels.web import page, secure_link_views
from channels.web.app_keys import WEB_CHAT, WEB_DELIVERY, WIDGET, WORKER_ROUTES
from channels.web.delivery import Delivery
from channels.web.handshake import allowed_origins, socketio_entry
from channels.web.socket_server import WebChat
from channels.web.widget_bundle import WidgetError, read_pin, verified_bundle
from channels.web.worker_routing import WorkerRoutes

logger = logging.getLogger(__name__)

SOCKETIO_PATH = "/socket.io/"


def add_web_chat(app: web.Application, cfg: Settings) -> None:
    """Add the web chat's routes to the gateway ``app``; it starts after the gateway's services
    (it hands messages to the gateway's pipeline and shares its Redis client and keys)."""
    pin = read_pin()
    chat = app[WEB_CHAT] = WebChat(cfg, allowed_origins(cfg.public_origin, cfg.webchat_allowed_origins))
    try:
        app[WIDGET] = verified_bundle(pin)
    except WidgetError as exc:  # SMS and the console go on; the chat page says what is missing
        logger.critical("ALERT web chat widget unavailable: %s", exc)
    page.add_routes(app, pin)
    secure_link_views.add_routes(app)
    for method in ("GET", "POST", "OPTIONS"):
        app.router.add_route(method, SOCKETIO_PATH, socketio_entry)
    app.middlewares.append(_private_port_serves_socketio_only)

    async def start(app: web.Application) -> None:
        chat.start(app[SERVICES], app[PIPELINE])
        routes = app.get(WORKER_ROUTES)
        if routes is not None:
            chat.name_sessions_by(routes)
            await routes.start()
        delivery = app[WEB_DELIVERY] = Delivery(chat, app[SERVICES].web_outbox, async_redis(cfg))
        chat.delivery = delivery
        delivery.start()

    async def hang_up(app: web.Application) -> None:
        """Close every connection this worker holds before the server waits for requests in
        flight: a long poll would otherwise hold the shutdown until engine.io's next ping (25 s).
        The widgets reconnect, to another worker or to this gateway once it is back."""
        for sock in list(chat.sio.eio.sockets.values()):
            await sock.close(wait=False, abort=False)  # a poll waiting on it gets the close packet
        await chat.sio.shutdown()  # engine.io's watch over its connections
        # aiohttp waits for every task started since start-up; engine.io leaves each closed
        # connection's ping timer asleep for up to its ping interval.
        for task in asyncio.all_tasks():
            if getattr(task.get_coro(), "__qualname__", "") == "AsyncSocket._send_ping":
                task.cancel()

    async def stop(app: web.Application) -> None:
        await app[WEB_DELIVERY].stop()
        routes = app.get(WORKER_ROUTES)
        if routes is not None:
            await routes.close()

    app.on_startup.append(start)
    app.on_shutdown.append(hang_up)
    app.on_cleanup.insert(0, stop)  # before the gateway closes the services it uses


def route_between_workers(app: web.Application, number: int, ports: List[int]) -> None:
    """With several gateway workers: this one is ``number``; ``ports`` are every worker's
    private loopback port (channels/gateway/workers.py). Call before the app starts."""
    app[WORKER_ROUTES] = WorkerRoutes(number, ports)


@web.middleware
async def _private_port_serves_socketio_only(request: web.Request, handler):
    """A worker's private port carries only web chat requests passed on by another worker."""
    routes: Optional[WorkerRoutes] = request.app.get(WORKER_ROUTES)
    if routes is not None and request.path != SOCKETIO_PATH and routes.came_in_privately(request):
        raise web.HTTPNotFound()
    return await handler(request)
