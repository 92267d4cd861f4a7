"""A terminal chat with the running bot, as a (synthetic) patient texting the office.

Each line you type is sent to the gateway exactly as the SMS provider would send it: a
signed ``POST /sms/inbound``. So the demo exercises the real path, signature check included.
"""
from __future__ import annotations

import secrets
import sys
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from typing import List, Optional, Tuple

from bot.config import Settings
from channels.sms.signature import compute_signature

DEMO_PATIENT_NUMBER = "+15550100101"  # synthetic demo patient (555-01xx is reserved for fiction)


def signed_sms(cfg: Settings, sender: str, body: str, message_sid: Optional[str] = None) -> Tuple[bytes, dict]:
    """Form body and headers of a provider-signed inbound SMS."""
    params = {
        "From": sender, "To": cfg.sms_from_number, "Body": body,
        "MessageSid": message_sid or "SM" + secrets.token_hex(16), "AccountSid": cfg.sms_account_sid,
        "NumMedia": "0",
    }
    signature = compute_signature(cfg.sms_auth_token, cfg.public_base_url + "/sms/inbound", params)
    headers = {"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}
    return urllib.parse.urlencode(params).encode(), headers


def parse_twiml(xml_text: str) -> List[str]:
    return [m.text or "" for m in ET.fromstring(xml_text).iter("Message")]


def send(cfg: Settings, sender: str, body: str) -> List[str]:
    data, headers = signed_sms(cfg, sender, body)
    request = urllib.request.Request(f"http://127.0.0.1:{cfg.gateway_port}/sms/inbound", data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as resp:
        return parse_twiml(resp.read().decode("utf-8"))


def run_chat(cfg: Settings, sender: str = DEMO_PATIENT_NUMBER) -> int:
    print(f"Texting the office as the synthetic demo patient ({sender}). Ctrl-D or 'exit' to leave.")
    print("Try: hi | when is my appointment | C | what are your hours | where do I park | "
          "what is my appointment for, then 01/01/1980 (synthetic DOB) | can I talk to someone")
    while True:
        try:
            line = input("you> ")
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if line.strip().lower() in {"exit", "quit()", ":q"}:
            return 0
        try:
            replies = send(cfg, sender, line)
        except urllib.error.HTTPError as exc:
            print(f"[gateway answered HTTP {exc.code}]", file=sys.stderr)
            continue
        except (urllib.error.URLError, OSError) as exc:
            print(f"[gateway unreachable: {exc}; is the stack up? run 'make up']", file=sys.stderr)
            return 1
        if not replies:
            print("bot> (no reply)")
        for reply in replies:
            print(f"bot> {reply}")
