"""What a reply may carry, and to whom.

Every reply the bot sends carries one of three classes:

* ``public``  - office information, emergency redirects, opt-out confirmations;
* ``notice``  - minimum-necessary appointment notice (date, time, office name, call-back
  number) to the number on file, the content a basic reminder may carry;
* ``phi``     - anything else from the record; needs a verified identity, always, and in an
  SMS body also the number's written authorization (consent scope ``phi_by_text``): without
  it the patient gets a one-time link to the secure web chat instead (bot/records/secure_links.py).

Actions choose the class when they speak; the gateway's egress guard checks it again for
every reply, so a mistake in an action cannot send PHI to an unverified conversation.
"""
from __future__ import annotations

import re

PUBLIC = "public"
NOTICE = "notice"
PHI = "phi"
CLASSES = (PUBLIC, NOTICE, PHI)


def egress_allowed(phi_class: str, verified: bool) -> bool:
    """Whether a reply of ``phi_class`` may go to a conversation (unknown classes never may)."""
    if phi_class in (PUBLIC, NOTICE):
        return True
    if phi_class == PHI:
        return verified
    return False


def sms_body_allowed(phi_class: str, phi_by_text: bool) -> bool:
    """Whether a reply of ``phi_class`` may go in an SMS body, on top of :func:`egress_allowed`:
    standard SMS is not a secure channel, so PHI goes by text only to a number whose patient
    authorized it in writing after the risk notice (``phi_by_text``)."""
    return phi_class != PHI or phi_by_text


# Someone asking about another person's care: they get the neutral reply, never a record.
_OTHER = (r"(?:mom|mother|dad|father|husband|wife|partner|son|daughter|kid|child|baby|brother|sister|"
          r"grandma|grandmother|grandpa|grandfather|aunt|uncle|friend|boyfriend|girlfriend|neighbou?r|"
          r"patient|client|mum|spouse|fiance|fiancee)")
_SOMEONE_ELSE = re.compile(
    rf"\b(?:my|our|his|her|their) {_OTHER}(?:'?s)?\b.{{0,40}}\b(?:appointment|appt|visit|results?|record|"
    rf"meds|medication|prescription|doctor|dr|bill|balance|test)\b"
    rf"|\b(?:for|about|on behalf of|calling for|texting for|asking for) (?:my|our) {_OTHER}\b"
    rf"|\b(?:my|our) {_OTHER}'?s\b",
    re.IGNORECASE,
)


def mentions_someone_else(text: str) -> bool:
    """Whether the message asks about another person ("my mom's appointment", "for my husband")."""
    return bool(_SOMEONE_ELSE.search(text.replace("\u2019", "'")))
