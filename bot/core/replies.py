"""The words the bot uses when it speaks about appointments and escalations.

Kept in one module so the neutral replies stay identical wherever they are used: an unknown
number and a known number without an upcoming appointment must get the same text, so a reply
never reveals whether someone is a patient here.
"""
from __future__ import annotations

from datetime import datetime

from bot.core.office import Office


def when_text(start: datetime, office: Office) -> str:
    """``Tue, Jan 15 at 9:30 AM`` in the office's time zone."""
    local = start.astimezone(office.timezone)
    hour = local.strftime("%I").lstrip("0")
    return f"{local:%a, %b} {local.day} at {hour}:{local:%M %p}"


def no_appointment(office: Office) -> str:
    """The neutral answer when there is no appointment to share (also for unknown numbers)."""
    return (
        "I don't have an upcoming appointment I can share by text for this number. "
        f"To book or check an appointment, please call {office.name} at {office.phone}."
    )


def appointment_notice(start: datetime, office: Office) -> str:
    """The next appointment's time, with how to confirm, reschedule or cancel."""
    return (
        f"Your next appointment at {office.name} is {when_text(start, office)}. "
        f"Reply C to confirm, R to reschedule, or call {office.phone} to cancel."
    )


REMINDER_LIMIT = 160  # one SMS segment: carriers' healthcare-message guidance


def reminder(start: datetime, office: Office) -> str:
    """A reminder with only minimum-necessary content. Never offers "CANCEL" as a reply: carriers
    treat a bare CANCEL as an opt-out, so cancelling is by phone."""
    text = (f"{office.name}: reminder of your appointment {when_text(start, office)}. "
            f"Reply C to confirm, R to reschedule, or call {office.phone} to cancel.")
    if len(text) > REMINDER_LIMIT:
        text = f"Appt reminder: {when_text(start, office)}. Reply C to confirm, R to reschedule. {office.phone}"
    return text[:REMINDER_LIMIT]


def reminder_clarify(office: Office) -> str:
    """An unclear answer to a reminder: asks again for C or R."""
    return f"Sorry, I didn't catch that. Reply C to confirm your appointment or R to reschedule, or call {office.phone}."


def confirmed(start: datetime, office: Office) -> str:
    """The appointment is confirmed."""
    return f"Thank you, you're confirmed for {when_text(start, office)} at {office.name}. See you then!"


def ask_cancel(start: datetime, office: Office) -> str:
    """Asks the patient to confirm the cancellation (Y) or keep the appointment (N)."""
    return f"Do you want to cancel your appointment on {when_text(start, office)}? Reply Y to cancel or N to keep it."


def cancelled(start: datetime, office: Office) -> str:
    """The appointment is cancelled; how to book a new one."""
    return (
        f"Your appointment on {when_text(start, office)} is cancelled. "
        f"To book a new one, reply R or call {office.phone}."
    )


def kept(office: Office) -> str:
    """The patient decided not to cancel."""
    return "OK, your appointment stays as it is. Anything else I can help with?"


def reschedule_requested(office: Office) -> str:
    """A new time was asked for; scheduling staff will get in touch."""
    return (
        "I've asked our scheduling team to find you a new time; they'll contact you. "
        f"Your current appointment stays booked until then. You can also call {office.phone}."
    )


def running_late(office: Office) -> str:
    """The front desk knows the patient is late, with the office's late policy."""
    policy = f" {office.late_policy}" if office.late_policy else ""
    return f"Thanks for letting us know, we've told the front desk.{policy} Questions? Call {office.phone}."


def escalation_notice(office: Office, now: datetime) -> str:
    """What happens next after a hand-off to staff, by office hours."""
    if office.is_open(now):
        return "I've passed your message to our staff. A staff member will reply here shortly."
    return (
        f"I've passed your message to our staff. The office is closed now; a staff member will "
        f"reply {office.after_hours_reply_by}. If this is an emergency, call 911."
    )


