"""Opt-out, opt-in and HELP keywords: deterministic, run before the NLU (step 6 of bot/conversation/pipeline.py).

Single-word keywords follow the CTIA Messaging Principles and the carriers' handling (STOP,
STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT; START, UNSTOP; HELP, INFO) plus the words the FCC's
2024 revocation rule names (REVOKE, OPTOUT). The same rule says consent can be revoked "by any
reasonable means", so plain-language requests ("stop texting me", "take me off your list")
count too. Anything about an appointment ("cancel my appointment") is not a revocation.

Spanish: ALTO, PARAR, BAJA, CANCELAR (bare), NO MAS and plain-language revocations ("no me
manden mas mensajes", "quiero darme de baja"); AYUDA is HELP. :func:`keyword_language` says
which language a keyword was in, so the answer is given in it.

Only whole messages are keywords: "stop" inside "the bleeding won't stop" is not an opt-out.
"""
from __future__ import annotations

import re
from typing import Optional

from bot.core.language import fold_accents

OPT_OUT, OPT_IN, HELP = "opt_out", "opt_in", "help"
SIGN_OUT = "sign_out"  # web chat only: end the verified session

OPT_OUT_WORDS_EN = frozenset(
    {"stop", "stopall", "stop all", "unsubscribe", "cancel", "end", "quit", "revoke", "optout", "opt out",
     "remove", "remove me", "unsub", "stop please", "please stop", "stop it", "stop now"}
)
OPT_IN_WORDS_EN = frozenset({"start", "unstop", "subscribe", "resume", "opt in", "optin"})
# Words that restore texts only when the number has opted out (otherwise "yes" answers the bot).
OPT_IN_IF_OPTED_OUT_EN = OPT_IN_WORDS_EN | {"yes", "y", "start texts", "start again", "resubscribe"}
HELP_WORDS_EN = frozenset({"help", "info", "information"})

SPANISH_OPT_OUT_WORDS = frozenset(
    {"alto", "parar", "para", "baja", "cancelar", "no mas", "basta", "detener", "darme de baja", "dar de baja",
     "de baja", "baja por favor", "alto por favor", "parar por favor"}
)
SPANISH_OPT_IN_WORDS = frozenset({"inicio", "iniciar", "alta", "darme de alta", "reanudar", "suscribir", "suscribirme"})
SPANISH_OPT_IN_IF_OPTED_OUT = SPANISH_OPT_IN_WORDS | {"si", "si quiero"}
SPANISH_HELP_WORDS = frozenset({"ayuda", "informacion", "ayuda por favor"})

OPT_OUT_WORDS = OPT_OUT_WORDS_EN | SPANISH_OPT_OUT_WORDS
OPT_IN_WORDS = OPT_IN_WORDS_EN | SPANISH_OPT_IN_WORDS
OPT_IN_IF_OPTED_OUT = OPT_IN_IF_OPTED_OUT_EN | SPANISH_OPT_IN_IF_OPTED_OUT
HELP_WORDS = HELP_WORDS_EN | SPANISH_HELP_WORDS

