"""The safety net: the last safety layer, for what no other layer is sure about.

A message that the rules, the classifier and the NLU's emergency intent all let pass, but that
carries danger vocabulary (harm to self or others, dying, not breathing, bleeding, unconscious,
overdose, accident, fire, weapons, abuse; English and Spanish) which no known harmless idiom
explains, is never answered as an ordinary message: it gets the safety check ("If this is an
emergency, call 911 now. Are you safe right now? ... 988") and staff get an urgent alert.

The words are stems matched on the rules' normalised text after the rules' idioms are blanked
("dying to know", "me muero de hambre", "blood test", "radiografia de pecho"), plus a few
contexts that only this layer discounts: routine care named in the same breath as the word
("refill", "results", "follow-up", "class", "bill"), where the word is the topic of an office
question, not a happening. Pure and in-process, like the rules.
"""
from __future__ import annotations

import re
from typing import Optional, Tuple

from bot.core.language import fold_accents
from bot.safety.normalise import prepare
from bot.safety.rules_es import prepare_es

# (group, English words, Spanish words) in priority order; the group names the kind of worry
# for the staff alert. English words are read on the English normalisation, Spanish ones on the
# Spanish normalisation, each after its own language's idioms are blanked.
DANGER_WORDS: Tuple[Tuple[str, str, str], ...] = (
    ("suicide",
     r"suicid\w*(?! (?:prevention|awareness|training|walk|hotline number|risk screening|loss|rates?|warning))|"
     r"(?:kill|hurt|harm|cut|burn|starve) (?:my ?self|myself)|end (?:it|my life|things)|"
     r"(?:want|wanna|wish) (?:to )?(?:die|be dead|disappear)|no reason to live|give up on life|goodbye forever",
     r"suicid\w*|(?:quiero|quiere) (?:morir|morirme|desaparecer)|matarme|quitarme la vida|hacerme dano|lastimarme|"
     r"no quiero (?:vivir|seguir)|ya no aguanto"),
    ("poisoning",
     r"overdose|overdosed|poisoned|poisoning|swallowed|ingested|bleach|fumes|too many pills|"
     r"too much (?:medicine|insulin|tylenol)",
     r"sobredosis|envenen\w*|intoxic\w*|se (?:tomo|trago|comio|bebio)|cloro|pastillas de mas"),
    ("violence",
     r"(?:hit|hitting|beat|beating|hurt|hurting|attack\w*|threaten\w*|abus\w*|chok\w*|stab\w*|shoot\w*|rap\w*) "
     r"(?:me|us|my \w+|the kids|her|him)|gun|guns|knife|knives|weapon|stabbed|abused|abusive|"
     r"assault\w*|afraid (?:of|for) (?:him|her|my life)|not safe",
     r"pistola|cuchillo|navaja|arma|golpe\w*|me pega\w*|abusando|violencia|amenaz\w*|miedo de (?:el|ella|mi)"),
    ("hazard",
     r"fire|full of smoke|smoke (?:everywhere|in the \w+|coming \w+)|gas leak|smell gas|wreck|drown\w*|electrocut\w*|"
     r"trapped",
     r"fuego|incendio|humo|olor a gas|chocamos|ahog\w*|atrapad\w*"),
    ("medical",
     r"dying|i am going to die|(?:he|she|they) (?:is|are) dead|not breathing|can not breathe|breathless|gasping|"
     r"choking|unconscious|unresponsive|passed out|fainted|collapsed|seizing|convuls\w*|heart attack|"
     r"chest pain|chest pressure|bleeding|hemorrhag\w*|ambulance",
     r"muriendo|me voy a morir|no respira\w*|no puedo respirar|inconsciente|desmay\w*|"
     r"convulsion\w*|infarto|sangrando|hemorragia|ambulancia|dolor de pecho"),
)
_EN = tuple((group, re.compile(r"\b(?:" + en + r")\b")) for group, en, _ in DANGER_WORDS)
_ES = tuple((group, re.compile(r"\b(?:" + es + r")\b")) for group, _, es in DANGER_WORDS)

