"""The emergency rules for messages written in Spanish (and Spanglish).

Run by :func:`bot.safety.detect.detect_emergency` beside the English rules, on every message: a
patient's language is not known before the first redirect, and Spanglish mixes both. Same shape
as the English rules: a normalisation that folds accents and expands texting abbreviations
("xq", "q", "toy"), idioms that use alarming words harmlessly ("me muero de hambre", "mi jefe
me va a matar si llego tarde") blanked out, then rules in priority order, each named.
"""
from __future__ import annotations

from typing import Mapping, Tuple

from bot.safety.normalise import Normaliser

_ABBREVIATIONS: Mapping[str, str] = {
    "q": "que", "k": "que", "ke": "que", "xq": "porque", "pq": "porque", "porq": "porque",
    "x": "por", "tmb": "tambien", "tb": "tambien", "porfa": "por favor", "xfa": "por favor",
    "toy": "estoy", "toi": "estoy", "ta": "esta", "sta": "esta", "tas": "estas", "kiero": "quiero",
    "kero": "quiero", "aki": "aqui", "ahorita": "ahora", "mijo": "mi hijo", "mija": "mi hija",
    "bb": "bebe", "d": "de", "pa": "para", "n": "en", "nadien": "nadie", "nomas": "no mas",
    "respirrar": "respirar", "resirar": "respirar", "espirar": "respirar", "desmallo": "desmayo",
    "desmallado": "desmayado", "desmallada": "desmayada", "desmallo": "desmayo", "sangr": "sangre",
    "pastiyas": "pastillas", "pastias": "pastillas", "pildoras": "pastillas", "pildora": "pastilla",
    "hiso": "hizo", "aser": "hacer", "ase": "hace", "cuchiyo": "cuchillo", "matame": "matarme",
    "ayudaa": "ayuda", "ayudenme": "ayuda", "ayudame": "ayuda", "auxilio": "ayuda", "socorro": "ayuda",
    "quedo": "quedo", "bomberos": "bomberos", "trago": "trago", "tomo": "tomo", "mamy": "mama",
    "mami": "mama", "papi": "papa", "mi ja": "mi hija",
}

_LAUGH = r"(?:jaja\w*|jeje\w*|jiji\w*|lol|xd|\U0001F602)"
SPANISH_IDIOMS: Tuple[Tuple[str, str], ...] = (
    ("me muero de", r"\b(?:me muero|se muere|nos morimos|muerta?|muriendo(?:me)?) (?:de|del) (?:la )?(?:hambre|risa|sueno|frio|calor|ganas|verguenza|aburrimiento|cansancio|sed|nervios|envidia|amor|pena|flojera)\b"),
    ("muero por", r"\b(?:me muero|muero|muriendo) por (?:saber|ver|ir|comer|conocer|que)\b"),
    ("me mata", r"\b(?:me|nos) (?:mata|matan|esta matando) (?:el|la|los|las|este|esta|esto|de) (?!pecho|cabeza)\w+"),
    ("va a matar si", r"\b(?:me|nos) (?:va|van) a matar si\b|\bme mata(?:ria|n)? si\b"),
    ("matar el tiempo", r"\bmatar (?:el )?tiempo\b"),
    ("casi me da", r"\bcasi (?:me|le) (?:da|dio|daba) (?:un|algo|el) (?:infarto|ataque|patatus|soponcio)\b"),
    ("joking threat", r"\b(?:te|lo|la|los) (?:voy|vamos) a matar\b.{0,40}" + _LAUGH),
    ("chest imaging", r"\b(?:radiografia|rayos x|placa|tomografia|estudio|ultrasonido) (?:de|del) (?:pecho|torax|corazon|cabeza)\b"),
    ("blood tests", r"\b(?:analisis|examen|examenes|prueba|pruebas|estudios|muestra) (?:de|del) (?:sangre|azucar|orina)\b|\bsacar(?:me|le)? sangre\b|\bdonar sangre\b"),
    ("routine meds", r"\b(?:receta|recetas|pastillas|medicina|medicamento|medicamentos|rellenar|resurtir) (?:\w+ ){0,2}(?:para|de) (?:la |las |los |el )?(?:convulsiones|presion|azucar|diabetes|corazon|alergias?|asma|ansiedad|depresion|epilepsia)\b"),
    ("past event", r"\b(?:hace|el ano pasado|en \d{4}|hace (?:\w+ )?(?:anos|meses|semanas))\b.{0,30}\b(?:derrame|infarto|convulsion|sobredosis|intento)\b|\b(?:derrame|infarto|convulsion|sobredosis|intento)\b.{0,30}\b(?:hace (?:\w+ )?(?:anos|meses|semanas)|el ano pasado|en \d{4})\b"),
    ("vaccine shot", r"\b(?:vacuna|inyeccion) (?:de|contra|del) (?:la )?(?:gripe|influenza|covid|tetano)\b"),
    ("classes", r"\b(?:clase|curso|taller|folleto|informacion|platica|charla) (?:de|sobre|para) (?:\w+ ){0,3}"),
    ("fire drill", r"\bsimulacro(?: de (?:incendio|sismo|evacuacion|emergencia))?\b|\bfuegos artificiales\b"),
    ("dead battery", r"\b(?:bateria|celular|telefono|carro|pila) (?:esta |se )?(?:muerta?|murio|esta muriendo|muere)\b"),
)

