"""How the English rules read a message: normalised text with harmless idioms blanked out.

1. :func:`normalise` lower-cases, folds accents and curly quotes, drops apostrophes
   ("can't" -> "cant"), expands texting abbreviations ("rn", "bc", "od") and squeezes
   stretched letters ("helppp" -> "help").
2. Idioms that use alarming words harmlessly ("dying to know", "killing me lol",
   "chest x-ray") are blanked out. Each idiom is narrow, so a real emergency in the same
   message still matches ("this wait is killing me lol and i want to kill myself").

:class:`Normaliser` does both for any language given its tables; the Spanish tables are in
:mod:`bot.safety.rules_es`.
"""
from __future__ import annotations

import re
from typing import Iterable, Mapping, Optional, Tuple

from bot.core.language import fold_accents

_WORD = re.compile(r"[a-z0-9/]+")


class Normaliser:
    """One language's reading of a message: characters mapped by ``translate`` (a
    ``str.maketrans`` table), accents folded, lower case, the ``(pattern, replacement)``
    ``rewrites`` applied in order, words split and ``abbreviations`` expanded; then every match
    of the ``(name, pattern)`` ``idioms`` blanked out."""

    def __init__(self, abbreviations: Mapping[str, str], idioms: Iterable[Tuple[str, str]],
                 rewrites: Iterable[Tuple[str, str]] = (), translate: Optional[Mapping[int, str]] = None):
        self.abbreviations = abbreviations
        self.idioms = tuple((name, re.compile(pattern)) for name, pattern in idioms)
        self.rewrites = tuple((re.compile(pattern), replacement) for pattern, replacement in rewrites)
        self.translate = translate

    def normalise(self, text: str) -> str:
        """The text as the rules see it: lower case, ASCII, abbreviations expanded, one space apart."""
        if self.translate:
            text = text.translate(self.translate)
        text = fold_accents(text).lower()
        for pattern, replacement in self.rewrites:
            text = pattern.sub(replacement, text)
        return " ".join(self.abbreviations.get(w, w) for w in _WORD.findall(text))

    def strip_idioms(self, normalised: str) -> str:
        """``normalised`` with every idiom blanked out (" ~ ", so no rule reads across it)."""
        for _, pattern in self.idioms:
            normalised = pattern.sub(" ~ ", normalised)
        return normalised

    def prepare(self, text: str) -> str:
        """What the rules run on: ``text`` normalised, its idioms blanked."""
        return self.strip_idioms(self.normalise(text))


# -- abbreviations ---------------------------------------------------------------------------

ABBREVIATIONS: Mapping[str, str] = {
    "rn": "right now",
    "wks": "weeks",
    "wk": "week",
    "yr": "year",
    "yrs": "years",
    "alot": "a lot",
    "hasnt": "has not",
    "havent": "have not",
    "hadnt": "had not",
    "arent": "are not",
    "couldnt": "could not",
    "shouldnt": "should not",
    "theyll": "they will",
    "hed": "he would",
    "itll": "it will",
    "its": "it is",
    "sezure": "seizure",
    "seizur": "seizure",
    "siezures": "seizures",
    "sezures": "seizures",
    "atm": "right now",
    "bc": "because",
    "b/c": "because",
    "cuz": "because",
    "pls": "please",
    "plz": "please",
    "u": "you",
    "ur": "your",
    "r": "are",
    "im": "i am",
    "ive": "i have",
    "hes": "he is",
    "shes": "she is",
    "theyre": "they are",
    "wont": "will not",
    "cant": "can not",
    "cannot": "can not",
    "dont": "do not",
    "doesnt": "does not",
    "isnt": "is not",
    "wasnt": "was not",
    "didnt": "did not",
    "gonna": "going to",
    "gunna": "going to",
    "wanna": "want to",
    "wana": "want to",
    "tryna": "trying to",
    "w/": "with",
    "bf": "boyfriend",
    "gf": "girlfriend",
    "bro": "brother",
    "sis": "sister",
    "hubby": "husband",
    "ppl": "people",
    "abt": "about",
    "idk": "i do not know",
    "idc": "i do not care",
    "thru": "through",
    "tho": "though",
    "sm": "so much",
    "rly": "really",
    "srsly": "seriously",
    "bby": "baby",
    "sugars": "sugar",
    "breath": "breathe",  # "cant breath": the noun is the usual typo for the verb here
    "breth": "breathe",
    "brethe": "breathe",
    "breate": "breathe",
    "breathing": "breathing",
    "pian": "pain",
    "pane": "pain",
    "hart": "heart",
    "chst": "chest",
    "chect": "chest",
    "attak": "attack",
    "atack": "attack",
    "seizing": "seizing",
    "siezure": "seizure",
    "seziure": "seizure",
    "seisure": "seizure",
    "bleding": "bleeding",
    "bleedin": "bleeding",
    "unconcious": "unconscious",
    "unconsious": "unconscious",
    "overdosed": "overdose",
    "overdosing": "overdose",
    "suicidle": "suicidal",
    "sucidal": "suicidal",
    "suicidel": "suicidal",
    "sucide": "suicide",
    "suicde": "suicide",
    "myslef": "myself",
    "mysef": "myself",
    "anaphalaxis": "anaphylaxis",
    "anafalaxis": "anaphylaxis",
    "allergic": "allergic",
    "alergic": "allergic",
    "pregant": "pregnant",
    "preggo": "pregnant",
    "prego": "pregnant",
    "preggers": "pregnant",
}


