"""Cutting a text into SMS-sized parts: pure text segmentation, used for the bot's replies
(channels.sms.webhook) and for staff replies from the console (channels.staff)."""
from __future__ import annotations

import re
from typing import List

MAX_SMS_CHARS = 1600  # the longest concatenated SMS carriers deliver


def split_for_sms(text: str, limit: int = MAX_SMS_CHARS) -> List[str]:
    """``text`` in parts of at most ``limit`` characters, cut after a sentence or a word."""
    parts = []
    rest = text.strip()
    while len(rest) > limit:
        window = rest[:limit]
        cut = max((m.end() for m in re.finditer(r"[.!?]\s", window)), default=0) or window.rfind(" ")
        if cut <= limit // 2:  # no sensible boundary: cut hard rather than send a sliver
            cut = limit
        parts.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    return parts + ([rest] if rest else [])