def clinical_question(office: Office, now: datetime) -> str:
    """A medical question: the bot gives no advice; a clinician answers (after hand-off)."""
    when = ("A member of our clinical team will reply here shortly." if office.is_open(now) else
            f"The office is closed now; our clinical team will reply {office.after_hours_reply_by}.")
    return (f"I can't give medical advice by text, so I've passed your question to our clinical team. {when} "
            "If it's urgent, call 911.")


def rephrase(office: Office) -> str:
    """A message the bot did not understand: what it can help with."""
    return (
        "Sorry, I didn't understand that. Could you say it another way? I can help with "
        "appointments (confirm, cancel, reschedule), office hours, location, parking, insurance, "
        "billing, refills and the patient portal. If this is an emergency, call 911."
    )


# -- the safety gate's own words (no PHI, no record data) -----------------------------------
HELP_LIMIT = 160


# Spanish texts leave out the accents GSM-7 lacks (á, í, ó, ú), which would make an SMS UCS-2
# (70 characters a segment instead of 160); ñ, ¿ and ¡ are GSM-7 and stay.
def help_text(office: Office, language: str = "en") -> str:
    """The HELP (AYUDA) reply: who we are, how often, rates, how to get help and how to stop
    (<= 160), in ``language``."""
    if language == "es":
        text = (f"{office.name}: mensajes de citas y oficina. Frecuencia variable. Pueden aplicar "
                f"tarifas. Ayuda: {office.phone}. Responda ALTO para salir.")
        if len(text) > HELP_LIMIT:
            text = f"{office.name}: Pueden aplicar tarifas. Ayuda: {office.phone}. Responda ALTO para no recibir mas."
        return text[:HELP_LIMIT]
    text = (f"{office.name}: appointment & office texts. Msg frequency varies. Msg&data rates may apply. "
            f"Help: {office.phone}. Reply STOP to opt out.")
    if len(text) > HELP_LIMIT:  # a long office name: drop the frequency clause before anything else
        text = f"{office.name}: Msg&data rates may apply. Help: {office.phone}. Reply STOP to opt out."
    return text[:HELP_LIMIT]


def opted_out(office: Office, language: str = "en") -> str:
    """The confirmation of an opt-out (STOP, ALTO), in ``language``."""
    if language == "es":
        return (f"{office.name}: Ya no recibira mensajes nuestros. Responda INICIO para volver a "
                "recibirlos. En una emergencia llame al 911.")
    return (f"{office.name}: You're unsubscribed and will get no more texts from us. "
            "Reply START to resubscribe. In an emergency call 911.")


def opted_in(office: Office, language: str = "en") -> str:
    """The confirmation of an opt-in (START, INICIO), in ``language``."""
    if language == "es":
        return (f"{office.name}: Volvera a recibir mensajes de citas y de la oficina. Pueden aplicar "
                "tarifas. Responda AYUDA para ayuda, ALTO para no recibir mas.")
    return (f"{office.name}: You're subscribed again to appointment and office texts. "
            "Msg&data rates may apply. Reply HELP for help, STOP to opt out.")


# -- identity verification (public: none of these says whether a record exists) -----------------
def ask_dob(office: Office) -> str:
    """The first step of identity verification: the date of birth."""
    return ("To protect your privacy I need to check it's you. Please reply with your date of birth "
            "(MM/DD/YYYY).")


def verification_failed(office: Office, channel: str = "sms") -> str:
    """One reply for every failure: wrong date, wrong code, unknown number, locked out."""
    where = "here" if channel == "web" else "by text"
    return (f"Sorry, I couldn't verify that. For your privacy I can't share details {where} right now. "
            f"Please call {office.name} at {office.phone}.")


# Web chat: the browser proves nothing, so the first question is the number on file; every
# reply after it is the same whether or not the number, or the date of birth, is on file.
def ask_number(office: Office) -> str:
    """The first step of verification in web chat: which number on file the chat is about."""
    return ("To protect your privacy I need to check it's you. First, please type the mobile number "
            "we have on file for you.")


def number_unreadable(office: Office) -> str:
    """Something like a number that is not one (or a date typed before the number)."""
    return "Hmm, I couldn't read a phone number there. Please type your mobile number with the area code."