# -- idioms: alarming words used harmlessly --------------------------------------------------

_LAUGH = r"(?:lol|lmao|lmfao|haha\w*|hehe|jk|just kidding|\U0001F602)"

IDIOMS: Tuple[Tuple[str, str], ...] = (
    ("dying to", r"\bdying (?:to|for) (?!death)\w+"),
    ("dying laughing", r"\b(?:dying|died|dead) (?:of )?laugh\w*"),
    ("killing me laughing", r"\b(?:is |are )?(?:killing|kill) me " + _LAUGH),
    ("killing it", r"\bkill(?:ing|ed) it\b"),
    ("kill time", r"\bkill(?:ing)? (?:some )?time\b"),
    ("could kill for", r"\b(?:could|would) kill for\b"),
    ("dead tired", r"\bdead (?:tired|beat|battery|phone|line)\b"),
    ("chest imaging", r"\bchest (?:x ?ray|xray|ct|scan|film|imaging)\b"),
    ("heart service", r"\bheart (?:clinic|center|doctor|dr|specialist|monitor|rate monitor|healthy|month)\b"),
    ("food poisoning", r"\bfood poisoning\b"),
    ("poison control flyer", r"\bpoison (?:control|help) (?:number|magnet|sticker|flyer|info)\b"),
    ("stroke service", r"\bstroke (?:clinic|unit|rehab|support|awareness|prevention|of luck|of genius)\b"),
    ("heat stroke prevention", r"\bheat ?stroke (?:prevention|tips|info)\b"),
    ("breath test", r"\b(?:bad breathe?|breathe? test|breathing (?:treatment|test|exercises?|machine))\b"),
    ("blood service", r"\bblood (?:work|test|draws?|drawn|panel|bank|donation|drive|pressure (?:check|cuff|reading|log|med\w*))\b"),
    ("seizure meds", r"\bseizure (?:med\w*|pills?|prescription|refill|disorder clinic|clinic|action plan)\b"),
    ("allergy service", r"\ballergy (?:shots?|test\w*|clinic|season|meds?|medicine)\b"),
    ("epipen refill", r"\b(?:refill|renew|prescription for|new|replace|expired) (?:my |an |his |her )?epi ?pens?\b"),
    ("pregnancy test", r"\bpregnancy (?:test|appointment|appt|visit|class)\b"),
    ("shot", r"\b(?:flu|covid|booster|allergy|b12|tetanus) shots?\b"),
    ("passed out forms", r"\bpass(?:ed)? out (?:the )?(?:forms?|flyers?|papers?|candy)\b"),
    ("sugar free", r"\bsugar ?free\b"),
    ("kill me if lol", r"\bkill me if [^.!?]{0,60}? " + _LAUGH),
    ("this will kill me", r"\b(?:this|that|the|these|those) (?!man|guy|person)\w+(?: \w+)? (?:is going to|will|going to|is) (?:kill|killing) me\b"),
    ("lead poisoning test", r"\blead (?:poisoning )?(?:test|screening|level)\w*\b"),
    ("hyperbolic threat", r"\b(?:will|going to|is going to) (?:kill|murder) (?:me|him|her|them|my (?!self)\w+)\b[^.!?]{0,60}? " + _LAUGH),
    ("gave me a heart attack", r"\b(?:(?:almost|nearly) )?(?:gave|give|giving) (?:me|him|her) a heart attack\b|\b(?:almost|nearly) had a heart attack\b"),
    ("choked up", r"\bchok(?:ed|ing)? (?:up|on (?:his|her|my|their) words)\b"),
    ("faint at needles", r"\b(?:always|usually|tend to|sometimes|often) (?:pass out|faint|get faint|get lightheaded)\b|\b(?:pass(?:ed)? out|faint(?:ed)?|get faint) (?:at|during|when|with|from|after) (?:\w+ ){0,4}(?:blood|needles?|shots?|labs?|draws?|drawn)\b"),
    ("education about", r"\b(?:pamphlet|brochure|handout|info|information|class|classes|training|education|flyer|poster|video|article|signs)s? (?:on|about|for|of) (?:\w+ ){0,4}"),
    ("once in the past", r"\b(?:fainted|passed out|blacked out|had (?:a )?(?:seizure|stroke|heart attack)|overdosed) (?:\w+ ){0,4}?(?:once|twice|as a (?:kid|child|teen|baby)|in (?:high school|college|middle school|\d{4})|years ago|last (?:year|month|summer|winter|spring|fall|week))\b"),
    ("my past event", r"\b(?:my|his|her|their) (?:overdose|stroke|heart attack|seizure|miscarriage|suicide attempt) (?:in \d{4}|last (?:year|month|week)|years ago|back in)\b"),
    ("detector paperwork", r"\b(?:carbon monoxide|co|smoke) (?:detector|alarm)s? (?:inspection|form|install\w*|battery|batteries|check|certificate|requirement)\b"),
    ("seen already", r"\b(?:went to|was in|was at|visit to|seen (?:in|at)|discharged from|sent home from) (?:the )?(?:er|emergency room|hospital|urgent care) (?:\w+ ){0,3}?for (?:\w+ ){0,3}"),
    ("waiting to happen", r"\b(?:a )?(?:heart attack|stroke) waiting to happen\b"),
    ("late for", r"\b(?:will|is going to|going to|gonna) (?:kill|murder|shoot|strangle) (?:me|us) if (?:i|we) (?:am |are )?(?:late|forget|miss|do not show|skip|lose|do not get|do not make|cancel)\b"),
    ("body on fire", r"\b(?:knee|knees|throat|back|feet|foot|legs?|arms?|muscles?|skin|stomach|hands?|eyes?|joints?|shins?|calves|thighs?|quads|hamstrings?|sunburn) (?:has been |have been |is |are |feels |feel |was )?(?:on fire|burning)\b"),
    ("overdose warning", r"\boverdose (?:warning|risk|label|information|info|prevention|education|training)\b"),
    ("detector chirping", r"\b(?:carbon monoxide|co|smoke) (?:detector|alarm)s? (?:\w+ ){0,2}chirp\w*"),
    ("snoring", r"\bsnor\w* like (?:he|she|i|they) (?:is |are |am )?(?:choking|dying|drowning)\b"),
    ("scared of needles", r"\bscared (?:to death )?of (?:needles|shots|the dentist|doctors|blood|the doctor)\b"),
    ("heart attack someday", r"\b(?:lead to|cause|risk of|chance of|odds of) (?:a )?(?:heart attack|stroke)\b"),
    ("drowning in work", r"\bdrowning in (?:\w+ ){0,2}(?:forms|paperwork|work|bills|debt|homework|emails|laundry|appointments|calls)\b"),
    ("history of", r"\b(?:history of|last year|years ago) (?:a |an )?(?:stroke|seizures?|heart attack|overdose)\b"),
)

ENGLISH = Normaliser(ABBREVIATIONS, IDIOMS, rewrites=(
    (r"\bo\.?d'(?:d|ed)\b", " overdose "),  # OD'd (without the apostrophe it is "odd")
    (r"(\d)([a-z])", r"\1 \2"),  # 37wks -> 37 wks, 10am -> 10 am
    ("'", ""),  # can't -> cant, he's -> hes: the abbreviation table does the rest
    (r"(.)\1{2,}", r"\1"),  # helppp -> help, breathhh -> breath (no English word triples)
    (r"\bo\.d\.?(?=\W|$)|\bod(?:ed|ing)?\b", " overdose "),  # OD, O.D., ODed: "odd" is not
), translate=str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"}))


def normalise(text: str) -> str:
    """The text as the English rules see it: lower case, ASCII, abbreviations expanded."""
    return ENGLISH.normalise(text)


def prepare(text: str) -> str:
    """What the English rules run on: ``text`` normalised, its harmless idioms blanked."""
    return ENGLISH.prepare(text)
