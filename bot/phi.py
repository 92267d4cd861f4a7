"""What a reply may carry, and to whom.

Every reply the bot sends carries one of three classes:

* ``public``  - office information, emergency redirects, opt-out confirmations;
* ``notice``  - minimum-necessary appointment notice (date, time, office name, call-back
  number) to the number on file, the content a basic reminder may carry;
* ``phi``     - anything else from the record; needs a verified identity, always.

Actions choose the class when they speak; the gateway's egress guard checks it again for
every reply, so a mistake in an action cannot send PHI to an unverified conversation.
"""
from __future__ import annotations

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
