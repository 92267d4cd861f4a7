"""Which language a patient wrote in: English or Spanish, offline, for short texting-style messages.

A lexicon vote rather than a statistical detector: general-purpose detectors (langdetect,
fastText's lid model) are unreliable on the two-to-five-word messages patients text ("no puedo
respirar", "cant breathe"), need data the project cannot download at run time, and cost more
than the safety gate's budget. Here each word that is typical of one language (function words,
texting abbreviations, the vocabulary of appointments and emergencies) counts one vote, and
characters only Spanish uses (ñ, ¿, ¡, á, í, ó, ú) count extra. Spanglish goes to the language
with more votes; a tie, or no vote at all, is English, the office's default.

Pure and in-process: the safety gate calls it on every redirect, with no service up.
"""
from __future__ import annotations

import re
import unicodedata

EN, ES = "en", "es"
LANGUAGES = (EN, ES)

# Words common in one language and rare as words of the other. Accents are folded before the
# look-up, so "está" and "esta" are one entry. Deliberately absent: words both languages share
# as written ("no", "me", "a", "son", "come", "hay" is kept: rare in English texts).
SPANISH_WORDS = frozenset("""
    el la los las un una unos unas del al lo le les se su sus mi mis tu tus nos nuestro nuestra
    de en y o pero porque pq xq q k que quien cual cuando donde como cuanto cuantos por para con sin
    sobre entre hasta desde hacia muy mas menos tambien tmb tb ya aun todavia siempre nunca nada
    nadie algo alguien todo toda todos todas esto esta este estos estas eso esa ese aqui alli ahi
    mucho mucha muchos muchas bien mal bueno buena mejor peor otro otra ella ellos usted ustedes
    ahora ahorita hoy manana ayer noche tarde temprano
    es soy eres somos estoy esta estamos estan estaba fue fui era ser estar tengo tiene tienen
    tenemos tenia hay habia puedo puede pueden podemos quiero quiere quieren necesito necesita
    necesitamos voy va vamos van hace hizo hice dice dijo sabe se sabes creo siento tomo tome
    llamo llame llamar llamen ayuda ayudame ayudenme auxilio socorro favor porfa porfavor gracias
    hola buenos buenas dias adios si claro
    cita citas doctora medico medica clinica consultorio horario abren cierran cuanto
    cuesta seguro factura pago receta recetas farmacia vacuna vacunas resultados cancelar cambiar
    confirmar llegar llego tarde
    mama papa hijo hija hijos esposo esposa novio novia abuela abuelo hermano hermana bebe nino
    nina tio tia amigo amiga vecino vecina
    dolor duele pecho cabeza estomago respirar respira sangre sangrando sangra muerto muerta morir
    muero muere matar mato matarme morirme desmayo desmayado desmayada despierta inconsciente
    pastillas pastilla veneno cloro fuego incendio humo choque arma pistola cuchillo golpea golpeo
    pega pego embarazada convulsiones convulsion ataque corazon azucar vida vivir
""".split())

ENGLISH_WORDS = frozenset("""
    the an and or but because cuz bc if of to in on at for with without from by about into over
    is am are was were be been being do does did have has had will would can could should must
    may might i im me my mine you your yours u ur he him his she her they them their we us our it
    its this that these those what who when where why how which there here not dont cant wont
    didnt isnt wasnt doesnt just so very really now right today tonight tomorrow yesterday
    please pls thanks thank hi hello hey bye yes yeah ok okay sorry
    appointment appt dr office hours open close insurance bill billing refill pharmacy
    portal shot vaccine results cancel reschedule confirm late running
    mom dad son daughter kid kids husband wife boyfriend girlfriend baby grandma grandpa brother
    sister friend roommate neighbor
    pain hurts hurt chest head stomach breathe breathing breath blood bleeding dead die dying kill
    myself passed out fainted unconscious pills poison fire smoke crash gun knife pregnant seizure
    heart sugar life help want need feel feels think took taking going get got
""".split())

_SPANISH_MARKS = re.compile("[ñ¿¡áíóú]")
_WORD = re.compile(r"[a-z]+")


def fold_accents(text: str) -> str:
    """``text`` with its accents dropped ("está" -> "esta", "ñ" -> "n"); case is kept."""
    return "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))


def _fold(text: str) -> str:
    return fold_accents(text.lower())


def language_scores(text: str) -> tuple:
    """(English votes, Spanish votes) for ``text``."""
    lowered = text.lower()
    words = _WORD.findall(_fold(lowered))
    spanish = sum(1 for w in words if w in SPANISH_WORDS) + 2 * len(_SPANISH_MARKS.findall(lowered))
    english = sum(1 for w in words if w in ENGLISH_WORDS)
    return english, spanish


def detect_language(text: str) -> str:
    """``"es"`` when ``text`` has more Spanish than English votes, else ``"en"``."""
    english, spanish = language_scores(text)
    return ES if spanish > english else EN