def ask_dob_after_number(office: Office) -> str:
    """After the number: the same words whether or not anyone is on file at it."""
    return "Thanks. Now please type your date of birth (MM/DD/YYYY)."


def code_sent_if_matched(office: Office) -> str:
    """After the date of birth in web chat: the same words whether or not the number and date
    matched, so nobody can try numbers and dates here to learn who is a patient."""
    return "If those details match our records, we've texted a code to the number on file. Type it here."


# -- shared phones: a date of birth typed in a verified conversation (no one is named) -------------
def verified_ask_what(office: Office) -> str:
    """Verified, with no particular question waiting (a secure link that named none)."""
    return "Thanks, you're verified. What would you like to know?"


def secure_chat_opened(office: Office) -> str:
    """The first message of a web chat opened from a secure link, before the identity check."""
    return f"Welcome to {office.name}'s secure chat. Your details show here once we've checked it's you."


def switched(office: Office) -> str:
    """The session now belongs to another patient at the same number."""
    return ("Thanks. The details I give from now on are for the patient with the date of birth you just gave. "
            "What would you like to know?")


def same_patient(office: Office) -> str:
    """The date of birth of the patient already verified."""
    return "Thanks, that's the patient I'm already giving details for. What would you like to know?"


def switch_failed(office: Office) -> str:
    """A switch that failed (a date of birth or a code that did not match): the session stays."""
    return ("Sorry, I couldn't verify that, so the details I give are still for the patient "
            f"you verified before. Questions? Call {office.name} at {office.phone}.")


def invalid_date(reason: str) -> str:
    """A date of birth that could not be read, with the reason."""
    return f"Hmm, {reason}."


def someone_else(office: Office) -> str:
    """Asked about another person: the same answer whether or not they are a patient here."""
    return ("For privacy, I can only discuss appointments with the patient, from their own number. "
            f"They can text us themselves, or call {office.name} at {office.phone}.")


def appointment_specifics(start: datetime, office: Office, service: str, practitioner: str,
                          instructions: str) -> str:
    """PHI: only ever sent to a verified conversation."""
    parts = [f"Your visit on {when_text(start, office)}"]
    if service:
        parts.append(f" is for: {service}")
    if practitioner:
        parts.append(f", with {practitioner}")
    text = "".join(parts) + "."
    if instructions:
        text += f" {instructions}"
    return text


def secure_link(office: Office, url: str) -> str:
    """Instead of PHI by SMS (no written authorization for it): a one-time link to the secure
    web chat, where the patient verifies and reads the answer. Public: the link carries no PHI."""
    return f"For your privacy, read this in our secure chat: {url}"


def phi_by_text_authorization(office: Office) -> str:
    """The standard words of a patient's written authorization to get health information by
    text, with the risk notice: what staff record as agreed (consent scope ``phi_by_text``)."""
    return (
        f"I authorize {office.name} to send my health information, such as the details of my "
        "appointments and my visit instructions, to my mobile number by text message. I understand "
        "that text messages are not encrypted: they may be read by my mobile carrier, by anyone who "
        "uses or sees my phone, or by someone else if my phone is lost or my number changes hands, "
        f"and {office.name} cannot guarantee their privacy. Message and data rates may apply. I can "
        f"withdraw this authorization at any time by telling {office.name} or by replying STOP, which "
        "also stops all texts from the office. Whether or not I authorize this does not affect my care."
    )


def replayed_phi() -> str:
    """What a repeated delivery of a message gets when the first answer held PHI."""
    return "I've already answered that message. If you didn't get my answer, please ask again."


def code_sent(office: Office) -> str:
    """The one-time code is on its way in a separate text."""
    return "Thanks. I've sent you a 6-digit code in a separate text; reply with it to continue."


def one_time_code(office: Office, code: str, channel: str = "sms") -> str:
    """The text that carries the one-time code (saying where it is to be typed)."""
    if channel == "web":
        return (f"{office.name}: your code for our secure web chat is {code}. It expires in 10 minutes. "
                "Don't share it with anyone; we never ask for it by phone.")
    return f"{office.name}: your code is {code}. It expires in 10 minutes. Don't share it with anyone."
