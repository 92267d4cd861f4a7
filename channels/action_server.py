"""The action server, bound to loopback and closed to anyone without the shared secret.

rasa_sdk's own launcher listens on 0.0.0.0 and accepts any caller; this one serves the same
``actions`` package on 127.0.0.1 and refuses a ``/webhook`` call without
``X-Patientbot-Action-Secret`` (which Rasa sends, from endpoints.yml).
"""
from __future__ import annotations

import hmac
import logging

from rasa_sdk.endpoint import create_app
from sanic import response

from bot.config import settings
from bot.logging_setup import configure_logging

SECRET_HEADER = "X-Patientbot-Action-Secret"
logger = logging.getLogger(__name__)


def build_app(secret: str):
    app = create_app("actions")
    expected = secret.encode("utf-8")

    @app.middleware("request")
    async def require_secret(request):
        if request.path == "/health":
            return None
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8")
        if not hmac.compare_digest(given, expected):
            logger.warning("refused an action call without the action server secret")
            return response.json({"error": "forbidden"}, status=403)
        return None

    return app


def main() -> None:
    cfg = settings()
    configure_logging(cfg.log_level)
    app = build_app(cfg.action_secret)
    app.run("127.0.0.1", cfg.action_port, workers=1, access_log=False)


if __name__ == "__main__":
    main()
