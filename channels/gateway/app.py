"""The gateway: the only process that listens for the outside world.

``python -m channels.gateway.app`` serves, on ``GATEWAY_HOST:GATEWAY_PORT`` (in ``GATEWAY_WORKERS``
processes, channels/gateway/workers.py):

* ``POST /sms/inbound``  signed SMS webhook (channels.sms.webhook)
* ``POST /sms/status``   signed delivery status callbacks for outbound messages
* ``/staff/``            the staff console (channels.staff; sign-in at ``/staff/login``)
* ``GET /chat``, ``/socket.io/``  the web chat page and its socket.io endpoint (channels.web)
* ``GET /healthz``       200 only when Redis, Rasa (with its encrypted tracker store) and the
                         action server all answer; 503 with the failing part otherwise.
"""
from __future__ import annotations

import asyncio
import gc
import logging
from typing import Optional

import aiohttp
from aiohttp import web

from redis.exceptions import RedisError

from bot.config import Settings, settings as load_settings
from bot.conversation.pipeline import InboundPipeline
from bot.conversation.rasa_client import RasaClient
from bot.core.office import load_office
from bot.logging_setup import configure_logging
from bot.safety.model import RiskClassifier, classifier as risk_classifier
from bot.services import build_services
from bot.storage.audit import SYSTEM
from bot.storage.config_audit import audit_configuration
from bot.storage.redis_client import open_connections
from channels.gateway.app_keys import HTTP, PIPELINE, RASA, SERVICES, SETTINGS, SMS_SENDER
from channels.gateway.workers import fork_workers, keep_own_listener, private_listeners, stop_workers, worker_number
from channels.sms import webhook as sms
from channels.sms.sender import SmsSender
from channels.staff import add_console
from channels.web import add_web_chat, route_between_workers

logger = logging.getLogger(__name__)


async def healthz(request: web.Request) -> web.Response:
    app = request.app
    checks = {}
    try:
        checks["redis"] = bool(await app[SERVICES].redis.ping())
    except Exception as exc:  # noqa: BLE001
        checks["redis"] = False
        checks["redis_error"] = exc.__class__.__name__
    rasa = await app[RASA].health()
    checks["rasa"] = rasa.get("ok", False)
    if not checks["rasa"]:
        checks["rasa_error"] = rasa.get("reason", "unavailable")
    try:
        async with app[HTTP].get(app[SETTINGS].action_url + "/health", timeout=aiohttp.ClientTimeout(total=3)) as resp:
            checks["actions"] = resp.status == 200
    except (aiohttp.ClientError, asyncio.TimeoutError):
        checks["actions"] = False
    healthy = checks["redis"] and checks["rasa"] and checks["actions"]
    return web.json_response({"status": "ok" if healthy else "unavailable", **checks},
                             status=200 if healthy else 503)


@web.middleware
async def security_headers(request: web.Request, handler):
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    except Exception:  # noqa: BLE001 - never a traceback to the caller, never text in the log
        logger.exception("unhandled error on %s %s", request.method, request.path)
        response = web.Response(status=500, text="internal error")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Cache-Control", "no-store")
    csp = response.headers.get("Content-Security-Policy", "")
    if "frame-ancestors" not in csp or "frame-ancestors 'none'" in csp:
        # A page whose policy names the sites that may frame it (the web chat, with
        # WEBCHAT_ALLOWED_ORIGINS) decides alone: this header could only say DENY or SAMEORIGIN.
        response.headers.setdefault("X-Frame-Options", "DENY")
    if isinstance(response, web.HTTPException):
        raise response
    return response


def load_risk_classifier() -> Optional[RiskClassifier]:
    """The safety gate's classifier (bot.safety.model). Without it the gateway still starts:
    the rules and the safety net redirect on their own; the failure is logged as critical."""
    try:
        return risk_classifier()
    except Exception as exc:  # noqa: BLE001 - any failure here must not stop emergency redirects
        logger.critical("ALERT the safety classifier could not be loaded (%s); rules and safety net only",
                        exc.__class__.__name__)
        return None


def create_app(cfg: Optional[Settings] = None) -> web.Application:
    cfg = cfg or load_settings()
    app = web.Application(middlewares=[security_headers], client_max_size=64 * 1024)
    app[SETTINGS] = cfg
    app.on_startup.append(_start)
    app.on_cleanup.append(_stop)
    app.router.add_get("/healthz", healthz)
    sms.add_routes(app)
    add_console(app, cfg)  # after on_startup's _start: the console's services are the gateway's
    add_web_chat(app, cfg)  # likewise
    return app


async def _start(app: web.Application) -> None:
    """Build the services once (bot.services), the Rasa client and the SMS sender, and wire
    the pipeline; then audit the configuration."""
    cfg = app[SETTINGS]
    services = app[SERVICES] = build_services(cfg)
    app[HTTP] = aiohttp.ClientSession()
    rasa = app[RASA] = RasaClient(cfg.rasa_url, cfg.rasa_secret, cfg.rasa_reply_timeout, cfg.rasa_max_connections)
    await rasa.start()
    pipeline = app[PIPELINE] = InboundPipeline(services, rasa)
    sender = app[SMS_SENDER] = SmsSender(app[HTTP], cfg, services.redis, services.keys)
    pipeline.late_delivery = sms.late_delivery(sender, services)
    pipeline.holding_after = cfg.sms_holding_after
    pipeline.duplicate_wait = cfg.rasa_reply_timeout + 1.0  # the first delivery's answer is due by then
    pipeline.classifier = load_risk_classifier()
    pipeline.send_code = sms.code_delivery(sender, services)  # web chat always texts codes; SMS per IDV_REQUIRE_CODE
    try:
        await audit_configuration(services.redis, services.keys, services.audit, cfg, SYSTEM)
        await open_connections(services.redis, cfg.redis_warm_connections)
    except RedisError:  # start anyway: emergencies must be redirected even with Redis down
        logger.error("could not audit the configuration: Redis unavailable")


async def _stop(app: web.Application) -> None:
    await app[PIPELINE].drain()
    await app[RASA].close()
    await app[HTTP].close()
    await app[SERVICES].close()


async def _freeze_start_up_heap(app: web.Application) -> None:
    """Everything allocated by the end of start-up (libraries, templates, the office, the
    services) lives as long as the process. Left in the collector's oldest generation, each
    full collection walks all of it: 25-36 ms with the event loop stopped, a pause for every
    message in flight (make bench). Frozen, a full collection walks only what came since."""
    gc.collect()
    gc.freeze()


def main() -> None:
    cfg = load_settings()
    configure_logging(cfg.log_level)
    load_office(cfg.office_config)  # fail at start-up on a bad office.yml
    # Each worker's private port, bound before the fork so all know all (channels/web/worker_routing.py).
    listeners = private_listeners(cfg.gateway_workers) if cfg.gateway_workers > 1 else []
    private_ports = [sock.getsockname()[1] for sock in listeners]
    workers = fork_workers(cfg.gateway_workers)  # before any loop, thread or connection exists
    own = keep_own_listener(listeners)
    app = create_app(cfg)
    if private_ports:
        route_between_workers(app, worker_number(), private_ports)
    app.on_startup.append(_freeze_start_up_heap)  # the process's own, after create_app's start
    try:
        web.run_app(app, host=cfg.gateway_host, port=cfg.gateway_port, access_log=None,
                    reuse_port=cfg.gateway_workers > 1, sock=own,
                    print=lambda *_: logger.info("gateway listening on %s:%s", cfg.gateway_host, cfg.gateway_port))
    finally:
        stop_workers(workers)


if __name__ == "__main__":
    main()