# Figures of speech the rules' idioms do not cover because no rule reads these words alone.
FIGURES = re.compile(
    r"\b(?:dying|die|died) (?:of|from) (?:embarrassment|boredom|shame|curiosity|the heat|cold|hunger|thirst|shock)\b|"
    r"\bto die for\b|\bto death\b|\bbleeding (?:heart|money|me dry)\b|\bdead (?:tired|on my feet|battery)\b|"
    r"\b(?:fire|smoke) (?:drill|alarm test|pit|place|works|station|department|fighters?|extinguishers?)\b|"
    r"\bshoot me (?:a|an|the) \w+\b|\bchoking hazard\b|\bon fire (?:today|lately)\b|\bnot suicidal\b|"
    r"\b(?:died|lost \w+(?: \w+)? to|death) (?:by |to )?suicide\b|\b(?:phone|battery|plant|car) is dying\b|"
    r"\b(?:video )?game\b.{0,20}\bdying\b|\bdying (?:my|her|his) hair\b|\bwaiting to happen\b|"
    r"\bnot (?:bleeding|dying|urgent|suicidal)\b|\bbleeding (?:has )?stopped\b|\b(?:bb|nerf|toy|water|glue|squirt) guns?\b|"
    r"\bgun (?:range|safety|locks?|show|safe)\b|\bin a (?:gun )?safe\b|\b(?:bleeding|bleed|blood) (?:a little|a bit|slightly|risk)\b|"
    r"\b(?:little|small|tiny) (?:bit of )?(?:blood|bleeding)\b|\btoothpaste\b|\bdreams? about\b|\bhospice\b|"
    r"\b(?:news|story|article|heard about|saw on)\b.{0,40}\b(?:dying|died|shot|overdose\w*)\b|"
    r"\bis (?:it |mixing )?(?:\w+ )?(?:and \w+ )?(?:toxic|poisonous|safe)\b|\b(?:kitchen|butter|pocket) knife\b|\b(?:overdose|suicide) "
    r"(?:prevention|awareness|education)\b|\bsecondhand smoke\b|\bwildfire smoke\b"
)

# Routine care named beside the word: the word is what the question is about, not what is happening.
ROUTINE_CONTEXT = re.compile(
    r"\b(?:refill\w*|prescription\w*|pharmacy|results?|follow ?up|followup|class(?:es)?|training|course|"
    r"seminar|webinar|bill|billing|invoice|insurance|claim|form|forms|paperwork|pamphlet|brochure|handout|"
    r"x ?ray|scan|screening|referral|records?|history|last (?:year|month|week|time)|years ago|ago|yesterday|"
    r"fine now|all good|just wondering|just curious|novel|paper|presentation|resources|support group|"
    r"receta\w*|farmacia|resultados?|seguimiento|clase|curso|factura|seguro|formulario|papeles|radiografia|"
    r"historial|expediente|el ano pasado|hace (?:\w+ )?(?:anos|meses|semanas))\b"
)


# Words that say an alarming word is not about something happening now: a past and resolved
# event, a joke, a question for a school project, a form. When one is present, a rule's hit is
# not enough on its own: the classifier, trained on thousands of such near-misses, decides (and
# the safety net's own routine-context check applies). Measured on the first blind sets, where
# rules alone raised 60 false alarms on 393 near-misses, most of them of these kinds
# (docs/safety-blind-round1.md).
NOT_NOW = re.compile(
    r"\b(?:\d+ (?:years?|yrs?|months?|weeks?|wks?) ago|(?:years|months|weeks|a while|long time) ago|"
    r"last (?:year|month|week|summer|winter|spring|fall|time)|back in (?:\d{4}|high school|college|the day|\w+ \d{4})|"
    r"when i was (?:\d+|a kid|a teen|younger|little|in (?:high school|college))|as a (?:kid|teen|teenager|child)|"
    r"in (?:19|20)\d\d|used to|history of|(?:i am|im|he is|hes|she is|shes|we are|were|everyone is|everyones|"
    r"all|they are|theyre) (?:fine|ok|okay|good|better|doing (?:well|great|good|fine|ok)|all good)(?: now)?|"
    r"went away|fine now|all good|doing (?:really )?(?:well|great) now|stable for|clean (?:for )?\d+|anymore|"
    r"no trouble breathing|not suicidal|"
    r"lol|lmao|lmfao|haha\w*|jk|just kidding|"
    r"whats the difference|difference between|school project|science project|report on|paper on|podcast|"
    r"documentary|movie|tv show|novel|what (?:should|do) (?:we|i) do if|just in case|be prepared|warning signs|"
    r"prevention|awareness|pamphlets?|brochures?|screening|intake form|the form|records)\b"
    r"|\b(?:hace (?:\w+ )?(?:anos|meses|semanas|dias)|el ano pasado|la semana pasada|el mes pasado|"
    r"ya estoy bien|ya esta bien|estamos bien|todo bien|jaja\w*|jeje\w*)\b|\U0001F602"
)


