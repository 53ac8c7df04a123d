"""The prompt-injection screen of prospect fields, in English and twelve other languages (:func:`screen_fields`).

Why this module exists: a headline such as "Ignore all previous instructions and ..." (or "Ignorez les
instructions précédentes ...") is aimed at the model that writes the message, so prospect fields are screened
*before* they reach a prompt (at import and again in the pipeline). The other-language override patterns are
also read by the instruction-echo guard (`core.messages.guards`), so a message carrying one fails there too.

Matching runs on folded variants of each value (`core.messages.textfold`): spaced-out letters joined,
punctuation runs collapsed, leetspeak undone, right-to-left overrides flipped, accents removed. Each pattern
carries its needles and is skipped when they are absent. ``InjectionFlag.detail`` is plain text for operators
(snippets shortened, control characters as ``\\uXXXX``, angle brackets as ``‹ ›``); render it as text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from core.messages.textfold import (
    _CONFUSABLE_KEYS,
    _any,
    _deaccent,
    _fold,
    _gates,
    _invisible_chars,
    _Needles,
    _open,
    _present,
    _snip,
)

__all__ = ["INJECTION_KINDS", "InjectionFlag", "screen_fields"]

INJECTION_KINDS = ("invisible_chars", "instruction_override", "role_tag", "template_syntax", "exfiltration")


@dataclass(frozen=True)
class InjectionFlag:
    """One suspicious finding in one prospect field (``kind`` is one of ``INJECTION_KINDS``)."""

    field: str
    kind: str
    detail: str



_OBJECTS = (
    r"(?:instructions?|prompts?|directions?|directives?|commands?|guidelines|guidance|programming|context"
    r"|guardrails|constraints|rules|messages?|text|content|everything)"
)
_EARLIER = r"(?:previous|prior|above|earlier|preceding|foregoing|original|initial|system)"
_SENTENCE_START = r"(?:^|(?<=[.!?;:\n\"'(\[\]>|*\-–—]))\s*"

_INJECTION_PATTERNS_EN: tuple[tuple[str, str, re.Pattern[str], _Needles], ...] = (
    ("instruction_override", "asks to ignore earlier instructions", re.compile(
        rf"\b(?:ignore|disregard|forget|override|overrule|bypass)\s*(?:all\s*|any\s*|of\s*)*"
        rf"(?:the\s*|your\s*|my\s*|these\s*|those\s*|its\s*)?{_EARLIER}\s*(?:{_OBJECTS}|(?=\s*(?:$|[.,;:!?\n])))"
        r"|\b(?:ignore|disregard|forget|override|bypass)\s*(?:all\s*|any\s*)?(?:of\s*)?(?:your|the|these|my)?\s*"
        r"(?:instructions|prompts?|programming|directives|guardrails|system\s*prompt)\b"
        r"|\b(?:ignore|disregard|forget)\s*(?:everything|all)\s*"
        r"(?:above|before|said|prior|you\s*(?:were|have\s*been)\s*told)"),
     _any("ignore", "disregard", "forget", "override", "overrule", "bypass")),
    ("instruction_override", "tries to give the model a new role", re.compile(
        rf"{_SENTENCE_START}you\s*are\s*now(?![a-z])"
        r"|\byou\s*are\s*now\s*(?:a|an|the|my|called|named|acting|playing|in\s*(?:developer|dan|god)|free|no\s*longer"
        r"|unrestricted|jailbroken|dan)(?![a-z])"
        r"|\bfrom\s*now\s*on,?\s*(?:you\s*(?:are|will|must|should|shall|have)|always|only|respond|reply|write"
        r"|answer)\b"
        r"|\b(?:pretend|imagine)\s*(?:that\s*)?(?:you\s*are|to\s*be|you're)\s*(?:an?\s*)?(?:ai|assistant|bot|model|different|unrestricted|dan)\b"
        r"|\b(?:act|behave)\s*as\s*(?:an?\s*)?(?:unrestricted|unfiltered|jailbroken|different)\s*(?:ai|assistant|model|bot)?\b"
        r"|\b(?:enable|activate|enter|switch\s*to)\s*(?:developer|dan|god|jailbreak|debug|admin)\s*mode\b"
        r"|\bdo\s*anything\s*now\b"),
     (("you", "now"), ("from", "now"), *_any("pretend", "imagine", "act", "behave", "mode", "anything"))),
    ("instruction_override", "announces new instructions", re.compile(
        r"\b(?:new|updated|revised|real|actual|true|important|additional|secret|hidden)\s*(?:system\s*)?"
        r"instructions?\s*[:\-–—]"
        r"|\b(?:here\s*are|these\s*are|follow)\s*(?:your|the|my)\s*new\s*instructions\b"
        r"|\byour\s*(?:new|real|actual|true)\s*(?:instructions\b|task\s*(?:is\b|:))"
        r"|\b(?:system|admin|developer|administrator)\s*override\b"),
     (*_any("instruction", "override"), ("your", "task"))),
    ("instruction_override", "addresses the model directly", re.compile(
        r"\b(?:attention|note\s*to|dear|hey|hello|hi|message\s*for|instructions?\s*for)\s*"
        r"(?:the\s*)?(?:ai|llm|gpt|chatgpt|assistant|bot|model|language\s*model|ai\s*assistant|ai\s*model)\s*[:,!\-]"
        r"|\bif\s*you(?:'re|\s*are)\s*(?:an?\s*)?(?:ai|llm|(?:large\s*)?language\s*model|ai\s*assistant|chatbot|gpt)"
        r"\s*(?:[,:;]|reading\b|(?:model|assistant|agent)\b)"
        r"|\b(?:respond|reply|answer)\s*(?:only\s*with|with\s*only|with\s*exactly|with\s*just)\b"
        r"|\b(?:say|write|output|print|type|reply|respond)\s*(?:exactly|verbatim)\b|\boutput\s*only\b"
        r"|\binstead,?\s*(?:write|say|output|reply|respond|print)\b"),
     (*_any("ai", "llm", "gpt", "assistant", "bot", "model", "exactly", "verbatim", "output", "instead"),
      ("if", "you"), ("respond", "with"), ("reply", "with"), ("answer", "with"))),
    ("role_tag", "fake chat role or special token", re.compile(
        rf"{_SENTENCE_START}(?:system|assistant|human)\s*:"
        r"|<\|[a-z_]{2,20}\|>|\[/?\s*inst\s*\]|<</?\s*sys\s*>>|</?s>|\[/?\s*(?:system|assistant|user)\s*\]"
        r"|</?\s*(?:system|assistant|user|instructions?|prompt|im_start|im_end)\s*>"
        r"|#{2,}\s*(?:system|assistant|user|instruction|instructions|response|human)\b"
        r"|\b(?:im_start|im_end|endoftext|start_header_id|end_header_id|eot_id)\b"),
     (("system", ":"), ("assistant", ":"), ("human", ":"), ("<", ">"),
      *_any("[", "##", "im_", "endoftext", "header_id", "eot_id"))),
    ("template_syntax", "template syntax in data", re.compile(r"\{\{|\}\}|\{%|%\}|\{#|\$\{|<%|%>"),
     _any("{", "}", "%")),
    ("exfiltration", "asks to reveal the prompt or secrets", re.compile(
        r"\b(?:reveal|print|show|repeat|output|display|leak|dump|expose|tell\s*me|give\s*me|share|return|send"
        r"|write\s*out|spell\s*out|recite|echo|translate|what\s*(?:is|are|were|was))\b[^.\n]{0,30}?"
        r"(?:\bsystem\s*prompt|\b(?:your|the)\s*(?:initial|original|hidden|secret|system|full|exact)?\s*"
        r"(?:prompt|instructions)\b|\byour\s*(?:rules|guidelines|directives|configuration)\b)"
        r"|\b(?:reveal|print|output|dump|leak|expose|tell\s*me|give\s*me|send\s*me)\b[^.\n]{0,30}?"
        r"\b(?:api[\s_\-]*keys?|passwords?|credentials|environment\s*variables|secret\s*keys?)"
        r"|\brepeat\b[^.\n]{0,20}?\b(?:everything|all|the\s*text|the\s*words|the\s*content)\b[^.\n]{0,20}?"
        r"\b(?:above|before|so\s*far|verbatim)"
        r"|\bsystem\s*prompt\s*(?:says|is|reads)\b"),
     _any("prompt", "instructions", "rules", "guidelines", "directives", "configuration", "key", "password",
          "credentials", "environment", "repeat")),
    ("exfiltration", "asks to put a link or data in the output", re.compile(
        r"\b(?:include|add|insert|append|put|output|print|paste|embed|place)\s*(?:this|the|the\s*following|my|a|our)?"
        r"\s*(?:link|url|hyperlink)\b"
        r"|\b(?:include|add|insert|append|put|output|print|paste|embed|place)\b[^\n.]{0,30}?(?:https?://|www\.)"
        r"|\b(?:include|add|insert|append|say|write|mention|output|print|put)\b[^.\n]{0,60}?"
        r"\b(?:in|to|into|at\s*the\s*(?:end|start|beginning)\s*of)\s*(?:your|the)\s*"
        r"(?:reply|response|output|answer|generated\s*(?:message|text))\b"
        r"(?!\s*(?:time|rate|team|workflow|process|plan|strateg|capabilit))"
        r"|\b(?:end|start|begin|sign|finish)\s*(?:your|the|each|every)\s*(?:reply|response|output|answer|message)s?"
        r"\s*(?:with|by)\b"
        r"|!\[[^\]\n]*\]\("
        r"|\b(?:send|post|forward|upload|exfiltrate|transmit|leak)\b[^.\n]{0,30}?\b(?:the|your|this|all)\s*"
        r"(?:conversation|prompt|instructions|context|chat\s*history|api\s*keys?|secrets?|credentials)\b"
        r"[^.\n]{0,40}?\bto\b"),
     _any("link", "url", "http", "www", "reply", "response", "output", "answer", "generated", "message", "![",
          "conversation", "prompt", "instructions", "context", "history", "key", "secret", "credentials")),
)  # fmt: skip

# --------------------------------------------------------------------------------------------------
# The screen in other languages
# --------------------------------------------------------------------------------------------------
# The common injection phrasings in French, Spanish, Portuguese, Italian, German, Dutch, Polish, Swedish,
# Danish/Norwegian, Romanian, Turkish and Russian (plus Chinese, Japanese and Korean for the "ignore the
# previous instructions" family). They run on the folded variants with accents removed ("précédentes" ->
# "precedentes"), so accents, case and spacing do not matter. Each family is anchored on a group of words
# that every match contains (the object "instructions" in its languages, "now", "reply", ...), and those
# words are its needles. Ordinary sales language is kept out by requiring an override verb *and* an
# instruction-like object, or an unmistakable construction ("nouvelles instructions :").


def _words(*items: str) -> str:
    return "(?:" + "|".join(items) + ")"


_SEP = r"[\s'\-]+"
# Articles, quantifiers, possessives and politeness words that may sit between a verb and its object.
_FILL = _words(
    "all", "any", "of", "the", "your", "my", "these", "those", "toutes?", "tous", "tout", "les?", "la", "l", "des?",
    "du", "vos", "votre", "tes", "ses", "mes", "ces", "leurs?", "todas?", "todos?", "las?", "los?", "el", "del",
    "tus?", "sus?", "mis?", "estas?", "esas?", "esos", "as", "os", "a", "o", "das", "dos", "suas?", "seus?",
    "tuas?", "teus?", "essas?", "tutte?", "tutti", "gli", "i", "il", "lo", "di", "delle", "degli", "dei", "tue?",
    "tuoi", "sue?", "suoi", "queste?", "questi", "alle[ns]?", "die", "der", "den", "dem", "deine[nrms]?",
    "ihre[nrms]?", "diese[nrms]?", "samtliche[n]?", "sie", "du", "het", "je", "jouw", "uw", "deze", "wszystkie",
    "wszystkich", "moje", "twoje", "alla", "dina", "dine", "toate", "bitte", "please", "svp", "por favor",
    "per favore", "moi", "mir", "me", "simplement", "einfach", "just", "maintenant", "ahora", "agora", "ora",
    "jetzt", "nu", "now", "y", "e", "et", "und", "en", "van", "ci", "ne", "nun", "tum", "butun", "wszystkich",
)
_FILLS = rf"(?:{_FILL}{_SEP}){{0,4}}"
# Objects: the ones that make an override on their own, and the ones that need an "earlier" word.
# (needle, word forms): each form contains its needle.
_OBJ_FORMS = (
    ("instr", r"instructions?|instrucciones|instruccion|instrucoes|instrucao|instruktion(?:en|er)?|instructies"
              r"|instructie|instrukcj\w*|instruksjon(?:er)?|instructiun\w*"),
    ("istruz", r"istruzion[ei]"), ("consign", r"consignes?"), ("anweis", r"anweisung(?:en)?"),
    ("prompt", r"prompts?|systemprompts?|systeemprompts?"),
    ("directiv", r"directives?|directivas?"), ("directric", r"directrices"),
    ("diret", r"diretrizes|diretivas?|direttive"),
    ("richtl", r"richtlinien|richtlijnen"), ("vorgab", r"vorgaben"), ("aanwijz", r"aanwijzingen"),
    ("wytyczn", r"wytyczn\w*"), ("polecen", r"polecen\w*"), ("talimat", r"talimat\w*"), ("yonerge", r"yonerge\w*"),
    ("indicac", r"indicaciones|indicacoes"), ("indicati", r"indications"), ("indicaz", r"indicazioni"),
    ("orientac", r"orientaciones|orientacoes"), ("befehl", r"befehle"),
    ("comand", r"comandos|comandi"), ("opdracht", r"opdrachten"), ("komut", r"komutlar\w*"),
)
_OBJ_STEMS = tuple(stem for stem, _ in _OBJ_FORMS)
_WEAK_STEMS = ("regl", "regel", "regol", "regra", "regul", "zasad", "kural")
_STRONG = _words(*(forms for _, forms in _OBJ_FORMS))
_WEAK = _words(*(stem + r"\w*" for stem in _WEAK_STEMS), r"messages?", "mensajes", "mensagens", "messaggi",
               "nachrichten", "berichten")
_EARLIER_ML = _words(
    r"precedent\w*", r"anterior\w*", r"previ[ao]s?", "ci dessus", "ci-dessus", "d'origine", r"initia\w*",
    r"inicia\w*", r"inizia\w*", r"origina\w*", "du systeme", "del sistema", "do sistema", "di sistema",
    "de arriba", "acima", "sopra", r"vorherig\w*", r"vorig\w*", r"bisherig\w*", r"obig\w*", r"vorangegangen\w*",
    r"vorangehend\w*", r"ursprunglich\w*", r"fruher\w*", "oben", "davor", r"eerder\w*", r"voorgaand\w*",
    r"bovenstaand\w*", r"oorspronkelijk\w*", "hierboven", r"poprzedni\w*", r"wczesniejsz\w*", r"powyzsz\w*",
    "tidigare", "tidligere", "foregaende", "ovanstaende", "ovenstaende", "ovenfor", "anterioare", "onceki",
    "yukaridaki", r"system\w*", "previous", "prior", "above", "earlier",
)
_NOT_BEFORE = r"(?<!\bne )(?<!\bn')(?<!\bno )(?<!\bnon )(?<!\bnao )(?<!\bnie )(?<!\bdon't )(?<!\bdo not )"
_NOT_AFTER = r"(?![\s'\-]+(?:pas|nicht|niet|nie|non|no|not)\b)"
_OVERRIDE_VERB = _words(
    # fr
    r"ignor\w*", r"zignor\w*", r"oubli\w*", r"neglige[zr]?", r"outrepass\w*", r"contourne[zr]?",
    "ne tiens pas compte", "ne tenez pas compte", "ne pas tenir compte", "fais abstraction", "faites abstraction",
    r"passe[zr]? outre", r"annule[zr]?", r"efface[zr]?",
    # es / pt / it
    r"olvid\w*", "haz caso omiso", "hagan caso omiso", "haga caso omiso", "no hagas caso", r"omit[ae]\w*",
    r"descart\w*", "pasa por alto", "pase por alto", r"esquec\w*", r"desconsider\w*", "deixe de lado",
    "nao leve em conta", r"dimentic\w*", "non considerare", "non tenere conto", r"trascur\w*", r"tralasci\w*",
    # de / nl
    r"vergi(?:ss|b)\w*", r"vergess\w*", r"missacht\w*", r"ueberspring\w*", r"uberspring\w*", r"ubergeh\w*",
    r"verwirf", r"nege(?:er|ren)\w*", r"verge(?:et|ten)\w*", "houd geen rekening", "negeer",
    # pl / sv / da / no / ro / en
    r"zapomnij\w*", r"pomin\w*", "glom", "glem", "bortse fran", "se bort fra",
    r"disregard\w*", r"forget\w*", "bypass", r"overrid\w*",
)
_VERB_AT = rf"\b{_NOT_BEFORE}{_OVERRIDE_VERB}{_NOT_AFTER}{_SEP}{_FILLS}"
_LATE_VERB = r"(?:ignor\w*|vergess\w*|negeren|yok say\w*|gormezden gel\w*|unut\w*|olvid\w*|dimentic\w*|oubli\w*)"
_OVERRIDE_STRONG = (
    # verb, fillers, (earlier), strong object: "ignorez toutes les instructions", "vergiss alle vorherigen Anweisungen"
    rf"{_VERB_AT}(?:{_EARLIER_ML}{_SEP}{_FILLS})?{_STRONG}\b"
    # object first (German infinitive, Turkish order): "vorherigen Anweisungen ignorieren"
    rf"|\b{_EARLIER_ML}{_SEP}(?:{_FILL}{_SEP})?{_STRONG}{_SEP}(?:zu{_SEP})?{_LATE_VERB}"
    # spaced-out text collapsed into one word: "ignorezlesinstructionsprecedentes"
    rf"|\b(?:ignor|oubli|olvid|esquec|dimentic|vergi|vergess|nege|zapomn)[a-z]{{0,30}}?"
    rf"(?:{'|'.join(_OBJ_STEMS)})[a-z]{{0,20}}?(?:precedent|anterior|previ|vorherig|vorig|eerder|poprzedn)"
)


def _override_weak(weak: str) -> str:
    return (
        # verb, fillers, object, earlier: "ignora las reglas anteriores", "olvida los mensajes previos"
        rf"{_VERB_AT}(?:{_STRONG}|{weak}){_SEP}(?:{_FILL}{_SEP}){{0,2}}{_EARLIER_ML}"
        # verb, fillers, earlier, weak object: "vergiss alle vorherigen Regeln"
        rf"|{_VERB_AT}{_EARLIER_ML}{_SEP}{weak}"
        rf"|\b{_EARLIER_ML}{_SEP}(?:{_FILL}{_SEP})?{weak}{_SEP}(?:zu{_SEP})?{_LATE_VERB}"
    )


_OVERRIDE_ML_RE = re.compile(f"{_OVERRIDE_STRONG}|{_override_weak(_WEAK)}")
# The message guard leaves out "messages" (fewer needles to look for in every message it checks).
_RULES = _words(*(stem + r"\w*" for stem in _WEAK_STEMS))
_OVERRIDE_ML_ECHO_RE = re.compile(f"{_OVERRIDE_STRONG}|{_override_weak(_RULES)}")
_OVERRIDE_ML_ECHO_NEEDLES = _any(*_OBJ_STEMS, *_WEAK_STEMS)
_OVERRIDE_ML_NEEDLES = _any(*_OBJ_STEMS, *_WEAK_STEMS, "messag", "mensaj", "mensag", "nachricht", "bericht")
# Everything said so far: "oublie tout ce qui précède", "olvida todo lo anterior", "vergiss alles davor".
_EVERYTHING_ML_RE = re.compile(
    rf"\b{_NOT_BEFORE}{_OVERRIDE_VERB}{_NOT_AFTER}{_SEP}(?:{_FILL}{_SEP}){{0,2}}"
    r"(?:tout ce qui|tout ce que|tout ce|todo lo|tudo o|tudo que|tutto quello|tutto cio|tutto quanto|alles was|alles"
    r"|allt|alt hvad|alt det|wszystko|toate)"
    r"[\s'\-]+(?:[\w']+[\s'\-]+){0,4}?(?:precede\w*|ci-dessus|ci dessus|dit\b|anterior\w*|arriba|acima|dicho\b|dito\b"
    r"|detto\b|sopra|oben|davor|bisher\w*|gesagt|hierboven|gezegd|ovan|ovenfor|powyzej|de mai sus)"
)
_EVERYTHING_ML_NEEDLES = _any("tout ce", "todo lo", "tudo", "tutto", "alles", "allt", "alt ", "wszystko", "toate")
# Chinese, Japanese, Korean and Russian "ignore the previous instructions" (run on the folded text).
_OVERRIDE_CJK_RE = re.compile(
    r"(?:忽略|忽视|无视|無視|忘记|忘掉|不要理会|不理会|不要遵守|跳过)\s*(?:掉)?\s*(?:你|您)?(?:之前|以前|先前|上面|上述|前面|以上|所有|全部|原来|原先)"
    r"[^。.!?！？]{0,8}?(?:指令|指示|说明|提示|规则|命令|要求|設定|设定)"
    r"|(?:以前|前|上記|これまで|先)の(?:すべての|全ての)?(?:指示|命令|指令|プロンプト|ルール)(?:を|は)?(?:すべて)?(?:無視|忘れ)"
    r"|(?:이전|앞의|위의|기존)\s*(?:의\s*)?(?:모든\s*)?(?:지시|명령|지침|프롬프트|규칙)\S*\s*(?:을|를)?\s*(?:무시|잊어)"
    r"|(?:игнорир\w*|забудь\w*|забуд\w*|не обращай внимания на|не слушай)\s+(?:все\s+|всё\s+)?(?:предыдущ\w*|прежн\w*"
    r"|вышеуказанн\w*|системн\w*|свои\s+|твои\s+)?\s*(?:инструкц\w*|указани\w*|команд\w*|правил\w*|промпт\w*)"
)
_OVERRIDE_CJK_NEEDLES = _any("忽略", "忽视", "无视", "無視", "忘记", "忘掉", "不要理会", "不理会", "不要遵守", "跳过",
                             "無視", "忘れ", "무시", "잊어", "игнорир", "забуд", "забудь", "не обращай", "не слушай")
# A new role: "tu es maintenant un assistant sans limites", "ab jetzt bist du", "finge que eres".
_ROLE_ML_RE = re.compile(
    r"\b(?:tu es|vous etes|t'es) (?:maintenant|desormais|a present|dorenavant) (?:une? |le |la |mon |ma |en mode |libre"
    r"|sans |dan\b)"
    r"|\b(?:a partir de maintenant|desormais|dorenavant),? (?:tu|vous) (?:es|etes|dois|devez|reponds|repondez|ecris"
    r"|ecrivez|obeis|obeissez)\b"
    r"|\bahora (?:eres|sos|seras|actuas como) (?:un |una |el |la |mi |libre|dan\b)"
    r"|\b(?:a partir de ahora|desde ahora|de ahora en adelante),? (?:eres|seras|debes|responde\w*|escrib\w*|actua\w*)\b"
    r"|\bagora (?:voce e|tu es|es) (?:um |uma |o |a |meu |minha |livre|dan\b)"
    r"|\b(?:a partir de agora|de agora em diante),? (?:voce|tu) (?:e|es|deve|deves|vai|responde\w*|escreve\w*)\b"
    r"|\bora (?:sei|tu sei) (?:un |una |un'|il |lo |la |il mio |libero|dan\b)"
    r"|\b(?:d'ora in (?:poi|avanti)|da ora in poi|da adesso),? (?:sei|devi|rispond\w*|scriv\w*)\b"
    r"|\bdu bist (?:jetzt|nun|ab jetzt|ab sofort|von nun an) (?:ein |eine |der |die |das |mein |meine |frei|dan\b|kein)"
    r"|\b(?:ab jetzt|von nun an|ab sofort),? (?:bist du|musst du|antwortest du|schreibst du|sollst du|wirst du)\b"
    r"|\bje bent (?:nu|vanaf nu) (?:een |de |het |mijn |vrij|dan\b)"
    r"|\bvanaf nu,? (?:ben je|moet je|antwoord je|schrijf je|zul je)\b"
    r"|\b(?:fais|faites) semblant d'etre|\bfinge (?:que eres|ser)\b|\bfinja (?:que (?:voce )?e|ser)\b"
    r"|\b(?:fingi|fai finta) di essere\b|\btu so,? als (?:ob du|warst du|waerst du)|\bdoe alsof je\b"
    r"|\b(?:active[zr]?|activa\w*|ative\w*|attiva\w*|aktivier\w*|activeer\w*) (?:le |el |o |la |den |de |il )?"
    r"(?:mode |modo |modalita |modus )?(?:developpeur|desarrollador|desenvolvedor|sviluppatore|entwickler\w*"
    r"|ontwikkelaar\w*|dan|jailbreak|dieu|dios|deus|admin\w*|debug)\b"
)
_ROLE_ML_NEEDLES = _any("maintenant", "desormais", "dorenavant", "a present", "ahora", "agora", "ora ", "d'ora",
                        "adesso", "du bist",
                        "ab jetzt", "von nun an", "ab sofort", "je bent", "vanaf nu", "semblant", "fing", "finj",
                        "finta", "als ob", "warst", "waerst", "alsof", "activ", "ativ", "attiv", "aktivier")
# A header that introduces new instructions, or the model's "real task": "Nouvelles instructions :".
_NEW_ML_HEADER = (
    r"\b(?:nouvelles?|nuevas?|novas?|nuove|nuova|neuen?|nieuwe|nowe|nya|nye|yeni|noi)\s+(?:instructions?|consignes"
    r"|instrucciones|instrucoes|instrucao|istruzioni|anweisungen|anweisung|instruktionen|instructies|instrukcje"
    r"|instruktioner|instruksjoner|talimatlar|instructiuni)\s*[:\-–—]"
    r"|\b(?:voici|voila|estas son|aqui (?:estan|estao|tens|tem)|hier sind|ecco|dit zijn|hier zijn|oto)\s+"
    r"(?:(?:tes|vos|tus|sus|suas|tuas|deine|ihre|le tue|le sue|je|jouw|uw|twoje)\s+)?(?:nouvelles?|nuevas?|novas?"
    r"|nuove|neuen?|nieuwe|nowe)\s+(?:instructions|consignes|instrucciones|instrucoes|istruzioni|anweisungen"
    r"|instructies|instrukcje)"
    r"|\bnovye instrukcii\s*:|\bновые инструкции\s*[:\-–—]"
)
_NEW_ML_HEADER_RE = re.compile(_NEW_ML_HEADER)
_NEW_ML_HEADER_NEEDLES = _any("instr", "istruz", "consign", "anweis", "talimat", "инструкц")
_NEW_ML_RE = re.compile(
    _NEW_ML_HEADER
    + r"|\b(?:ta|votre|tu|su|sua|deine|ihre|il tuo|je|jouw)\s+(?:vraie|veritable|verdadera|verdadeira|eigentliche"
    r"|wahre|vero|echte)\s+(?:tache|mission|tarea|mision|tarefa|missao|aufgabe|compito|taak|opdracht)\b"
)
_NEW_ML_NEEDLES = (*_NEW_ML_HEADER_NEEDLES,
                   *_any("vraie", "veritable", "verdadera", "verdadeira", "eigentliche", "wahre", "vero", "echte"))
# Speaks to the model: "Note à l'IA :", "Si eres una IA", "Antworte nur mit", "Réponds uniquement par oui".
_ADDRESS_ML_RE = re.compile(
    r"\b(?:note|nota|hinweis|opmerking|message|mensaje|mensagem|messaggio|nachricht|bericht|attention|atencion"
    r"|atencao|attenzione|achtung)\s+(?:a|pour|para|per|an|aan|voor|fur|for)\s+(?:l'|la |le |el |a |o |die |den "
    r"|de |het |il |lo )?(?:ia|ai|ki|llm|gpt|chatgpt|assistant\w*|asistente|assistente|bot|robot|modele|modelo"
    r"|modello|modell|model)\s*[:,!\-]"
    r"|\b(?:si tu es|si vous etes|si eres|si usted es|se voce e|se tu es|se sei|wenn du|falls du|als je|als u)\s+"
    r"(?:une? |una |uma |um |un'|eine? |een |ein )?(?:ia|ai|ki|llm|gpt|chatbot|modele de langage|modelo de lenguaje"
    r"|modelo de linguagem|modello linguistico|sprachmodell|taalmodel|assistant\w*|asistente|assistente)\b"
    r"|\b(?:repond\w*|respond\w*|contest\w*|antwort\w*|rispond\w*|antwoord\w*|ecri[st]\w*|escrib\w*|escrev\w*"
    r"|schreib\w*|scriv\w*|schrijf\w*)\s+(?:uniquement|seulement|solo|solamente|unicamente|apenas|somente|nur"
    r"|soltanto|alleen|enkel)\s+(?:par|avec|con|com|mit|met)\s+(?:le mot|la palabra|a palavra|das wort|la parola"
    r"|het woord|oui|si|sim|ja|yes|\"|'|«)"
)
_ADDRESS_ML_NEEDLES = (*_any("ia", "ai", "ki", "llm", "gpt", "assist", "asist", "bot", "model", "taalmodel"),
                       *_any("uniquement", "seulement", "solo", "solamente", "unicamente", "apenas", "somente",
                             "nur", "soltanto", "alleen", "enkel"))
# Asks for the prompt, keys or passwords, or for everything above to be repeated.
_SHOW_ML = _words(
    r"revele\w*", r"montre\w*", r"affiche\w*", r"donne\w*", "dis-moi", "dis moi", "ecris", r"repete\w*",
    r"imprime\w*", r"recite\w*", r"divulgue\w*", r"muestra\w*", r"revela\w*", "dime", "dame", "escribe",
    r"repite\w*", r"ensena\w*", r"mostr\w*", r"revel\w*", "diga-me", "me diga", "diz-me", r"repit\w*",
    r"escrev\w*", r"imprim\w*", "dimmi", "dammi", "ripeti", "scrivi", "stampa", r"rivela\w*", r"zeig\w*",
    r"verrat\w*", "gib", r"nenn\w*", r"wiederhol\w*", r"schreib\w*", r"offenbar\w*", "toon", "laat zien",
    r"onthul\w*", "geef", "herhaal", "schrijf", r"pokaz\w*", r"ujawnij\w*", r"visa", "vis",
)
_EXFIL_ML_RE = re.compile(
    rf"\b{_SHOW_ML}\b[^.\n]{{0,30}}?(?:\b(?:system)?prompt\w*|\bsysteemprompt\w*"
    r"|\b(?:tes|vos|tus|sus|suas|seus|tuas|teus|deine[n]?|ihre[n]?|tue|tuoi|je|jouw|uw|twoje)\s+(?:instructions"
    r"|consignes|instrucciones|instrucoes|istruzioni|anweisungen|instructies|instrukcje|regles|reglas|regras"
    r"|regole|regeln|regels|directives|directrices|diretrizes|richtlinien|richtlijnen)\b"
    r"|\b(?:les|las|as|le|die|de)\s+(?:instructions|consignes|instrucciones|instrucoes|istruzioni|anweisungen"
    r"|instructies)\s+(?:initiales|originales|originais|originali|ursprunglichen|oorspronkelijke|du systeme"
    r"|del sistema|do sistema|di sistema|cachees|secretes|ocultas|secretas|nascoste|segrete|geheimen|versteckten"
    r"|verborgen)"
    r"|\b(?:cle|clef|clave|chave|chiave)s?\s*(?:d'|de |di |do |da )?\s*(?:l')?api\b|\bapi[\s\-]*(?:schlussel|sleutel)"
    r"|\bmots? de passe\b|\bcontrasena\w*|\bsenhas?\b|\bpasswort\w*|\bkennwort\w*|\bwachtwoord\w*|\bidentifiants\b"
    r"|\bcredenciales\b|\bcredenciais\b|\bcredenziali\b|\bzugangsdaten\b|\binloggegevens\b"
    r"|\bvariables d'environnement\b|\bvariables de entorno\b|\bumgebungsvariablen\b)"
    r"|\b(?:repete\w*|repite\w*|repit[ae]\w*|ripet\w*|wiederhol\w*|herhaal\w*)\b[^.\n]{0,20}?\b(?:tout|todo|tudo"
    r"|tutto|alles|le texte|el texto|o texto|il testo|den text|de tekst)\b[^.\n]{0,25}?(?:precede|ci-dessus"
    r"|au-dessus|anterior|arriba|acima|sopra|oben|davor|hierboven|mot pour mot|palabra por palabra"
    r"|palavra por palavra|parola per parola|wort fur wort|woord voor woord)"
)
_EXFIL_ML_NEEDLES = _any("prompt", "instr", "istruz", "consign", "anweis", "regl", "regra", "regol", "regel",
                         "direc", "diret", "richtl", "api", "passe", "contrasen", "senha", "passwort", "kennwort",
                         "wachtwoord", "identifiant", "credencia", "credenzia", "zugangsdat", "inlogg",
                         "environnement", "entorno", "umgebungsvar", "repet", "repit", "ripet", "wiederhol", "herhaal")
# Asks to put a link or a text into the output: "ajoute ce lien dans ta réponse", "termina tu mensaje con".
_REPLY_ML = _words("reponse", "respuesta", "resposta", "risposta", "antwort", "antwoord", "mensaje", "mensagem",
                   "messaggio", "nachricht", "bericht", "message", "odpowiedz", "svar")
_LINK_ML_RE = re.compile(
    r"\b(?:ajoute\w*|inclu\w*|insere\w*|mets|mettez|colle\w*|integre\w*|anade\w*|agrega\w*|incluy\w*|inserta\w*"
    r"|pon|pega\w*|adicion\w*|insir\w*|coloqu\w*|aggiung\w*|inserisc\w*|metti|fug\w*|setz\w*|einfug\w*|voeg\w*"
    r"|zet|plak\w*|dodaj\w*)\b[^.\n]{0,30}?\b(?:lien|liens|enlace|enlaces|vinculo|link|links|url|collegamento"
    r"|hyperlien)\b"
    rf"|\b(?:ajoute\w*|inclu\w*|insere\w*|mets|mettez|ecri[st]\w*|mentionne\w*|anade\w*|agrega\w*|incluy\w*"
    r"|escrib\w*|menciona\w*|adicion\w*|escrev\w*|aggiung\w*|scriv\w*|menziona\w*|fug\w*|schreib\w*|erwahn\w*"
    r"|voeg\w*|schrijf\w*|vermeld\w*|dodaj\w*|napisz\w*)\b[^.\n]{0,60}?\b(?:dans|en|in|na|nella|no|im|w)\s+"
    rf"(?:ta|votre|tu|su|sua|tua|deine[rm]?|ihre[rm]?|je|jouw|uw|la|le|el|a|die|der|de|het|swojej|twojej)\s+{_REPLY_ML}\b"
    r"|\b(?:termine\w*|finis\w*|commence\w*|signe\w*|finaliza\w*|acaba\w*|empieza\w*|comienza\w*|firma\w*"
    r"|conclu\w*|beende\w*|beginne\w*|unterschreib\w*|eindig\w*|onderteken\w*|finisci|inizia|chiudi|zakoncz\w*)\s+"
    rf"(?:ta|votre|tu|su|sua|tua|deine|ihre|je|jouw|uw|chaque|cada|jede|ogni|elke|la|le|el|a|die|de|il|o)\s+"
    rf"{_REPLY_ML}s?\s+(?:par|avec|con|com|mit|met|por|en|with|by)\b"
)
_LINK_ML_NEEDLES = _any("lien", "enlace", "vinculo", "link", "url", "collegamento", "reponse", "respuesta",
                        "resposta", "risposta", "antwort", "antwoord", "mensaje", "mensagem", "messaggio",
                        "nachricht", "bericht", "message", "odpowiedz", "svar")

_MULTILINGUAL_PATTERNS: tuple[tuple[str, str, re.Pattern[str], _Needles], ...] = (
    ("instruction_override", "asks to ignore earlier instructions", _OVERRIDE_ML_RE, _OVERRIDE_ML_NEEDLES),
    ("instruction_override", "asks to ignore earlier instructions", _EVERYTHING_ML_RE, _EVERYTHING_ML_NEEDLES),
    ("instruction_override", "asks to ignore earlier instructions", _OVERRIDE_CJK_RE, _OVERRIDE_CJK_NEEDLES),
    ("instruction_override", "tries to give the model a new role", _ROLE_ML_RE, _ROLE_ML_NEEDLES),
    ("instruction_override", "announces new instructions", _NEW_ML_RE, _NEW_ML_NEEDLES),
    ("instruction_override", "addresses the model directly", _ADDRESS_ML_RE, _ADDRESS_ML_NEEDLES),
    ("exfiltration", "asks to reveal the prompt or secrets", _EXFIL_ML_RE, _EXFIL_ML_NEEDLES),
    ("exfiltration", "asks to put a link or data in the output", _LINK_ML_RE, _LINK_ML_NEEDLES),
)


_INJECTION_PATTERNS = _INJECTION_PATTERNS_EN + _MULTILINGUAL_PATTERNS
_INJECTION_NEEDLES, _INJECTION_GATES = _gates(needles for *_, needles in _INJECTION_PATTERNS)

# A second prefilter for the costly other-language override patterns: besides an object ("instructions"),
# a match always contains one of these pieces of an override verb. Looked for only once the first gate opened.
_ML_VERB_STEMS = (
    "ignor", "oubli", "neglige", "outrepass", "contourne", "compte", "abstraction", "e outre", "z outre", "r outre",
    "annule", "efface",
    "olvid", "omiso", "hagas caso", "omit", "descart", "por alto", "esquec", "desconsider", "de lado", "em conta",
    "dimentic", "considerare", "tenere conto", "trascur", "tralasci", "verg", "missacht", "berspring", "bergeh",
    "verwirf", "nege", "rekening", "zapomn", "pomin", "glom", "glem", "bortse", "se bort", "disregard",
    "forget", "bypass", "overrid", "yok say", "gormezden", "unut",
)  # fmt: skip
# Keyed by id: hashing a compiled pattern hashes its (long) source text on every lookup.
_SECOND_GATES: dict[int, tuple[str, ...]] = {
    id(pattern): _ML_VERB_STEMS for pattern in (_OVERRIDE_ML_RE, _OVERRIDE_ML_ECHO_RE, _EVERYTHING_ML_RE)
}


def _second_gate(pattern: re.Pattern[str], text: str) -> bool:
    stems = _SECOND_GATES.get(id(pattern))
    return stems is None or any(stem in text for stem in stems)


_SPACED_RUN_RE = re.compile(r"(?<![^\W_])(?:[^\W_][ \t._*·\-]+){2,}[^\W_](?![^\W_])")
# Runs of characters outside \w and the symbols the patterns look for become one space. A lone space is
# left out of the pattern: replacing it by a space would change nothing and costs a replacement per word.
_NON_WORD_RE = re.compile(r"[^\w\n'{}%#$<>|\[\]/: ][^\w\n'{}%#$<>|\[\]/:]*| [^\w\n'{}%#$<>|\[\]/:]+")
_DELEET_CHARS_RE = re.compile("[013457@$]")  # the keys of _DELEET
_DELEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})
_RLO_SEGMENT_RE = re.compile("[\u202e\u202b]([^\u202c\u2069\n]*)")


def _collapse_spaced(text: str) -> str:
    """ "i g n o r e" -> "ignore" (runs of three or more single characters split by spaces or dots)."""
    if _SPACED_RUN_RE.search(text) is None:  # the usual case, and a search is cheaper than a sub
        return text
    return _SPACED_RUN_RE.sub(lambda m: re.sub(r"[ \t._*·\-]+", "", m.group(0)), text)


def _variants(value: str) -> list[str]:
    """Folded readings of one field value that an attacker might rely on a model to understand."""
    base = _fold(value)
    variants = [base, _collapse_spaced(base)]
    variants.append(_NON_WORD_RE.sub(" ", variants[1]))  # "ignore...all_previous"
    if _DELEET_CHARS_RE.search(variants[-1]):
        variants.append(variants[-1].translate(_DELEET))  # "1gn0re"
    if "\u202e" in value or "\u202b" in value:
        # Right-to-left override: what a person sees is the reversed run; a model may read it either way.
        flipped = _RLO_SEGMENT_RE.sub(lambda m: f" {m.group(1)[::-1]} ", value)
        variants.append(_collapse_spaced(_fold(flipped)))
    if not value.isascii():
        variants.append(_deaccent(variants[2]))  # "précédentes" -> "precedentes" for the other languages
        if not _CONFUSABLE_KEYS.isdisjoint(value.casefold()):
            # Russian or Greek words read as themselves, not with their letters mapped to Latin look-alikes.
            variants.append(_deaccent(_NON_WORD_RE.sub(" ", _collapse_spaced(_fold(value, confusables=False)))))
    return list(dict.fromkeys(variants))


@lru_cache(maxsize=16384)
def _screen_value(value: str) -> tuple[tuple[str, str], ...]:
    """(kind, detail) per finding in one value, in ``INJECTION_KINDS`` order. Cached: an import repeats the
    same industries, titles, notes and news on many rows, and the answer depends on the value alone."""
    found: dict[str, str] = {}
    hidden = _invisible_chars(value)
    if hidden:
        codes = ", ".join(dict.fromkeys(f"U+{ord(ch):04X}" for ch in hidden))
        found["invisible_chars"] = f"{len(hidden)} invisible or direction-control character(s): {codes}"
    variants = _variants(value)
    # A needle found in this join is in at least one variant ("\x00" is in no needle and no variant).
    joined = variants[0] if len(variants) == 1 else "\x00".join(variants)
    present = _present(_INJECTION_NEEDLES, joined)
    for (kind, label, pattern, _), gate in zip(_INJECTION_PATTERNS, _INJECTION_GATES, strict=True):
        if not present:
            break  # every gate has at least one needle
        if kind in found or not _open(gate, present) or not _second_gate(pattern, joined):
            continue
        for variant in variants:
            match = pattern.search(variant)
            if match:
                found[kind] = f"{label}: {_snip(match.group(0).strip() or match.group(0))}"
                break
    return tuple((kind, found[kind]) for kind in INJECTION_KINDS if kind in found)


def screen_fields(fields: Mapping[str, str | None]) -> list[InjectionFlag]:
    """Flag prompt-injection attempts in prospect fields; ``[]`` means nothing suspicious was found.

    At most one flag per (field, kind), fields in the given order and kinds in ``INJECTION_KINDS`` order.
    Ordinary business language ("Ignored by competitors", "System integrator", "Assistant Professor",
    "new instructions for onboarding") is not flagged: overrides must target earlier instructions or the
    model itself, and "new instructions" only counts when it introduces something (``new instructions:``).
    """
    flags: list[InjectionFlag] = []
    for field, raw in fields.items():
        if raw is None:
            continue
        value = raw if isinstance(raw, str) else str(raw)
        flags.extend(InjectionFlag(field=field, kind=kind, detail=detail) for kind, detail in _screen_value(value))
    return flags
