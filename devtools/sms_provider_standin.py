"""A stand-in for the SMS provider's REST API, for development and tests. NOT product code.

It speaks the part of Twilio's API the gateway uses, on loopback, so the whole stack runs end
to end with no internet and no real texts:

* ``POST /2010-04-01/Accounts/{sid}/Messages.json`` (basic auth: account SID and auth token)
  records the message and answers ``201 {"sid": ..., "status": "queued"}``; it then posts a
  signed ``delivered`` status callback to the message's StatusCallback, as Twilio would.
* ``GET /_standin/messages`` lists what was "sent"; ``POST /_standin/fail`` with
  ``{"statuses": [500, 500]}`` makes the next requests fail with those HTTP statuses, and
  ``{"drop": 2}`` makes the next two connections hang up (network errors).

    python -m devtools.sms_provider_standin --port 8089
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import secrets
from typing import Any, Dict, List, Optional

import aiohttp
from aiohttp import web
from twilio.request_validator import RequestValidator


class SmsProviderStandIn:
    def __init__(self, account_sid: str, auth_token: str, deliver: bool = True) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.deliver = deliver
        self.sent: List[Dict[str, Any]] = []
        self.requests = 0
        self.fail_statuses: List[int] = []
        self.drop = 0
        self.callbacks: List[int] = []  # HTTP status of each status callback the gateway answered
        self._tasks: set = set()

    def _authorised(self, request: web.Request) -> bool:
        expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return request.headers.get("Authorization") == expected

    async def create_message(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        if self.drop:
            self.drop -= 1
            request.transport.close()  # the client sees a network error
            return web.Response(status=500)
        if self.fail_statuses:
            return web.json_response({"message": "injected failure"}, status=self.fail_statuses.pop(0))
        if request.match_info["sid"] != self.account_sid or not self._authorised(request):
            return web.json_response({"code": 20003, "message": "Authenticate"}, status=401)
        form = dict(await request.post())
        if not form.get("To") or not form.get("Body"):
            return web.json_response({"code": 21604, "message": "'To' and 'Body' are required"}, status=400)
        sid = "SM" + secrets.token_hex(16)
        self.sent.append({"sid": sid, **form})
        if self.deliver and form.get("StatusCallback"):
            task = asyncio.ensure_future(self._callback(form["StatusCallback"], sid, "delivered"))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return web.json_response({"sid": sid, "status": "queued", "to": form["To"]}, status=201)

    async def _callback(self, url: str, sid: str, status: str) -> None:
        params = {"MessageSid": sid, "MessageStatus": status, "AccountSid": self.account_sid}
        signature = RequestValidator(self.auth_token).compute_signature(url, params)
        try:
            async with aiohttp.ClientSession() as session:
                async with session.post(url, data=params, headers={"X-Twilio-Signature": signature}) as resp:
                    self.callbacks.append(resp.status)
        except aiohttp.ClientError:
            self.callbacks.append(0)

    async def list_messages(self, request: web.Request) -> web.Response:
        return web.json_response({"messages": self.sent})

    async def fail(self, request: web.Request) -> web.Response:
        doc = await request.json()
        self.fail_statuses = [int(s) for s in doc.get("statuses", [])]
        self.drop = int(doc.get("drop", 0))
        return web.json_response({"ok": True})

    async def settle(self) -> None:
        """Wait for the status callbacks in flight (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self.create_message)
        app.router.add_get("/_standin/messages", self.list_messages)
        app.router.add_post("/_standin/fail", self.fail)
        return app


def main(argv: Optional[list] = None) -> None:
    from bot.config import settings

    parser = argparse.ArgumentParser(description="SMS provider stand-in (development only)")
    parser.add_argument("--port", type=int, default=8089)
    args = parser.parse_args(argv)
    cfg = settings()
    web.run_app(SmsProviderStandIn(cfg.sms_account_sid, cfg.sms_auth_token).app(), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
