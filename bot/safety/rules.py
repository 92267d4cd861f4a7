"""The English emergency rules: categories, rules in priority order, and the backstop's words.

Pure data, read by :mod:`bot.safety.detect` on the text :mod:`bot.safety.normalise` prepares; the
Spanish rules are in :mod:`bot.safety.rules_es`. The rules favour recall: a patient told to call
911 who did not need to is a smaller harm than one who needed to and was not. The labelled
evaluation (``tests/safety/``, run with ``python -m bot.nlu.safety_eval``) holds the detector to
100% recall and at most 3% false alarms.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

# Redirects: which help line a category's reply points to.
MEDICAL, SUICIDE, POISON, VIOLENCE = "medical", "suicide", "poison", "violence"
CRISIS = "crisis"  # a crisis of unknown kind (the NLU's emergency intent): every help line

@dataclass(frozen=True)
class Category:
    name: str
    redirect: str
    label: str  # what staff see in the alert


CATEGORIES: Dict[str, Category] = {
    c.name: c
    for c in (
        Category("suicide", SUICIDE, "suicidal thoughts or self-harm"),
        Category("poisoning", POISON, "poisoning or overdose"),
        Category("violence", VIOLENCE, "violence, threat or abuse"),
        Category("pregnancy", MEDICAL, "pregnancy emergency"),
        Category("blood_sugar", MEDICAL, "dangerous blood sugar"),
        Category("anaphylaxis", MEDICAL, "severe allergic reaction"),
        Category("seizure", MEDICAL, "seizure"),
        Category("stroke", MEDICAL, "stroke symptoms"),
        Category("cardiac", MEDICAL, "heart attack symptoms"),
        Category("breathing", MEDICAL, "breathing trouble"),
        Category("unconscious", MEDICAL, "unconscious or unresponsive"),
        Category("bleeding", MEDICAL, "severe bleeding"),
        Category("general", MEDICAL, "other medical emergency"),
        Category("hazard", VIOLENCE, "fire, gas, crash or other danger"),
        Category("crisis", CRISIS, "crisis of unknown kind"),
    )
}

# The coarse groups the statistical classifier (bot.safety.model) and the evaluation sets use;
# every category of the rules belongs to one.
GROUPS = ("suicide", "poisoning", "violence", "hazard", "medical")


def group_of(category: str) -> str:
    """``suicide``, ``poisoning``, ``violence``, ``hazard`` or ``medical`` for a category."""
    return category if category in GROUPS else "medical"

# Shared fragments.
_ABUSER = (
    r"(?:he|she|they|someone|somebody|a man|a guy|a woman|(?:my )?(?:husband|wife|partner|boyfriend|girlfriend|ex|"
    r"ex husband|ex wife|dad|father|stepdad|stepfather|mom|mother|son|daughter|brother|sister|uncle|roommate|"
    r"neighbou?r|caregiver|boss|husbands|boyfriends)|her (?:boyfriend|husband|dad)|his (?:girlfriend|wife|dad))"
)
_VICTIM = r"(?:me|us|my \w+|the kids|the baby|him|her|them|you|someone|somebody|people|everyone|everybody)"
_CHEMICAL = (
    r"(?:bleach|clorox|drano|lamp oil|tiki torch fluid|motor oil|ammonia|antifreeze|anti freeze|windshield (?:washer )?fluid|lighter fluid|gasoline|"
    r"kerosene|paint thinner|nail polish remover|rubbing alcohol|hand sanitizer|mouthwash|detergent|lye|"
    r"(?:laundry|dishwasher|tide|detergent) pods?|(?:\w+ )?cleaner|cleaning \w+|chemicals?|pesticide|weed killer|"
    r"roundup|rat poison|poison|(?:button |lithium |watch |coin )?batter(?:y|ies)|magnets?|"
    r"(?:wild|yard|poison|strange|unknown) (?:mushrooms?|berries|plants?)|mushrooms? from the \w+)"
)
_MEDICINE = (
    r"(?:pills|tablets|gummies|vitamins|iron pills|tylenol|acetaminophen|ibuprofen|advil|aspirin|oxy\w*|"
    r"percocet|fentanyl|heroin|xanax|benadryl|melatonin|edibles?|meth|cocaine|insulin|opioids?|"
    r"(?:my|his|her|their|moms|dads|grandmas|grandpas|grandmothers|grandfathers) (?:\w+ )?(?:meds|medicine|medication|pills))"
)
_FILL = r"(?:on |some of |one of |a few of |a couple of |some |a |an |the |a bit of |a cup of |a sip of |sips of |half a bottle of |a bottle of |a capful of |a mouthful of |a little |like |my |his |her |our |their )*"
_LOTS = (
    r"(?:(?:a |an )?(?:whole |entire |full )?(?:weeks?|days?|months?|bottles?) worth of|(?:way |far )?too (?:many|much)(?: of)?|a (?:whole|full) (?:bottle|pack|box|handful|sheet|strip) of|all (?:of )?(?:my|his|her|the|their)|too many|"
    r"too much|a bunch of|a handful of|handfuls of|(?:\d{2,}|twenty|thirty|forty|fifty) (?:of )?(?:my |his |her |the )?)"
)
_WOUND_BODY = r"(?:finger|hand|toe|foot|arm|leg)"

RULES: Tuple[Tuple[str, str, str], ...] = (
    # --- suicide and self-harm (988 + 911) ---
    ("suicide", "kill self", r"\b(?:kill|killing|hang|hanging|shoot|shooting|drown|drowning|off|offing|unalive|unaliving) (?:my ?self|myself|him ?self|her ?self|them ?selves|themself)\b"),
    ("suicide", "kms", r"(?<!\d )\b(?:kms|kmsl|unalive|unalived|unaliving|kys)\b"),
    ("suicide", "suicide word", r"\b(?:suicid\w*|self harm\w*|selfharm\w*)\b(?! (?:prevention|awareness|training|walk|risk assessment))"),
    ("suicide", "end life", r"\b(?:end|ending|take|taking|finish) (?:my|his|her|their) (?:own )?li(?:fe|ves)\b|\bend(?:ing)? it all\b|\bend it (?:tonight|today|now)\b"),
    ("suicide", "want to die", r"\b(?:want|wants|wanted|wish|wishing|ready|deserve|deserves|trying|tried|plan|planning) (?:to )?(?:just )?(?:die|be dead|not exist|disappear forever|not wake up|never wake up|sleep forever)\b(?! (?:laughing|of))|\bwish (?:i|he|she) (?:was|were) (?:dead|never born|gone)\b"),
    ("suicide", "not be here", r"\b(?:do|does) not want to (?:be here (?:any ?more|no more)|be alive|live(?: any ?more| like this)?\b|exist|go on|keep living|wake up (?:any ?more|ever again|tomorrow))|\bno (?:reason|point) (?:to|in) (?:live|living|go on|going on|being alive|being here|wake up|waking up)\b|\bdo not want to be here\b(?! (?:for|at|that|until|till|all|when|long|by))"),
    ("suicide", "plan", r"\b(?:have|got|made|making) a plan to (?:hurt|harm|kill|end|off) (?:my ?self|myself|things|it all|everything|my life)\b|\b(?:plan|planning|going|want|ready) to end (?:things|everything|it)\b(?! (?:with (?:him|her|my)|between))|\bend (?:things|everything) (?:tonight|today|now|for good)\b"),
    ("suicide", "farewell", r"\b(?:gave|giving) (?:away )?(?:my (?:dog|cat|pets?|things|stuff|belongings)|all my (?:things|stuff))\b.{0,120}\b(?:goodbye|bye|farewell|thanks for everything|sorry for everything)\b|\b(?:everything is|everythings|affairs are|got my affairs) in order\b.{0,80}\b(?:goodbye|bye|farewell|thanks for everything)\b|\bthis is (?:my )?(?:goodbye|last (?:text|message))\b"),
    ("suicide", "better off", r"\bbetter off (?:dead|without me|if i (?:was|were) gone|if i (?:was|were) dead|if i died|if i (?:was|were) not here)\b"),
    ("suicide", "cant go on", r"\b(?:can not) (?:go on|do this any ?more|keep living|keep going|take it any ?more|live like this)\b(?!.* (?:pain|appointment|appt|wait|insurance|billing|bill|phone|hold))"),
    ("suicide", "self harm", r"\b(?:want to|going to|about to|thinking (?:about|of)|urge to|urges to|started|keep|been|can not stop|stop myself from) (?:\w+ )?(?:cut|cutting|hurt|hurting|harm|harming|burn|burning|starve|starving)(?: my ?self| myself)\b|\b(?:thinking about|urge to|urges to|want to|going to|can not stop) (?:cutting|self harm\w*)\b|\b(?:razor|blade)s? (?:is |are )?(?:out|ready|in my hand)\b|\b(?:cutting|harming|burning) (?:my ?self|myself)\b|\bcut (?:my ?self|myself) (?:again|on purpose|deep)\b|\b(?:cut|slit|slitting|slashed) (?:my|his|her) wrists?\b"),
    ("suicide", "intent overdose", r"\b(?:take|taking|took|swallow|swallowing|swallowed) (?:all|every one|every single one) (?:of )?(?:my|the|these) (?:pills|meds|medication|tablets) (?:to|so i|and die|and never|and end|and be done|tonight)\b|\boverdose on purpose\b|\b(?:on purpose|to die|to end it)\b.{0,40}\boverdose\b|\boverdose\b.{0,40}\b(?:on purpose|to die|to end it|so i (?:can|will) die)\b"),
    ("suicide", "goodbye", r"\b(?:wrote|writing|left) (?:a |my )?(?:suicide |goodbye )?note\b.*\b(?:goodbye|bye|gone|end)\b|\bthis is (?:my )?(?:final )?goodbye\b|\bsaying goodbye to everyone\b"),
    ("suicide", "means ready", r"\b(?:gun|pills|rope|knife|blade|noose)\b.{0,30}\b(?:to my head|ready|in my hand|tied|on the bridge)\b"),
    ("suicide", "done with life", r"\b(?:done with|tired of|sick of) (?:life|living|being alive|it all|everything)\b(?!.{0,20}\b(?:form|paperwork|insurance|appointment))|\b(?:will not|not going to|wont) (?:be alive|be around|be here) (?:by|for|much longer|tomorrow)\b|\b(?:nobody|no one) (?:would|will) (?:miss|notice|care)\b"),
    ("suicide", "jump", r"\b(?:going to|want to|about to|will|gonna) jump (?:off|from|in front)\b|\b(?:going to|want to|about to) jump\b(?! (?:in|into|on|the gun|ahead|start|rope|through))|\b(?:standing|sitting) on (?:the|a) (?:bridge|ledge|roof|edge|railing)\b|\bgoodbye (?:letters?|notes?|texts?)\b"),
    ("suicide", "no reason to live", r"\bwhat is the point (?:of anything|of living|of life|of going on|any ?more|in anything)\b|\bgave (?:away )?(?:my|all my) (?:\w+ ){0,2}(?:to|away)\b.{0,40}\b(?:letters?|goodbye|note|last)\b|\b(?:wrote|writing|left) (?:goodbye |final )?letters? to (?:my|his|her)\b|\b(?:tonight|today|this) is (?:my|his|her|their) last (?:night|day)\b|\blast night alive\b|\b(?:a |any |no )?reason to (?:keep living|keep going|live|go on|be alive|stay alive|wake up)\b|\bif i (?:was|were) (?:dead|gone|not (?:here|around|alive))\b|\bi (?:will |am going to |am going to just |want to |should )?end it\b(?! (?:with|there|here|early))|\b(?:nothing|no one|nobody) (?:left )?to live for\b|\blife (?:is not|is no longer|isnt) worth (?:living|it)\b|\bnot worth living\b|\b(?:want|wants|need) (?:it all|everything|this|my life|the pain) to (?:end|be over|stop for good)\b|\b(?:give|giving|gave) up on (?:life|living)\b|\btired of (?:being alive|existing|waking up)\b|\b(?:i am|feel like) (?:just )?a burden (?:to|on) (?:everyone|everybody|my family|them)\b|\bworld (?:would be|is) better (?:off )?without me\b|\b(?:there is|i see|i have) no way out\b"),
    ("suicide", "not safe with myself", r"\b(?:not|do not feel) safe (?:with|from|around) myself\b|\b(?:can not|not able to) keep myself safe\b|\bthoughts (?:of|about) (?:ending|killing|hurting|harming) (?:it|myself|my life)\b|\b(?:suicidal|dark|intrusive) thoughts\b|\bthinking (?:about|of) (?:ending it|ending my life|not being here|dying|killing)\b|\b(?:saving|saved|stockpiling|hoarding) (?:up )?(?:my )?(?:pills|meds)\b|\bbought a (?:gun|rope)\b.{0,40}\b(?:myself|end|done|it)\b|\b(?:walk|step|run) (?:into|in front of) (?:traffic|a train|a car|a bus)\b|\b(?:crash|drive) my car (?:into|off|on purpose)\b|\b(?:last|final) (?:text|message|goodbye)\b.{0,40}\b(?:love|sorry|goodbye|forgive)\b|\b(?:will|you will) (?:never|not) (?:see|hear from) me again\b"),
    # --- poisoning and overdose (Poison Help, 911 if unconscious or not breathing) ---
    ("poisoning", "overdose", r"\boverdose\b(?! (?:prevention|training|kit|awareness|class))|\b(?:gave|give|used|needs?|need to give) (?:\w+ )?(?:narcan|naloxone)\b"),
    ("poisoning", "swallowed chemical", r"\b(?:swallowed|swallow|swallowing|drank|drink|drinking|ate|eaten|eating|chewed|chewing|ingested|took|got into|licked|sucked on|bit into|put) " + _FILL + _CHEMICAL + r"\b(?! (?:allergy|question))"),
    ("poisoning", "swallowed medicine", r"\b(?:swallowed|swallowing|ate|eaten|eating|chewed|chewing|ingested|got into|found (?:him|her|them) with|into) " + _FILL + _MEDICINE + r"\b"),
    ("poisoning", "too many pills", r"\b(?:took|take|taking|taken|swallowed|ate|had|gave (?:him|her|them)|given) " + _LOTS + r" ?(?:my |his |her |the |their )?(?:\w+ ){0,2}(?:pills|tablets|meds|medication|medicine|doses|morphine|gummies|capsules|caps|tylenol|advil|xanax|insulin|vitamins|sleeping pills)\b"),
    ("poisoning", "double dose", r"\b(?:took|gave (?:him|her|them)|given|accidentally (?:took|gave \w+)) (?:a |the )?(?:double|triple|twice the|10x|ten times the|adult) (?:dose|dosage|amount)\b|\bwrong (?:meds|medicine|medication|pills)\b.{0,40}\b(?:took|gave|given|swallowed)\b|\b(?:took|gave \w+|given|swallowed) (?:\w+ )?wrong (?:meds|medicine|medication|pills)\b"),
    ("poisoning", "poisoned", r"\b(?:poisoned|poisoning|poisonous|toxic dose)\b"),
    ("poisoning", "carbon monoxide", r"\b(?:carbon monoxide|co (?:alarm|detector|poisoning)|co2? detector|gas leak|smell gas)\b"),
    ("poisoning", "chemical exposure", r"\b(?:bleach|chemicals?|pesticide|ammonia|cleaner|acid|lye)\b.{0,40}\b(?:in (?:his|her|my|their) (?:eyes?|mouth)|fumes|inhaled|breathed in|splashed)\b|\b(?:inhaled|breathed in|breathing in|huffing|huffed) (?:\w+ ){0,3}(?:fumes|bleach|chemicals|gas|paint|spray)\b|\bmixed bleach\b"),
    ("poisoning", "chemical nearby", r"\b(?:drank|swallowed|ingested|drinking|swallowing)\b.{0,40}\b" + _CHEMICAL + r"\b|\bgenerator\b.{0,60}\b(?:dizzy|headache|throwing up|vomit\w*|sick|passed out|confused)\b"),
    ("poisoning", "took too much", r"\b(?:took|taken|swallowed|gave (?:him|her|them)|given) (?:way |far |a lot |a little )?too (?:much|many)\b(?! (?:time|off|notes|pictures|photos))"),
    ("poisoning", "accidental dose", r"\b(?:accidentally|accidently|by mistake|mistakenly) (?:took|gave|swallowed|drank|ate|given|taken|double dosed|doubled)\b|\b(?:took|gave (?:him|her|them)|given) (?:\w+ )?(?:someone elses|somebody elses|the wrong|another persons|my \w+s) (?:meds|medicine|medication|pills|insulin)\b|\b(?:double|triple) dosed\b|\b(?:vape juice|e ?liquid|nicotine liquid|nicotine pouch|essential oil|eye drops|alcohol poisoning|snake ?bite|(?:bitten|bit) by (?:a |an )?(?:\w+ )?(?:snake|rattlesnake|copperhead|cottonmouth|spider|scorpion)|rattlesnake|black widow|brown recluse|scorpion sting)\b|\bgot into (?:the |my |his |her )?(?:medicine|medicine cabinet|cabinet under the sink|cleaning supplies|purse)\b|\bfruity breath\b"),
    ("poisoning", "pill count", r"\b(?:doubled|tripled|double|triple)(?: and (?:doubled|tripled))? up on\b|\b(?:like|about|around|maybe|over) \d{2,} (?:\w+ )?(?:pills|tablets|tylenol|advil|capsules)\b(?! (?:a|per|each|every) (?:day|week))"),
    # --- violence, threats and abuse (911) ---
    ("violence", "threat", r"\b" + _ABUSER + r"\b.{0,25}\b(?:going to|will|is going to|coming to|threatened to|threatening to|tried to|trying to|wants to|said (?:he|she|they) (?:would|will|is going to|was going to))(?: \w+)? (?:kill|murder|shoot|stab|hurt|beat|strangle|choke|burn|rape) " + _VICTIM + r"\b"),
    ("violence", "kill threat", r"\b(?:going to|will|threatened to|threatening to|trying to|tried to|wants to) (?:kill|murder|shoot|stab|strangle) (?:me|us|my \w+|the kids|the baby|him|her|them|you|someone|people|everyone|everybody)\b"),
    ("violence", "i will kill", r"\bi (?:am going to|will|want to|am about to|could|might|swear i will) (?:kill|murder|shoot|stab|hurt|beat) (?:him|her|them|someone|somebody|my \w+|people|everyone|everybody|you)\b"),
    ("violence", "being hurt", r"\b" + _ABUSER + r" (?:is |are |keeps |has been |have been |just |was |)(?:hitting|beating|punching|kicking|choking|strangling|grabbed|grabbing|stabbed|stabbing|shot|hit|beat|punched|kicked|choked|strangled|slapped|slapping|raped|assaulted|attacked|attacking|hurting|abusing|threatening|pushed|shoved|dragged|locked|burned|burning) (?:me|us|my \w+|the kids|the baby|him|her|them)\b"),
    ("violence", "weapon", r"\bthreatening (?:me|us|him|her) with\b|\b(?:has|have|got|pulled|pointing|holding|waving|came at me with|with) (?:a |his |her |their )?(?:gun|knife|weapon|pistol|rifle|blade|machete)\b(?! (?:safety|show|license|permit|class|lock))"),
    ("violence", "abuse", r"\b(?:domestic (?:violence|abuse)|being abused|forced (?:himself|herself|themselves) on (?:me|her|him)|beaten up|(?:sexually )?assaulted|raped|rape|molested|molesting|being trafficked|abusive (?:husband|wife|partner|boyfriend|girlfriend|parent|dad|mom))\b"),
    ("violence", "afraid", r"\b(?:afraid|scared|terrified) (?:for my life|for my safety|for our lives|to go home|of (?:my|him|her) (?:husband|wife|partner|boyfriend|girlfriend|dad|ex)?\b.{0,20}\b(?:hurt|kill|hit)|(?:he|she|they) (?:will|is going to|might) (?:kill|hurt|hit))\b"),
    ("violence", "break in", r"\b(?:someone|somebody|a man|a guy|an? intruder|a stranger)\b.{0,30}\b(?:broke in|breaking in|in my house|in the house|outside my door|trying to get in)\b"),
    ("violence", "shooting", r"\b(?:active shooter|shots fired|(?:been|got|was|were|is|just got) (?:shot|stabbed)|gunshot|stab wound)\b"),
    ("violence", "followed attacked", r"\b(?:got|been|was|were|just got|i got) (?:jumped|mugged|robbed|attacked|assaulted|beaten|carjacked)\b|\b(?:is|are|keeps|been|still) (?:following|stalking|chasing) (?:me|us)\b|\bstalking me\b|\b(?:he|she|they) (?:is|are) still (?:out there|outside|here)\b"),
    ("violence", "unsafe at home", r"\b(?:not|do not feel) safe (?:at home|in my home|in my house|with (?:him|her|my \w+))\b|\b(?:he|she|they|my \w+) (?:hits|beats|kicks|chokes|hurts|rapes|abuses|threatens) (?:me|us|my \w+|the kids)\b|\b(?:will not|does not|wont) let me (?:leave|go|call)\b|\b(?:held|keeping me|kept) (?:against my will|locked|hostage)\b|\bkidnap\w*\b|\bpushed me (?:down|into|off)\b"),
    ("violence", "attack threat", r"\bshoot up (?:the|a|his|her|my|their) (?:school|work|office|church|store|place|party)\b|\b(?:someone|somebody|a guy|a man|a woman|some guys|they|he|she) (?:just )?(?:jumped|mugged|robbed|attacked|stabbed|shot|beat up) (?:me|us|my \w+)\b"),
    # --- pregnancy ---
    ("pregnancy", "pregnant and", r"\b(?:pregnant|positive (?:pregnancy )?test|[1-4]\d weeks|weeks along|weeks pregnant|months pregnant|trimester)\b.{0,80}\b(?:bleed\w*|blood|(?:severe|bad|really bad|horrible|terrible|sharp|lots of|so much) (?:cramp\w*|pain|belly pain|stomach pain)|cramping (?:badly|bad|really bad)|contractions|water (?:broke|breaking)|leaking fluid|gush of fluid|not moving|stopped moving|no movement|can not feel|(?:severe|bad|worst|terrible|horrible|pounding) headache|seeing spots|vision|fell|fall|car accident|unbearable|rock hard|cord|hit (?:in|on) (?:the|my) (?:stomach|belly))\b"),
    ("pregnancy", "labour", r"\b(?:water (?:just )?(?:broke|broken|breaking)|contractions (?:are |every |\d|coming|getting|close|started)|in (?:active )?labou?r\b|going into labou?r|baby is coming|baby (?:is )?crowning|giving birth (?:right now|now|at home)|cord (?:\w+ )?(?:is out|coming out|came out))"),
    ("pregnancy", "baby not moving", r"\b(?:baby|babys|the baby) (?:is )?(?:not|has not|stopped|is not) (?:moving|moved|kicking|kicked)\b|\b(?:have not|has not) felt (?:the |my |her )?baby (?:move|kick)\w*\b|\bcan not feel (?:the )?baby (?:move|moving|kick|kicking)\b|\bno fetal movement\b|\bbaby(?:s)? movements? (?:\w+ )?(?:stopped|have stopped|has stopped|gone)\b|\b(?:no|not feeling) (?:baby )?movements?\b.{0,30}\b(?:baby|weeks)\b|\b(?:having a|think i am having a|might be having a|is having a) miscarriage\b|\bmiscarrying\b|\b(?:think|might|could) (?:\w+ ){0,3}ectopic\b"),
    # --- blood sugar ---
    ("blood_sugar", "sugar number", r"\b(?:blood sugar|sugar|glucose|bg|bs|bgl|dexcom|libre|cgm)\b(?: (?!test|appt|appointment|log|logs|check|visit|class|strips|supplies|at)\w+){0,4}? (?:is |was |at |of |reads |says |showing |shows |just |only |like |around |over |under |above |below )*(?P<mgdl>\d{2,3})\b(?! ?(?:am|pm|oclock|min|mins|minutes|hours|hrs|days|weeks|percent|%|/))"),
    ("blood_sugar", "sugar crashing", r"\b(?:sugar|glucose|bg|blood sugar)\b(?: \w+){0,3}? (?:crashing|tanking|tanked|crashed|dropping fast|bottomed out|through the roof|sky high|wont come (?:up|down)|will not come (?:up|down)|says (?:hi|high|lo|low)|reads (?:hi|high|lo|low)|just says (?:hi|lo))\b|\b(?:meter|monitor|cgm|dexcom|libre) (?:just )?(?:says|reads|shows|showing) (?:hi|lo)\b"),
    ("blood_sugar", "sugar symptoms", r"\b(?:sugar|glucose|bg|blood sugar)\b.{0,30}\b(?:too high|too low|very low|very high|really low|really high|so low|so high|super low|super high|dangerously \w+|low|high)\b.{0,60}\b(?:shak\w*|confus\w*|sweat\w*|dizzy|faint\w*|pass\w* out|not making sense|can not wake|vomit\w*|puking|throwing up|can not think|seiz\w*|breath\w*|drowsy|slurr\w*|not responding)\b"),
    ("blood_sugar", "dka hypo", r"\b(?:dka|diabetic ketoacidosis|ketoacidosis|ketones (?:are )?(?:high|large|very)|hypoglycemic (?:episode|attack|shock)|insulin shock|diabetic (?:coma|emergency|shock))\b|\bhypo\b.{0,40}\b(?:shak\w*|confus\w*|sweat\w*|pass\w* out|will not|can not|not)\b|\bdiabetic\b.{0,40}\b(?:confused|unresponsive|passing out|not making sense|shaking and sweating|sweaty and shaky|shaky and sweaty|will not wake)\b"),
    ("blood_sugar", "low not rising", r"\b(?:glucose tabs|juice|sugar|candy|glucagon)\b.{0,30}\b(?:not (?:working|helping)|did not help|is not helping|not bringing it up)\b|\b(?:gave|took|injected|used) (?:\w+ )?(?:too much|double|way too much|the wrong) (?:\w+ )?insulin\b|\b(?:gave|give|used|need to give|had to give|injected) (?:\w+ )?glucagon\b"),
    ("blood_sugar", "meter reading", r"\b(?:reads|reading|readings|meter (?:says|reads|shows)) (?:of |is |at |only |just )?(?P<mgdl>\d{2,3})\b(?! ?(?:am|pm|min|mins|minutes|hours|days|weeks|percent|/))|\b(?:low|lo) (?P<low>\d{2})\b.{0,40}\b(?:shak\w*|sweat\w*|confus\w*|can not think|dizzy|faint\w*)\b"),
    ("blood_sugar", "insulin and symptoms", r"\b(?:insulin|diabetic|diabetes|type (?:1|2|one|two))\b.{0,60}\b(?:acting drunk|sweating buckets|drenched in sweat|shaking and sweating|not making sense|confused and|will not wake|cannot wake|can not wake)\b"),
    # --- anaphylaxis ---
    ("anaphylaxis", "throat closing", r"\b(?:throat|airway|tongue) (?:\w+ ){0,2}(?:closing|closed|swell\w*|swollen|tight|blowing up|puffing up|thick)\b|\b(?:i am|he is|she is|they are|whole body|face|face is|lips are) (?:swelling|puffing|blowing) up\b|\b(?:tongue|lips|throat)(?: and (?:tongue|lips|throat|face))? (?:are |is )?(?:huge|swollen|swelling|puffy)\b|\bswell(?:ing)? (?:of|in) (?:the|my|his|her) (?:throat|tongue)\b"),
    ("anaphylaxis", "anaphylaxis", r"\b(?:anaphyla\w*|anaphalactic|anafylactic|allergic shock)\b"),
    ("anaphylaxis", "allergic reaction", r"\b(?:having|having a|is having|think (?:i am|he is|she is) having) (?:an? )?(?:bad |severe |serious |really bad )?allergic reaction\b|\b(?:allergic|allergy|reaction)\b.{0,60}\b(?:hives|swell\w*|breathe|breathing|throat|tongue|lips|epi ?pen|wheez\w*|puking|vomit\w*)\b(?!.{0,30}\b(?:last|years? ago|in my chart|on file|note))|\b(?:used|gave (?:him|her|them)?|give|need|needs|using|stabbed (?:him|her|me) with) (?:his |her |my |an |the |their )?epi ?pen\b|\bepi ?pen (?:did not|not|is not) (?:work|help)"),
    ("anaphylaxis", "stung and swelling", r"\b(?:stung|sting|bee|wasp|hornet|peanut|peanuts|nuts|shellfish|shrimp)\b.{0,50}\b(?:swell\w*|hives all over|can not breathe|breathing|throat)\b"),
    ("anaphylaxis", "hives and more", r"\bhives\b.{0,60}\b(?:throat|breath\w*|swell\w*|tongue|lips|dizzy|throwing up|vomit\w*|swallow)\b|\b(?:throat|breath\w*|swell\w*|tongue|lips|dizzy|throwing up|vomit\w*)\b.{0,60}\bhives (?:everywhere|all over|spreading)\b|\b(?:swollen|swelling)\b.{0,40}\b(?:hard|can not|trouble) (?:to )?swallow\w*\b|\bgave (?:\w+ ){1,3}(?:epi ?pen)\b"),
    # --- seizure ---
    ("seizure", "seizure now", r"\b(?:having|is having|in|started having|started) (?:a |another |his |her )?(?:\w+ )?(?:seizure|seizures|convulsion|convulsions|grand mal|epileptic fit)\b|\bjust had (?:a |another )?seizure\b|\bseizure (?:will not|not) (?:stop|stopping)\b|\bseizure (?:is |has been )?(?:going|lasting) (?:on )?(?:for )?\w+ (?:min|minutes)\b|\b(?:first|another) seizure (?:today|tonight|right now|just now)\b"),
    ("seizure", "seizing", r"\b(?:seizing|convulsing|seizure right now|shaking and (?:not|will not|can not) (?:respond\w*|stop|wake|breathe)|jerking and (?:not|will not) (?:respond\w*|stop)|eyes rolled back|foaming at the mouth)\b"),
    ("seizure", "seizure ongoing", r"\bseizures? (?:\w+ ){0,2}(?:happening|right now|going on|still going|not stopping|will not stop|has lasted|lasted|lasting|for over|over \d|one after another|and (?:it is )?not stopping)\b|\bseizures? (?:\w+ ){0,3}back to back\b|\b(?:back to back|cluster|\d+ (?:st|nd|rd|th)|second|third|fourth) seizures?\b(?! (?:clinic|med))|\b(?:think|i think) (?:it is|its) a seizure\b|\bhaving another one\b|\b(?:one|a) fit\b.{0,40}\bhaving another\b|\bhaving a fit\b.{0,30}\b(?:jerk|shak|convuls|twitch|stiff)\w*|\b(?:jerking|twitching|stiff|shaking uncontrollably)\b.{0,40}\b(?:will not respond|not responding|eyes (?:are )?rolled|bit (?:his|her|my) tongue|still going)\b"),
    ("seizure", "status", r"\bstatus epilepticus\b|\b(?:shaking|jerking|twitching) all over\b.{0,40}\b(?:not|will not|can not|eyes|unresponsive|foam)\w*|\b(?:gave|give|used|need) (?:\w+ )?(?:rescue med\w*|diastat|nayzilam|valtoco|rectal valium)\b"),
    # --- stroke ---
    ("stroke", "stroke", r"\b(?:having|is having|might be having|think (?:i|he|she) (?:is|am) having|signs of|symptoms of|is this|think (?:its|it is)|maybe|could be|might be) (?:a |an )?(?:stroke|mini stroke|tia)\b"),
    ("stroke", "face droop", r"\b(?:face|mouth|smile|lip|side of (?:my|his|her) face) (?:is |are |looks |feels |went |just |keeps |suddenly )*(?:droop\w*|crooked|lopsided|sagging|hanging|fell|falling|numb)\b|\bdroopy (?:face|mouth|eye|smile)\b"),
    ("stroke", "slurred speech", r"\b(?:slurr?(?:ed|ing|s|y)?|slured)\b(?! (?:words? of the day))|\b(?:words|speech) (?:are |is )?(?:garbled|jumbled|coming out wrong|not making sense)\b|\b(?:talking|speaking|speech) (?:\w+ )?(?:gibberish|weird|funny|strange|nonsense)\b|\b(?:suddenly|all of a sudden) (?:can not|unable to) (?:talk|speak|get (?:the |his |her |my )?words out)\b|\b(?:can not|unable to) (?:talk|speak) (?:properly|clearly|straight)\b|\bcan not get (?:the |his |her |my )?words out\b"),
    ("stroke", "one side weak", r"\b(?:one side|left side|right side|half (?:of )?(?:my|his|her) (?:body|face))\b.{0,30}\b(?:numb|weak|paraly\w*|droop\w*|can not move|tingl\w*|not working|limp|dead)\b|\b(?:numb|weak|paraly\w*|can not move) (?:\w+ ){0,3}(?:one side|left side|right side|whole (?:left|right) side)\b|\bsuddenly (?:can not) (?:move|lift|feel) (?:my|his|her) (?:arm|leg|hand)\b"),
    ("stroke", "sudden head vision", r"\b(?:worst headache|thunderclap headache|sudden (?:severe |horrible |terrible )?headache (?:and|with)|headache worst of (?:my|his|her) life)\b|\bsudden(?:ly)? (?:\w+ ){0,2}(?:blind|can not see|lost (?:my |his |her )?vision|vision went)\b|\bsuddenly confused and\b"),
    ("stroke", "sudden weakness", r"\bcan not (?:feel|move) (?:the )?(?:left|right) side\b|\bnumb\w* (?:\w+ ){0,3}(?:left|right|one) side\b|\bcan not (?:lift|move|raise) (?:his|her|my) (?:left|right) (?:arm|leg|hand)\b|\bsudden(?:ly)? (?:\w+ ){0,3}(?:dizzy|numb\w*|weak) (?:\w+ ){0,3}(?:can not (?:walk|talk|see|stand))\b|\bstroke\b.{0,60}\b(?:happening again|again right now|right now)\b"),
    ("stroke", "limb stopped working", r"\b(?:hand|arm|leg|foot) (?:just |suddenly )?(?:stopped working|went dead|gave out)\b.{0,60}\b(?:face|speech|talk\w*|droop\w*|numb\w*|words)\b|\b(?:face|speech|droop\w*)\b.{0,60}\b(?:hand|arm|leg) (?:just |suddenly )?(?:stopped working|went dead)\b"),
    # --- cardiac ---
    ("cardiac", "chest pain", r"\bchest (?:\w+ ){0,2}(?:pain|pains|hurts|hurting|hurt|ache|aches|aching|pressure|tight|tightness|squeez\w*|crushing|crushed|heavy|heaviness|feels like (?:an elephant|something))\b|\b(?:pain|pains|pressure|tightness|crushing|squeezing|ache|hurting|sharp pain|heaviness) (?:\w+ ){0,2}(?:in|on|across|behind) (?:my|his|her|their|the) chest\b|\b(?:crushing|squeezing) (?:\w+ )?chest\b|\bheart (?:pain|pains)\b"),
    ("cardiac", "heart attack", r"\b(?:heart attack|cardiac arrest|heart (?:has )?(?:stopped|stopping)|heart (?:is )?(?:racing|pounding) and (?:\w+ ){0,3}(?:dizzy|faint|pain|can not|short|chest))\b(?! (?:last (?:year|month)|risk|prevention|survivor|years ago|in 20))"),
    ("cardiac", "arm jaw pain", r"\b(?:left arm|jaw|arm and jaw|jaw and arm) (?:\w+ ){0,2}(?:pain|hurts|hurting|numb|tingl\w*)\b.*\b(?:sweat\w*|chest|nause\w*|short|dizzy)\b|\bpain (?:going |spreading |radiating |shooting )?(?:down|into|to) (?:my|his|her) (?:left )?(?:arm|jaw)\b"),
    ("cardiac", "clutching chest", r"\b(?:clutching|grabbing|holding|gripping) (?:his|her|my|their) chest\b|\belephant (?:\w+ ){0,3}(?:my|his|her) chest\b|\bchest (?:\w+ ){0,6}(?:vice|vise|being squeezed|in a clamp)\b|\b(?:defibrillator|defib|icd|pacemaker) (?:\w+ ){0,2}(?:shocked|shocking|fired|went off|keeps)\b|\bheart rate (?:is |of |at |was |just )*(?P<bpm>\d{2,3})\b"),
    ("cardiac", "cpr", r"\b(?:doing|started|giving|give|need|start|do i do|how do i do|performing) cpr\b|\b(?:cpr|aed|chest compressions)\b.{0,30}\b(?:now|right now|on (?:him|her|my))\b"),
    # --- breathing ---
    ("breathing", "cant breathe", r"\b(?:can not|could not|couldnt|unable to|barely|hardly|struggling to|fighting to|hard to|difficult to|not able to) (?:\w+ ){0,2}(?:breathe|catch (?:my|his|her|their) breathe)\b(?! (?:through|out of) (?:my|his|her|the) nose)|\b(?:trouble|difficulty|problems?|hard time|struggling|labou?red) (?:with )?breathing\b|\b(?:can not|not) get(?:ting)? (?:enough )?air\b|\bcan not finish a sentence\b"),
    ("breathing", "not breathing", r"\b(?:not|stopped|stops|is not|no longer|quit) breathing\b|\bbreathing (?:stopped|is weird and|is shallow|very fast and)\b"),
    ("breathing", "choking", r"\b(?:is |am |are |keeps |started |he is |she is )?choking\b(?! (?:hazard|up|on (?:his|her|my|their) words))|\bchoked on\b|\b(?:something|food|a \w+) (?:is )?(?:stuck|lodged) in (?:his|her|my|their) (?:throat|windpipe|airway)\b"),
    ("breathing", "gasping", r"\b(?:gasping|wheezing (?:badly|bad|really bad|and)|short of breathe|shortness of breathe|out of breathe (?:just|sitting|at rest|and)|turning blue|lips (?:are |look |turned |turning )?(?:blue|purple|gray|grey)|blue lips)\b"),
    ("breathing", "asthma attack", r"\basthma attack\b|\b(?:inhaler|nebulizer|neb|rescue inhaler) (?:is )?(?:not|does not) (?:working|helping|touching it|doing anything|doing a thing)\b|\bwheezing (?:so|really|very) (?:hard|bad|badly)\b|\bribs (?:are )?(?:sucking|pulling) in\b"),
    ("breathing", "breathing badly", r"\bbreathing (?:is )?(?:really |so |very )?(?:shallow|fast and|rapid|bad|awful|terrible|hard|weird)\b|\bblue around (?:the|his|her) (?:mouth|lips)\b|\bgrunting\b.{0,30}\bbreath\w*|\bbreath\w*\b.{0,40}\b(?:grunting|really struggling|struggling)\b"),
    # --- unconscious ---
    ("unconscious", "passed out", r"\b(?:passed out|passing out|pass out|fainted|fainting|collapsed|collapsing|blacked out(?! (?:the|my|some|all|those|these|dates|names|parts|times))|blacking out|went limp|is limp|fell and (?:is not|will not) (?:moving|responding|getting up))\b"),
    ("unconscious", "unresponsive", r"\b(?:has not|did not|not) come to\b|\b(?:unconscious|unresponsive|not responsive|not responding|will not respond|does not respond|not answering me|went floppy|is floppy|will not open (?:his|her|their) eyes|slumped over|knocked out(?!.{0,25}\b(?:tooth|teeth))|not waking up|will not wake up|can not wake|not moving and|lifeless|no pulse|does not have a pulse|has no pulse|not conscious|in and out of consciousness|losing consciousness|lost consciousness)\b"),
    ("unconscious", "head injury", r"\bhit (?:his|her|my|their) head\b.{0,50}\b(?:confused|vomit\w*|throwing up|not making sense|sleepy|will not|can not|knocked|out of it|bleeding)\b"),
    ("unconscious", "hard to wake", r"\b(?:can not|could not|can barely|hard to|will not) (?:wake|rouse|keep) (?:him|her|them|my \w+|\w+) (?:up|awake)\b|\bout cold\b|\bbarely (?:conscious|awake|responsive)\b|\b(?:can not|will not) stay awake\b.{0,40}\b(?:confused|breath\w*|pills|hit|fell|drank)\b|\bfound (?:him|her|them|my \w+) (?:on the floor|passed out|unresponsive|not breathing|not moving)\b"),
    # --- bleeding ---
    ("bleeding", "heavy bleeding", r"\b(?:bleeding|bleed|bleeds|nosebleed|nose bleed|cut|wound|gash)\b.{0,25}\b(?:will not stop|not stopping|does not stop|wont clot|everywhere|a lot|so much|heavily|heavy|bad|badly|profusely|can not stop it|still gushing|squirting|like crazy|nonstop|non stop|for over an hour|for hours|through (?:the|a|my|his|her|every|each|all the) \w+|soaked|gushing|spurting|pouring|all over)\b|\b(?:can not|could not) (?:stop|get) (?:the |it |this )?(?:bleeding|blood)(?: to stop)?\b|\b(?:heavy|heavily|severe|uncontrolled|a lot of|lots of|so much) (?:bleeding|blood)\b|\bblood (?:is )?(?:everywhere|all over|gushing|pouring|spurting|squirting|will not stop)\b|\b(?:gushing|pouring|spurting|squirting) (?:\w+ )?blood\b|\b(?:will not|does not|not|can not|could not) stop bleeding\b|\bcan not get (?:\w+ ){0,3}to stop bleeding\b|\b(?:passed|passing|lost|losing|pooping) (?:a ton of|a lot of|lots of|so much|tons of) (?:\w+ )*?blood\b"),
    ("bleeding", "bleeding out", r"\b(?:bleeding out|bleeding to death|pool of blood|lost a lot of blood|losing a lot of blood)\b"),
    ("bleeding", "cough vomit blood", r"\b(?:coughing|cough|coughed|throwing|throw|threw|vomiting|vomit|vomited|puking|puke|puked|spitting|pooping) (?:up )?(?:\w+ ){0,3}(?:blood|clots)\b|\b(?:black|bloody|tarry) (?:stool|stools|poop|diarrhea)\b"),
    ("bleeding", "deep wound", r"\b(?:deep|huge|bad|big|gaping|severe) (?:cut|gash|wound|laceration)\b|\b(?:cut|sliced|chopped) (?:off )?(?:my|his|her|their) " + _WOUND_BODY + r"s? off\b|\b(?:cut|sliced|chopped) off (?:my|his|her|their) " + _WOUND_BODY + r"\b|\b(?:cut|sliced|chopped) (?:my|his|her|their) " + _WOUND_BODY + r" (?:almost |nearly |partly |half )?(?:all the way )?off\b|\b(?:cut|sliced) (?:\w+ ){1,3}(?:really |very )deep\b|\bamputat\w*\b|\b(?:chainsaw|table saw|circular saw|axe|machete|lawn ?mower)\b.{0,40}\b(?:bleed\w*|blood|cut)\b|\bbone (?:is )?sticking out\b|\bimpaled\b"),
    ("bleeding", "hemorrhage", r"\b(?:hemorrhag\w*|haemorrhag\w*|bleeding profusely|cut an artery|artery|arterial)\b|\bsoak(?:ing|ed|s)? (?:through )?(?:a |one |\d+ )?(?:pad|pads|tampon|towel|towels|bandage|bandages|gauze)\b.{0,30}\b(?:hour|every|minutes|still|through)\b|\bblood thinners?\b.{0,40}\b(?:bleeding|will not stop|fell|hit (?:his|her|my) head)\b|\bbleeding\b.{0,40}\bblood thinners?\b"),
    ("bleeding", "wound opened", r"\b(?:incision|stitches|sutures|wound|staples)\b.{0,20}\b(?:split|burst|ripped|came apart|opened up|split open|popped open)\b.{0,40}\bblood\b|\bblood (?:is )?(?:running|dripping|streaming|pouring) down\b"),
    # --- other signs of a medical emergency ---
    ("general", "asks for ambulance", r"\b(?:need|needs|call|calling|send|get) (?:an |a )?ambulance\b|\b(?:this|it) is an emergency\b|\bmedical emergency\b(?! (?:number|line|plan|contact|card))|\b(?:i|he|she|they) (?:think )?(?:i |he |she )?(?:am|is|are) dying\b(?! (?:of|for|to|laughing|here|over here|inside))|\b(?:i|he|she|they) (?:think )?(?:i |he |she )?(?:am|is|are) going to die\b|\bfeels? like (?:i|he|she) (?:am|is) (?:going to die|dying)\b"),
    ("general", "it is happening again", r"\b(?:same|that) (?:pain|symptoms?|thing|feeling) (?:is |are )?(?:back|happening again|again|coming back)\b.{0,30}\b(?:right now|now|again)\b"),
    # --- fire, gas, crashes and other immediate danger (911) ---
    ("hazard", "fire", r"\b(?:(?:there is|theres|there are) (?:a )?(?:fire|smoke)|(?:house|apartment|kitchen|room|building|car|garage|stove|oven|wall|bedroom|trailer|place|roof) (?:is |are )?(?:on fire|burning|catching fire|caught fire|full of smoke|filling with smoke)|on fire\b(?! (?:lol|lmao|haha))|caught (?:on )?fire|smoke (?:is )?(?:everywhere|pouring|coming (?:out|from|under))|flames)\b(?!.{0,20}\b(?:drill|pit|place|works|fighter\w*|extinguisher\w*|safety|alarm test)\b)"),
    ("hazard", "fire, alone", r"^\W*fire\W*$"),  # the whole message; the classifier does not judge one word
    ("hazard", "gas or crash", r"\b(?:smells? (?:like |of )?gas|gas (?:is )?leak\w*|leaking gas|(?:co|carbon monoxide|smoke) (?:alarm|detector)s? (?:is |are |keeps |just )?(?:going off|beeping|went off|sounding)|(?:just )?(?:crashed|wrecked|rolled) (?:the |my |our |his |her )?(?:car|truck|van|bike|motorcycle)|car (?:crash|accident|wreck) (?:just|right now|and)|(?:just )?(?:got|was|were|been) (?:hit by a car|in a (?:car )?(?:crash|wreck|accident))|hit by a car|(?:is |are )?drowning|pulled (?:him|her|them) (?:out of|from) the (?:pool|water|lake)|electrocuted|live wire|power line (?:is )?down|trapped (?:in|under|inside))\b(?!.{0,30}\b(?:last (?:year|month|week)|years ago|insurance|claim|bill|paperwork|form)\b)"),
    ("general", "asks about 911", r"\b(?:should|do|can) (?:i|we) (?:call|go to) (?:911|the er|the emergency room|an ambulance)\b|\b(?:calling|called|on the phone with|waiting for) (?:911|the ambulance|an ambulance|paramedics)\b|\b(?:rushing|taking|driving) (?:him|her|them|me|my \w+) to the (?:er|emergency room|hospital) (?:now|right now)\b"),
)

# The backstop: a danger word together with a sign of urgency, for phrasings no rule above
# foresaw ("sezure happening now what do i do"). Words are stems of the categories' vocabulary.
DANGER_WORDS: Tuple[Tuple[str, str], ...] = (
    ("suicide", r"(?:kill|hurt|harm|cut) my ?self|suicid\w*|end (?:it|my life)"),
    ("poisoning", r"swallowed|ingested|poison\w*|overdose|drank (?:some|the)|took (?:some|a bunch|a lot)"),
    ("violence", r"(?:hit|hitting|beat|beating|hurt|hurting|attack\w*|threaten\w*|abus\w*|choked|stabbed) (?:me|us|my \w+)|gun|knife"),
    ("pregnancy", r"pregnant|contractions|water broke|\d+ weeks? (?:along|pregnant)"),
    ("blood_sugar", r"(?:blood )?sugar|glucose|insulin|diabetic|hypo"),
    ("anaphylaxis", r"allergic|swell\w*|swollen|hives|epi ?pen|throat"),
    ("seizure", r"seizures?|seizing|convuls\w*|jerking|twitching"),
    ("stroke", r"stroke|slurr\w*|droop\w*|numb\w*|paraly\w*"),
    ("cardiac", r"chest|heart|pulse"),
    ("breathing", r"breath\w*|wheez\w*|air|choking|asthma|inhaler"),
    ("unconscious", r"faint\w*|passed out|unconscious|unresponsive|collapsed|wake up|limp"),
    ("bleeding", r"bleed\w*|blood|gash"),
)
URGENCY = (
    r"\b(?<!not )(?<!non )(?:right now|help me|please help|help please|help us|hurry|asap|emergency|what do i do|what should i do|"
    r"what do we do|scared|terrified|panick\w*|freaking out|911|urgent|getting worse fast|so much worse|"
    r"immediately|dont know what to do|do not know what to do|happening now)\b|(?:!{2,}|(?:^|[.!?,] ?|\bno |\bplease |\bsomeone |\bsomebody |\bneed )help\b.{0,3}$)"
)

# Readings a rule captures by name fire only outside these ranges.
SAFE_RANGES = {
    "mgdl": (55, 400),  # blood sugar, mg/dL: below 54 is level-2 hypoglycaemia; above 400 risks DKA/HHS
    "bpm": (40, 150),  # heart rate at rest, with symptoms reported alongside
    "low": (55, 99),  # "LOW 35": the meter's own low warning
}