def not_now(text: str) -> bool:
    """Whether ``text`` says its alarming words are past, a joke, hypothetical or paperwork."""
    return bool(NOT_NOW.search(_fold(text)))


def _fold(text: str) -> str:
    return fold_accents(text.replace("\u2019", "'")).lower().replace("'", "")



# Words of the vocabulary of crises, in the broadest sense (far broader than the net's danger
# words): a message with none of them is rarely an emergency. The classifier must be surer of
# a message without any (bot.safety.screen.CLASSIFIER_ALONE): on development data its false
# alarms on ordinary messages ("tell me everything", "is my blue shield plan something u guys
# take") all lacked them, while two thirds of the corpus's emergencies have one.
RISK_VOCABULARY = re.compile(
    r"\b(?:di(?:e|ed|es|ing)|dead|death|kill\w*|suicid\w*|hurt\w*|harm\w*|cut\w*|blood\w*|bleed\w*|pills?|"
    r"overdos\w*|poison\w*|swallow\w*|dr[ai]nk\w*|gun|knife|weapon|shot|stab\w*|hit\w*|beat\w*|abus\w*|"
    r"threat\w*|fire|smoke|gas|crash\w*|accident|drown\w*|breath\w*|chok\w*|unconscious|faint\w*|collaps\w*|"
    r"passed out|seizure\w*|stroke|chest|heart|pain|hospital|er|911|ambulance|emergency|pregnan\w*|bab(?:y|ies)|"
    r"sugar|insulin|allerg\w*|swell\w*|help|scared|afraid|safe|unsafe|goodbye|sleep|wake|end|gone|alive|"
    r"live|living|exist\w*|burden|hopeless|worthless|tired of|pointless|rope|bridge|jump|razor|sorry|letter|"
    r"note|gave away)\b"
    r"|\b(?:mor\w*|muert\w*|mat\w*|suicid\w*|sangr\w*|pastilla\w*|sobredosis|veneno|pistola|cuchillo|navaja|"
    r"arma|golpe\w*|fuego|incendio|humo|gas|choque|ahog\w*|respir\w*|desmay\w*|convuls\w*|pecho|corazon|"
    r"dolor|emergencia|ambulancia|embarazada|bebe|azucar|ayuda|miedo|vivir|vida|despertar|adios|perdon|carta|"
    r"lastim\w*|dano|cort\w*)\b"
)


def has_risk_words(text: str) -> bool:
    """Whether ``text`` has any word of :data:`RISK_VOCABULARY`, in either language."""
    return bool(RISK_VOCABULARY.search(prepare(text)) or RISK_VOCABULARY.search(prepare_es(text)))


def danger_concern(text: str) -> Optional[str]:
    """The kind of danger ``text``'s words point to (``suicide``, ``poisoning``, ``violence``,
    ``hazard``, ``medical``), or None when it has no danger word that idioms and routine
    context leave standing (nor when the message says they are past, a joke or hypothetical)."""
    if not_now(text):
        return None
    for prepared, words in ((FIGURES.sub(" ~ ", prepare(text)), _EN), (prepare_es(text), _ES)):
        if ROUTINE_CONTEXT.search(prepared):
            continue
        for group, pattern in words:
            if pattern.search(prepared):
                return group
    return None