SPANISH = Normaliser(_ABBREVIATIONS, SPANISH_IDIOMS, rewrites=(
    (r"([a-z])\1{2,}", r"\1"),  # ayudaaa -> ayuda (Spanish has no tripled letters)
    (r"(\d)([a-z])", r"\1 \2"),
))


def prepare_es(text: str) -> str:
    """What the Spanish rules run on: ``text`` lower case, accents folded (ñ -> n), stretched
    letters squeezed, abbreviations expanded, harmless idioms blanked."""
    return SPANISH.prepare(text)


_SUBSTANCE = (
    r"(?:cloro|clorox|blanqueador|lejia|pastillas|pastilla|medicinas?|medicamentos?|veneno|raticida|insecticida|"
    r"detergente|jabon|suavizante|limpiador|quimicos?|gasolina|thinner|tiner|acido|amoniaco|pila|pilas|bateria|"
    r"baterias|tylenol|acetaminofen|paracetamol|ibuprofeno|advil|aspirinas?|insulina|fentanilo|fentanyl|droga|drogas|"
    r"cocaina|perico|xanax|clonazepam|alcohol con pastillas|vape|liquido de vape|capsula|capsulas|frasco)"
)

SPANISH_RULES: Tuple[Tuple[str, str, str], ...] = (
    # --- suicidio y autolesiones (988 + 911) ---
    ("suicide", "quiero morir", r"\b(?:quiero|quiere|queria|quisiera|ojala|deseo|desea|ganas de|pienso en|piensa en|pensando en|planeando|planea|voy a|va a|me voy a|se va a|se quiere|me quiero|nos queremos) (?:\w+ )?(?:morir|morirme|morirse|matarme|matarse|suicidar\w*|quitarme la vida|quitarse la vida|desaparecer para siempre|dejar de existir|no despertar|ahorcarme|ahorcarse|colgarme|tirarme|aventarme|cortarme las venas)\b"),
    ("suicide", "suicidio", r"\bsuicid\w*\b(?! (?:prevencion|preventivo|prevention|awareness|training|walk))|\bautolesion\w*\b|\bme corto (?:los brazos|las piernas|las venas|yo sola|yo solo)\b"),
    ("suicide", "quitarse la vida", r"\b(?:quitarme|quitarse|quitarle|acabar con|terminar con) (?:la|mi|su) (?:propia )?vida\b|\bacabar con todo\b|\bterminar con todo\b|\b(?:me|se) (?:quiero|quiere|queria|voy a|va a) matar\b|\bme mato\b|\bmatarme\b"),
    ("suicide", "no quiero vivir", r"\b(?:ya )?no (?:quiero|quiere|queremos|puedo|puede) (?:seguir )?(?:vivir|viviendo|vivir asi|estar aqui|estar vivo|estar viva|seguir|seguir aqui|existir|despertar|mas con esto|aguantar mas)\b|\bno vale la pena (?:vivir|seguir)\b|\bmejor (?:muerto|muerta|me muero)\b|\b(?:estarian|estan|estarias) mejor sin mi\b|\bya no aguanto mas\b.{0,60}\b(?:adios|despedir|arreglado|pastillas|morir|vida)\b"),
    ("suicide", "autolesion", r"\b(?:cortandome|me corte (?:a proposito|los brazos|las piernas|las venas|las munecas)|me estoy cortando|me quiero cortar|quemandome|me queme a proposito|hacerme dano|me hago dano|lastimarme|me lastimo|me estoy lastimando|golpeandome)\b|\bse (?:esta )?(?:cortando|corto) (?:los brazos|las venas|las munecas)\b|\b(?:encerro|encerrado|encerrada) (?:\w+ ){0,4}(?:navaja|cuchillo|pastillas|pistola|soga)\b"),
    ("suicide", "despedida", r"\b(?:ya )?(?:deje|tengo) todo (?:arreglado|en orden|listo)\b.{0,80}\b(?:adios|gracias por todo|despedirme|perdon)\b|\b(?:me quiero|quiero|vengo a) despedir\w*\b|\bregale (?:mis cosas|todo|a mi perro|mi perro)\b|\badios para siempre\b|\bcuiden a mis hijos\b"),
    # --- envenenamiento (Poison Help) ---
    ("poisoning", "trago algo", r"\b(?:se|me|le) (?:tomo|tome|trago|trague|bebio|bebi|comio|comi|metio|dio|di|dieron|inyecto) (?:\w+ ){0,5}" + _SUBSTANCE + r"\b|\b" + _SUBSTANCE + r"\b.{0,30}\b(?:se (?:lo|la|los|las) (?:tomo|trago|comio|bebio)|se (?:tomo|trago|comio|bebio))\b"),
    ("poisoning", "sobredosis", r"\b(?:sobredosis|sobre dosis|sobredosifico|intoxicad[oa]|intoxicacion|intoxico|envenenad[oa]|envenenamiento|envenenando|monoxido|olor a gas y|mareado por el gas)\b"),
    ("poisoning", "demasiadas", r"\b(?:demasiadas|muchas|un monton de|todas (?:las|mis|sus)|(?:\d{2,}|veinte|treinta|cuarenta|cincuenta)) (?:\w+ )?(?:pastillas|pildoras|tabletas|capsulas|medicinas)\b|\b(?:doble|triple) dosis\b|\bse tomo (?:el|un) frasco\b|\bmezcl[eo] (?:\w+ ){0,2}cloro\b"),
    # --- violencia (911) ---
    ("violence", "me pega", r"\b(?:me|nos|le|la|lo) (?:esta |estan |sigue |quiere |quieren |va a |van a )?(?:pegando|pegar|golpeando|golpear|ahorcando|ahorcar|amenazando|amenazar|matar|violando|violar|apunalar|disparar|acuchillar|lastimar|arrastrando|encerrando|siguiendo)\b(?! (?:si|cuando) (?:llego|no))|\b(?:me|nos|le|la|lo) (?:pego|golpeo|amenazo|apunalo|disparo|violo|acuchillo|ahorco|empujo|encerro)\b"),
    ("violence", "arma", r"\b(?:tiene|trae|saco|con|agarro|apuntando con) (?:una |un |su )?(?:pistola|arma|cuchillo|navaja|machete|rifle|escopeta)\b|\b(?:balacera|balazo|baleado|balearon|disparos|apunalad[oa]|acuchillad[oa]|tiroteo)\b"),
    ("violence", "miedo", r"\b(?:tengo miedo|me da miedo|miedo de) (?:de )?(?:que me (?:mate|pegue|haga algo)|mi (?:esposo|pareja|novio|marido|ex))\b|\bno (?:me siento|estoy) (?:segura?|a salvo) (?:en (?:mi )?casa|con el|con ella)\b|\bviolencia (?:domestica|familiar|intrafamiliar)\b|\b(?:abusando|abuso) de (?:mi|mi hija|mi hijo|la nina|el nino)\b|\bme (?:quiere|quieren) matar\b|\bnos (?:va|van) a matar\b|\b(?:voy a|quiero) matar(?:lo|la|los)\b|\balguien (?:esta )?(?:entrando|se metio|quiere entrar) (?:a|en) (?:mi )?casa\b"),
    # --- peligros: fuego, gas, choque ---
    ("hazard", "fuego", r"\b(?:se (?:esta )?(?:quemando|incendiando)|incendio|fuego en|humo en|esta saliendo humo|se prendio fuego|lleno de humo)\b(?!.{0,20}\b(?:simulacro|practica)\b)|\bhay (?:un |una )?(?:fuego|incendio|fire)\b|\b(?:fuga|olor|huele) (?:de |a )gas\b|\balarma de (?:monoxido|humo|gas) (?:esta )?(?:sonando|suena|sono)\b|\b(?:choque|chocamos|choco|nos chocaron|accidente de (?:carro|coche|auto|moto|trafico)|volcamos|atropell\w*)\b(?!.{0,40}\b(?:hace|el ano pasado|la semana pasada|seguro|factura)\b)|\b(?:se (?:esta )?ahogando|ahogandose|se ahogo en|atrapad[oa]s?|electrocut\w*|inundando|inundacion)\b"),
    # --- emergencias medicas (911) ---
    ("breathing", "no puede respirar", r"\bno (?:puedo|puede|podemos|pueden|podia|logro|logra) (?:\w+ )?respirar\b|\b(?:me|le|nos) (?:falta|faltaba) (?:el )?aire\b|\b(?:dificultad|problemas?) (?:para|al) respirar\b|\bse (?:esta )?(?:ahogando|asfixiando|atragantando|atraganto)\b|\batragant\w*\b|\b(?:labios|boca|cara) (?:\w+ )?(?:morad[oa]s?|azul(?:es)?)\b|\bno (?:esta )?respira\b|\bdejo de respirar\b|\bataque de asma\b"),
    ("cardiac", "dolor de pecho", r"\b(?:dolor|presion|opresion|apreton|ardor) (?:\w+ ){0,3}(?:de|en el|del) pecho\b|\b(?:me|le|nos) (?:duele|dolia|aprieta|oprime|arde) (?:\w+ ){0,2}(?:el )?pecho\b|\bpecho (?:\w+ ){0,2}(?:apretado|duele|dolor|presion|pesado)\b|\b(?:infarto|ataque (?:al |del )?corazon|ataque cardiaco|paro cardiaco)\b|\b(?:dando|haciendo|hacer|necesito hacer) (?:rcp|cpr|respiracion boca a boca)\b"),
    ("stroke", "derrame", r"\b(?:derrame|embolia|ataque cerebral|infarto cerebral)\b|\b(?:cara|boca) (?:\w+ )?(?:caida|chueca|torcida|de lado|paralizada|dormida)\b|\b(?:arrastra|arrastrando) (?:las )?palabras\b|\bno (?:puede|puedo) (?:hablar|mover) (?:bien|el brazo|la pierna|un lado|el lado)\b|\b(?:un|el) lado (?:\w+ ){0,3}(?:dormido|paralizado|no (?:lo )?(?:puede|puedo) mover|sin fuerza)\b|\bhabla (?:raro|chistoso|enredado|sin sentido)\b"),
    ("seizure", "convulsion", r"\b(?:convulsion\w*|convulsiona\w*|ataque epileptico|le (?:esta )?dando (?:un )?ataque|esta temblando y no (?:responde|reacciona)|ojos (?:volteados|en blanco)|echando espuma)\b"),
    ("unconscious", "desmayo", r"\b(?:se desmayo|desmayad[oa]|se (?:cayo|desplomo) y no\b|inconsciente|no (?:despierta|reacciona|responde|se mueve)|perdio (?:el )?conocimiento|no (?:lo|la|le) puedo despertar|no tiene pulso|se desvanecio)\b|\bme (?:estoy desmayando|voy a desmayar)\b"),
    ("bleeding", "sangrado", r"\b(?:sangra|sangrando|sangro|sangre)\b.{0,30}\b(?:mucho|mucha|no para|no se detiene|no deja de|por todos lados|a chorros|sin parar|demasiad[oa])\b|\b(?:mucha|bastante|un chorro de|charco de) sangre\b|\bno (?:para|deja) de sangrar\b|\bhemorragia\b|\b(?:vomitando|vomito|tosiendo|escupiendo) sangre\b|\b(?:cortada|herida) (?:muy )?(?:profunda|grande|fea)\b|\bse (?:corto|rebano|amputo) (?:el|un|los) dedos?\b"),
    ("anaphylaxis", "alergia grave", r"\b(?:se me|se le|se) (?:esta )?(?:cierra|cerrando|hincha|hinchando|inflama|inflamando|hincho|inflamo) (?:\w+ )?(?:la )?(?:garganta|lengua|cara|boca|labios)\b|\b(?:garganta|lengua|labios) (?:\w+ )?(?:hinchad[oa]s?|inflamad[oa]s?|cerrad[oa]s?)\b|\breaccion alergica (?:grave|fuerte|severa)\b|\b(?:anafila\w*|choque anafilactico)\b|\b(?:use|usamos|le puse|le di) (?:el |la |su )?epi ?pen\b"),
    ("pregnancy", "embarazo", r"\b(?:embarazada|semanas de embarazo|meses de embarazo)\b.{0,80}\b(?:sangr\w*|no se mueve|dolor (?:muy )?fuerte|contracciones|se me rompio la fuente|rompi fuente|dolor de cabeza fuerte)\b|\b(?:se me rompio|se le rompio|rompi|rompio) (?:la )?fuente\b|\b(?:el|mi) bebe no se (?:mueve|ha movido)\b|\bno siento (?:al|a mi) bebe\b|\bestoy perdiendo (?:al|a mi) bebe\b|\baborto espontaneo\b"),
    ("blood_sugar", "azucar", r"\b(?:azucar|glucosa)\b.{0,40}\b(?:\d{2,3}|muy (?:alta|baja)|bajisima|altisima|por los cielos|no (?:sube|baja))\b.{0,60}\b(?:confundid[oa]|mareado|mareada|desmay\w*|sudando|temblando|no responde|vomit\w*|no despierta)\b|\b(?:coma|choque) diabetico\b|\bcetoacidosis\b"),
    ("general", "emergencia", r"\b(?:es una emergencia|emergencia medica|llamen? (?:al |a la )?(?:911|ambulancia)|necesito (?:una )?ambulancia|manden (?:una )?ambulancia|(?:me|se) (?:estoy|esta) muriendo|se (?:va|me va) a morir|me voy a morir)\b|\bvamos (?:camino )?(?:a|al) (?:urgencias|emergencias|hospital) (?:ahora|ya)\b"),
)
