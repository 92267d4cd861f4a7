"""Twilio's webhook signature, computed exactly as Twilio does.

HMAC-SHA1, keyed with the auth token, over the full public URL followed by every POST
parameter name and value in name order; base64. The URL is the configured public URL of the
gateway (never the Host header, which a caller controls). Like Twilio's own validator, the URL
is accepted both with and without the scheme's default port, because proxies differ in
whether they keep it.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Iterable, List, Mapping, Tuple, Union
from urllib.parse import urlsplit, urlunsplit

Params = Union[Mapping[str, str], Iterable[Tuple[str, str]]]
DEFAULT_PORTS = {"https": 443, "http": 80}


def _pairs(params: Params) -> List[Tuple[str, str]]:
    """Name-value pairs in Twilio's order; a value repeated under one name is signed once."""
    items = params.items() if isinstance(params, Mapping) else params
    return sorted({(str(k), str(v)) for k, v in items})


def compute_signature(auth_token: str, url: str, params: Params) -> str:
    """The X-Twilio-Signature value for ``url`` and form ``params``."""
    payload = url + "".join(name + value for name, value in _pairs(params))
    mac = hmac.new(auth_token.encode("utf-8"), payload.encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


def url_variants(url: str) -> List[str]:
    """``url`` as given, plus the same URL with the default port added or removed."""
    parts = urlsplit(url)
    default = DEFAULT_PORTS.get(parts.scheme)
    variants = [url]
    if default is None or parts.hostname is None:
        return variants
    host = parts.netloc.rpartition("@")[2]  # as written: the signature covers the host's case
    host = host.rsplit(":", 1)[0] if parts.port is not None else host
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    if parts.port is None:
        variants.append(urlunsplit(parts._replace(netloc=f"{prefix}{host}:{default}")))
    elif parts.port == default:
        variants.append(urlunsplit(parts._replace(netloc=f"{prefix}{host}")))
    return variants


def is_valid_signature(auth_token: str, url: str, params: Params, signature: str) -> bool:
    """Constant-time check of ``signature`` against ``url`` (with/without default port)."""
    if not signature or not auth_token:
        return False
    pairs = _pairs(params)
    given = signature.encode("ascii", errors="replace")
    return any(
        hmac.compare_digest(compute_signature(auth_token, candidate, pairs).encode("ascii"), given)
        for candidate in url_variants(url)
    )
