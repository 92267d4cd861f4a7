"""Rasa side: swap the running model without a restart (the connector's ``/model`` route).

Rasa's own ``PUT /model`` needs Rasa's whole HTTP API switched on, which would also open its
tracker read/replace endpoints next to the gateway; this project keeps that API off. This does
what Rasa's endpoint does, behind the connector's shared secret: a new Agent is built around
the running one's tracker store, lock store, action endpoint and response generator, the model
is loaded in a worker thread while the old one keeps answering, and then the two are swapped
(Rasa's channel handler reads ``app.ctx.agent`` for every message). If loading fails the old
model stays. Only model files inside the configured models directory are accepted (a Rasa
model is a pickle archive: loading one runs code).
"""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Dict

from sanic import response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.config import settings
from bot.nlu.training import file_sha256

logger = logging.getLogger(__name__)
_swap_lock = asyncio.Lock()


def describe(agent: Any) -> Dict[str, Any]:
    processor = getattr(agent, "processor", None)
    path = Path(processor.model_path) if processor is not None else None
    return {"model": path.name if path else None, "sha256": file_sha256(path) if path and path.is_file() else None}


async def current_model(request: Request) -> HTTPResponse:
    return response.json(describe(request.app.ctx.agent))


async def load_model(request: Request) -> HTTPResponse:
    from rasa.core.agent import Agent

    body = request.json if isinstance(request.json, dict) else {}
    raw = body.get("model_file")
    if not isinstance(raw, str) or not raw:
        return response.json({"error": "model_file is required"}, status=400)
    models_dir = settings().model_path.parent.resolve()
    path = Path(raw).resolve()
    if models_dir not in path.parents or not path.is_file():
        return response.json({"error": "model_file must be an existing file in the models directory"}, status=400)
    async with _swap_lock:
        old = request.app.ctx.agent
        new = Agent(generator=old.nlg, tracker_store=old.tracker_store, lock_store=old.lock_store,
                    action_endpoint=old.action_endpoint, http_interpreter=old.http_interpreter)
        try:
            await asyncio.get_running_loop().run_in_executor(None, new.load_model, str(path))
        except Exception as exc:  # noqa: BLE001 - the old model keeps serving; say why, briefly
            logger.error("model load failed, keeping %s: %s", describe(old)["model"], exc.__class__.__name__)
            return response.json({"error": "model_load_failed", "reason": exc.__class__.__name__}, status=500)
        request.app.ctx.agent = new
    logger.info("model swapped: now %s", path.name)
    return response.json(describe(new))
