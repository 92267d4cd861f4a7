"""The replies that send a patient in danger to the right help line, in English or Spanish.

Short (at most two SMS segments) and the help line always in the first sentence. The numbers
come from the office's configuration (:class:`bot.core.emergency_numbers.EmergencyNumbers`).
"""
from __future__ import annotations

from typing import Iterable

from bot.core.emergency_numbers import US, EmergencyNumbers
from bot.safety.detect import Emergency
from bot.safety.rules import CRISIS, POISON, SUICIDE, VIOLENCE

MAX_REDIRECT_CHARS = 320  # two SMS segments


# Spanish replies leave out the accents GSM-7 lacks (á, í, ó, ú): with one of them an SMS is
# sent in UCS-2, 70 characters a segment instead of 160, and a redirect would take five.
def redirect_reply(emergency: Emergency, office_phone: str, numbers: EmergencyNumbers = US,
                   language: str = "en") -> str:
    """The redirect a patient gets for ``emergency``, in ``language`` ("en" or "es"): short,
    the help line in the first sentence, <= 320 chars."""
    n = numbers
    spanish = language == "es"
    staff = (f"Nuestro personal le dara seguimiento; la oficina: {office_phone}." if spanish
             else f"Our staff will follow up; the office is at {office_phone}.")
    if emergency.redirect == SUICIDE:
        text = (
            f"Llame o envie un texto al {n.crisis} ahora ({n.crisis_spanish}); usted importa y hay ayuda. "
            f"Si corre peligro inmediato o tomo algo, llame al {n.emergency}. {staff}"
            if spanish else
            f"Call or text {n.crisis} now ({n.crisis_name}); you matter and help is available any time. "
            f"If you are in immediate danger or have taken something, call {n.emergency} now. {staff}"
        )
    elif emergency.redirect == POISON:
        text = (
            f"Llame ahora a {n.poison_name} al {n.poison} (hay interpretes). Si la persona no despierta, no "
            f"respira o tiene convulsiones, llame al {n.emergency} de inmediato. {staff}"
            if spanish else
            f"Call {n.poison_name} now at {n.poison}. If the person is unconscious, not breathing, "
            f"having a seizure or hard to wake, call {n.emergency} right away. {staff}"
        )
    elif emergency.redirect == VIOLENCE:
        text = (
            f"Llame al {n.emergency} ahora si usted u otra persona corre peligro. Si no puede hablar, "
            f"puede enviar un texto al {n.emergency} donde este disponible. {staff}"
            if spanish else
            f"Call {n.emergency} now if you or someone else is in danger. If you can't talk, you can "
            f"text {n.emergency} where available. {staff}"
        )
    elif emergency.redirect == CRISIS:
        text = crisis_reply(n, language) + " " + staff
    else:
        text = (
            f"Llame al {n.emergency} ahora o vaya a la sala de emergencias mas cercana: puede ser una "
            f"emergencia medica. No espere una respuesta por texto. {staff}"
            if spanish else
            f"Call {n.emergency} now or go to the nearest emergency room: this may be a medical "
            f"emergency. Don't wait for a text reply. {staff}"
        )
    if len(text) > MAX_REDIRECT_CHARS:  # a long office phone string must never cut the help line
        text = text[:MAX_REDIRECT_CHARS]
    return text


def crisis_reply(numbers: EmergencyNumbers = US, language: str = "en") -> str:
    """The redirect when a layer knows a message is an emergency but not which kind (the NLU's
    emergency intent): 911 first, then every help line, so a crisis of any kind is covered."""
    n = numbers
    if language == "es":
        return (f"Si es una emergencia, llame al {n.emergency} ahora. Si piensa en hacerse daño, llame o "
                f"envie un texto al {n.crisis} ({n.crisis_spanish}). Envenenamiento: {n.poison}.")
    return (f"If this is an emergency, call {n.emergency} now. If you are thinking about hurting yourself, "
            f"call or text {n.crisis}. Poisoning: {n.poison_name} {n.poison}.")


def safety_check_reply(office_phone: str, numbers: EmergencyNumbers = US, language: str = "en") -> str:
    """The safety net's answer to a message with danger words no layer could classify: never an
    ordinary answer. 911 first; 988 for a crisis; a question; staff have been alerted."""
    n = numbers
    if language == "es":
        return (f"Si es una emergencia, llame al {n.emergency} ahora. ¿Esta usted a salvo? Si piensa en "
                f"hacerse daño, llame o envie un texto al {n.crisis} ({n.crisis_spanish}). Avisamos a "
                f"nuestro personal; la oficina: {office_phone}.")[:MAX_REDIRECT_CHARS]
    return (f"If this is an emergency, call {n.emergency} now. Are you safe right now? If you are thinking "
            f"about hurting yourself, call or text {n.crisis}. We have alerted our staff; the office is at "
            f"{office_phone}.")[:MAX_REDIRECT_CHARS]


def describe(emergencies: Iterable[Emergency]) -> str:
    """``cardiac/chest pain, breathing/cant breathe``: for logs and audit (no message text)."""
    return ", ".join(f"{e.category}/{e.rule}" for e in emergencies)