_TEXTS = r"(?:texts?|texting|messages?|messaging|msgs?|sms|reminders?|notifications?|alerts?)"
# Plain-language revocations. Each pattern must name the texts (or "me"), never an appointment.
REVOCATIONS = tuple(
    re.compile(pattern)
    for pattern in (
        rf"^(?:please |pls |plz )?(?:stop|quit|cease) (?:all |these |your |the |sending (?:me )?)*(?:texting|{_TEXTS})(?: me| to me| please)*$",
        r"^(?:please |pls |plz )?(?:stop|quit) (?:texting|messaging|contacting|sending) (?:me|this number)\b.*$",
        r"^(?:please |pls |plz )?(?:do not|dont|don't|never) (?:text|message|contact|sms) (?:me|this number)(?: again| any ?more| anymore)?\b.*$",
        r"^(?:please |pls |plz )?(?:remove|take|delete) (?:me|this number|my number) (?:off|from) (?:your |the |this |all )*(?:list|lists|texts?|texting|messages|mailing list|contact list)\b.*$",
        r"^(?:please |pls |plz )?(?:unsubscribe(?: me)?|opt (?:me )?out)\b.*$",
        rf"^(?:i )?(?:do not|dont|don't) want (?:any )?(?:more )?(?:these |your )?{_TEXTS}(?: any ?more| from you)?$",
        rf"^no more {_TEXTS}(?: please| pls)?$",
        r"^(?:i )?(?:revoke|withdraw) (?:my )?consent\b.*$",
        r"^leave me alone$",
        r"^wrong number(?: stop)?$",
    )
)
_MENSAJES = r"(?:mensajes?|mensajitos?|textos?|msjs?|msgs?|sms|recordatorios?|notificaciones?|avisos?)"
SPANISH_REVOCATIONS = tuple(
    re.compile(pattern)
    for pattern in (
        rf"^(?:por favor |porfa |x favor )?(?:ya )?no (?:me )?(?:manden|mande|envien|envie|escriban|escriba|mandes|envies|escribas) (?:mas |ningun |ningunos? )?(?:{_MENSAJES}|nada)?\b.*$",
        rf"^(?:por favor |porfa |x favor )?(?:ya )?(?:no quiero|no deseo) (?:recibir )?(?:mas |sus |estos |ningun )*{_MENSAJES}\b.*$",
        rf"^(?:por favor |porfa |x favor )?(?:dejen|deje|deja|paren|pare|para) de (?:mandarme|enviarme|escribirme|mandar|enviar|escribir)\b.*$",
        r"^(?:por favor |porfa |x favor )?(?:quiero )?(?:darme|dar|denme|deme) de baja\b.*$",
        r"^(?:por favor |porfa |x favor )?(?:quitenme|quiteme|sacame|saquenme|borren|borrar|eliminen|eliminar|quiten) (?:mi numero |este numero )?(?:de (?:la |su |sus |esta )?(?:lista|listas|mensajes))?\b.*(?:lista|numero|mensajes)$",
        rf"^no (?:mas|quiero mas) {_MENSAJES}(?: por favor| porfa)?$",
        r"^(?:revoco|retiro) (?:mi )?(?:consentimiento|permiso)\b.*$",
        r"^numero equivocado$",
    )
)
_APPOINTMENT = re.compile(r"\b(?:appointment|appt|visit|booking|reservation|surgery|procedure|exam|refill|"
                          r"citas?|consulta|visita|cirugia|procedimiento|examen|receta)\b")


def _plain(text: str) -> str:
    """Lower case, accents folded, punctuation dropped, single spaces."""
    text = fold_accents(text).lower().replace("\u2019", "'")
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    return " ".join(text.split())


def classify_keyword(text: str) -> Optional[str]:
    """``opt_out``, ``opt_in``, ``help`` or None (a message for the bot).

    "yes" is None here: it only restores texts for a number that has opted out, which the
    caller knows (see :func:`is_opt_in_word`).
    """
    plain = _plain(text)
    if not plain:
        return None
    if plain in OPT_OUT_WORDS:
        return OPT_OUT
    if plain in OPT_IN_WORDS:
        return OPT_IN
    if plain in HELP_WORDS:
        return HELP
    if not _APPOINTMENT.search(plain) and any(p.match(plain) for p in REVOCATIONS + SPANISH_REVOCATIONS):
        return OPT_OUT
    return None


def keyword_language(text: str) -> str:
    """``"es"`` when ``text`` is one of the Spanish keywords or revocations, else ``"en"``."""
    plain = _plain(text)
    spanish = SPANISH_OPT_OUT_WORDS | SPANISH_OPT_IN_IF_OPTED_OUT | SPANISH_HELP_WORDS
    if plain in spanish or any(p.match(plain) for p in SPANISH_REVOCATIONS):
        return "es"
    return "en"


def is_opt_in_word(text: str) -> bool:
    """Whether ``text`` asks to resume texts, counting "yes" (meant only after an opt-out)."""
    return _plain(text) in OPT_IN_IF_OPTED_OUT


# Web chat: no carrier sits in between and no consent changes there; these words get the
# chat's own answers (bot/conversation/web_commands.py).
SIGN_OUT_WORDS = frozenset({"sign out", "signout", "sign me out", "log out", "logout", "log me out", "sign off",
                            "log off", "cerrar sesion", "cerrar la sesion", "salir de la sesion"})
# Carrier words that mean something else in a chat: there "cancel" is about an appointment.
_SMS_ONLY_WORDS = frozenset({"cancel", "cancelar"})


def web_keyword(text: str) -> Optional[str]:
    """``sign_out``, or what :func:`classify_keyword` says (a bare "cancel" excepted), or None."""
    plain = _plain(text)
    if plain in SIGN_OUT_WORDS:
        return SIGN_OUT
    if plain in _SMS_ONLY_WORDS:
        return None
    return classify_keyword(text)
