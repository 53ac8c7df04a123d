"""Rule-based classification of prospects' replies, and the metrics to judge any reply classifier.

In production a small model (Llama 3 8B) sorts each LinkedIn reply into one of eight categories. Offline we
still need an answer that is deterministic, explainable and free, so the simulator answers the
`classify_reply` task with `classify_by_rules`; the same function gives the console a second opinion to show
next to the model's. `evaluate` and `load_labelled` score any classifier (rules or model) against the
labelled replies shipped in `data/replies_labelled.csv`.

How the rules work. A reply is cleaned (`clean_reply`), then folded (lower case, accents stripped, curly
apostrophes made straight) so one pattern covers "intéressé", "Interessé" and "interesse". Categories are
tried in a fixed priority order, because replies often carry more than one signal and the stronger intent
must win:

    do_not_contact > out_of_office > wrong_person > not_interested > schedule_call > request_info > interested

("Not interested, unsubscribe" is an opt-out; an auto-reply naming a colleague is still out of office; "not
interested" contains "interested".) Short whole-reply answers ("Yes!", "No.", "?", a lone emoji) are looked
up first, and weak heuristics (a bare question, a friendly emoji) are tried only when no pattern matched.

Confidence is a calibrated-by-hand score, not a probability: each pattern carries a base value, lowered
when a lower-priority category also matched (a conflict) and for long rambling replies; weak heuristics sit
around 0.5 and `unclear` stays below 0.5, so anything under ~0.5 should go to a person.

Every reply is untrusted text: nothing here evaluates it, and all regular expressions are linear on the
(already length-capped) input.
"""

from __future__ import annotations

import csv
import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from core.store.models import ReplyCategory

CATEGORIES: tuple[str, ...] = tuple(c.value for c in ReplyCategory)  # the codes, in the order pages show them

MAX_REPLY_CHARS = 4000

# Replies longer than this are usually rambling and mix several signals; their confidence is lowered.
_LONG_REPLY_CHARS = 600
_CONFLICT_PENALTY = 0.1
_LONG_PENALTY = 0.1
_EVIDENCE_CHARS = 80


@dataclass(frozen=True)
class RuleVerdict:
    category: str
    confidence: float  # 0..1; below ~0.5 means a person should look
    return_date: date | None  # out_of_office: the date they are back, when the text gives one
    referral: str | None  # wrong_person: the person (and/or e-mail) they point to, when named
    evidence: str  # short phrase that matched, for display


# --------------------------------------------------------------------------------------------------------
# Cleaning
# --------------------------------------------------------------------------------------------------------

# C0/C1 controls except \t and \n, format characters (zero-width spaces and joiners, bidi overrides and
# isolates, soft hyphen, BOM, invisible math operators, tag characters), lone surrogates, private-use
# code points, noncharacters and the replacement character left behind by bad decoding.
_INVISIBLE_RE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f"
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f"
    "\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164"
    "\ud800-\udfff\ue000-\uf8ff\ufe00-\ufe0e\ufeff\uffa0\ufff0-\ufffd\uffff"
    "\U000e0000-\U000e0fff\U000f0000-\U0010ffff]"
)
# Gmail/Outlook/Apple quote headers ("On Mon, 3 Mar 2025, Ana <a@b.c> wrote:") in the languages the rules
# know; the header may wrap over two lines. Checked line by line to stay linear on hostile input.
_QUOTE_HEADER_START_RE = re.compile(r"^[ \t]*(?:On|Am|Le|El|Em)\b", re.IGNORECASE)
_QUOTE_HEADER_END_RE = re.compile(
    r"(?:wrote|a écrit|escribió|escreveu)\s*:|\bschrieb\b.*:\s*$",  # German puts the name after the verb
    re.IGNORECASE,
)
_QUOTE_HEADER_MAX_CHARS = 400
_ORIGINAL_MESSAGE_RE = re.compile(
    r"^[ \t]*-{2,}\s*(?:Original Message|Forwarded message|Ursprüngliche Nachricht|Message d'origine"
    r"|Mensaje original|Mensagem original)\s*-{2,}",
    re.IGNORECASE | re.MULTILINE,
)
_WHITESPACE_RE = re.compile(r"\s+")
# Anything past this many characters cannot reach the output once control characters and runs of
# whitespace are squeezed out, except in pathological inputs made almost entirely of invisible
# characters; capping first keeps cleaning of multi-megabyte pastes fast.
_PRECUT_CHARS = MAX_REPLY_CHARS * 50


def clean_reply(text: str) -> str:
    """Return the reply's own words on one line, at most MAX_REPLY_CHARS long.

    Removes control and invisible characters (zero-width spaces, bidi overrides, BOMs, private-use and
    replacement characters), drops the quoted previous message (everything from an "On ... wrote:" header
    or an "Original Message" separator on, and every line that starts with ">"), collapses all whitespace
    to single spaces and cuts the result. Never raises on a str; anything else is turned into its str().
    """
    if not isinstance(text, str):
        text = str(text)
    text = text[:_PRECUT_CHARS].replace("\r\n", "\n").replace("\r", "\n")
    text = _INVISIBLE_RE.sub("", text)
    found = _ORIGINAL_MESSAGE_RE.search(text)
    if found:
        text = text[: found.start()]
    kept: list[str] = []
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if _QUOTE_HEADER_START_RE.match(line):
            headers = [line] if index + 1 == len(lines) else [line, f"{line} {lines[index + 1]}"]
            if any(
                len(header) <= _QUOTE_HEADER_MAX_CHARS and _QUOTE_HEADER_END_RE.search(header) for header in headers
            ):
                break  # everything from here on is the quoted previous message
        if not line.lstrip().startswith(">"):
            kept.append(line)
    text = "\n".join(kept)
    text = _WHITESPACE_RE.sub(" ", text).strip()
    return text[:MAX_REPLY_CHARS].rstrip()


# --------------------------------------------------------------------------------------------------------
# Folding: one lower-case, accent-free view of the text, with a map back to the cleaned text
# --------------------------------------------------------------------------------------------------------

_PUNCT_FOLD = {
    "\u2018": "'", "\u2019": "'", "\u201b": "'", "\u02bc": "'", "\u0060": "'", "\u00b4": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00ab": '"', "\u00bb": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2212": "-",
    "\u00a0": " ", "\u202f": " ",
}  # fmt: skip


@functools.lru_cache(maxsize=4096)
def _fold_char(ch: str) -> str:
    if ch in _PUNCT_FOLD:
        return _PUNCT_FOLD[ch]
    lowered = ch.casefold()  # "ß" -> "ss"
    decomposed = unicodedata.normalize("NFKD", lowered)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _fold(text: str) -> tuple[str, list[int]]:
    """Fold `text`; the list maps each folded index (and one past the end) to an index in `text`."""
    parts: list[str] = []
    index_map: list[int] = []
    for i, ch in enumerate(text):
        folded = _fold_char(ch)
        parts.append(folded)
        index_map.extend([i] * len(folded))
    index_map.append(len(text))
    return "".join(parts), index_map


# --------------------------------------------------------------------------------------------------------
# Dates
# --------------------------------------------------------------------------------------------------------


def _numbered_names(groups: tuple[str, ...], start: int) -> dict[str, int]:
    """{"january": 1, "jan": 1, ...} from space-separated synonyms, one group per number."""
    return {name: number for number, names in enumerate(groups, start=start) for name in names.split()}


# Folded month and weekday names in English, German, French, Spanish and Portuguese.
_MONTHS: dict[str, int] = _numbered_names(
    (
        "january jan januar janner janvier enero janeiro",
        "february feb februar fevrier febrero fevereiro",
        "march mar marz marzo mars marco",
        "april apr avril abril",
        "may mai mayo maio",
        "june jun juni juin junio junho",
        "july jul juli juillet julio julho",
        "august aug aout agosto",
        "september sep sept septembre septiembre setiembre setembro",
        "october oct oktober octobre octubre outubro",
        "november nov novembre noviembre novembro",
        "december dec dezember decembre diciembre dezembro",
    ),
    start=1,
)
_MONTH_ALT = "|".join(sorted(_MONTHS, key=len, reverse=True))

_WEEKDAYS: dict[str, int] = _numbered_names(
    (
        "monday montag lundi lunes segunda-feira",
        "tuesday dienstag mardi martes terca-feira",
        "wednesday mittwoch mercredi miercoles quarta-feira",
        "thursday donnerstag jeudi jueves quinta-feira",
        "friday freitag vendredi viernes sexta-feira",
        "saturday samstag samedi sabado",
        "sunday sonntag dimanche domingo",
    ),
    start=0,  # date.weekday(): Monday is 0
)
_WEEKDAY_ALT = "|".join(sorted(_WEEKDAYS, key=len, reverse=True))

_ISO_DATE_RE = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
_DAY_MONTH_RE = re.compile(
    r"\b(\d{1,2})(?:st|nd|rd|th|er|º|o)?\.?\s*(?:de\s+|of\s+)?(" + _MONTH_ALT + r")\b\.?"
    r"(?:,?\s*(?:de\s+)?(\d{4})\b)?"
)
_MONTH_DAY_RE = re.compile(r"\b(" + _MONTH_ALT + r")\.?\s+(\d{1,2})(?:st|nd|rd|th)?\b(?!:)(?:,?\s*(\d{4})\b)?")
# 12/03, 12.03., 12/03/2025, 12.3.25 -- but not times ("3.30pm", "15.30 Uhr") or version-like runs.
_NUMERIC_DATE_RE = re.compile(
    r"(?<![\d/.:])(\d{1,2})([/.])(\d{1,2})(?:\2(\d{4}|\d{2}))?(?![\d/]|\.\d|\s?(?:am|pm|h\b|uhr|%))"
)
_WEEKDAY_RE = re.compile(r"\b(" + _WEEKDAY_ALT + r")\b")
_TOMORROW_RE = re.compile(r"\b(?:tomorrow|demain)\b")
# Words that introduce the end of an absence; a date right after one of them is the return date.
_RETURN_CUE_RE = re.compile(
    r"\b(?:until|till|til|through|thru|back|return|returning|returns|bis|zuruck|wieder|ab"
    r"|jusqu'?a[u]?|retour|hasta|regreso|regresare|vuelvo|volvere|ate|volto|retorno|retorna)\b"
)


def _reference_day(received: date | None) -> date:
    return received if received is not None else datetime.now(UTC).date()


def _make_date(year: int | None, month: int, day: int, reference: date) -> date | None:
    try:
        if year is not None:
            return date(year + 2000 if year < 100 else year, month, day)
        candidate = date(reference.year, month, day)
        if candidate < reference:
            candidate = date(reference.year + 1, month, day)
        return candidate
    except ValueError:  # 31/02, 29 February in a common year, month 13
        return None


def _explicit_dates(folded: str, reference: date) -> list[tuple[int, date]]:
    found: list[tuple[int, int, date]] = []

    def add(start: int, end: int, value: date | None) -> None:
        if value is None:
            return
        if any(start < other_end and other_start < end for other_start, other_end, _ in found):
            return  # already covered by a more specific format
        found.append((start, end, value))

    for m in _ISO_DATE_RE.finditer(folded):
        add(m.start(), m.end(), _make_date(int(m.group(1)), int(m.group(2)), int(m.group(3)), reference))
    for m in _DAY_MONTH_RE.finditer(folded):
        year = int(m.group(3)) if m.group(3) else None
        add(m.start(), m.end(), _make_date(year, _MONTHS[m.group(2)], int(m.group(1)), reference))
    for m in _MONTH_DAY_RE.finditer(folded):
        year = int(m.group(3)) if m.group(3) else None
        add(m.start(), m.end(), _make_date(year, _MONTHS[m.group(1)], int(m.group(2)), reference))
    for m in _NUMERIC_DATE_RE.finditer(folded):
        first_text, separator, second_text, year_text = m.groups()
        dotted_short = separator == "." and not year_text and not folded.startswith(".", m.end())
        if dotted_short and (len(first_text) < 2 or len(second_text) < 2):
            continue  # "2.5" is a number; "4.5." and "04.05" are dates
        first, second = int(first_text), int(second_text)
        day, month = (second, first) if second > 12 >= first else (first, second)
        year = int(year_text) if year_text else None
        add(m.start(), m.end(), _make_date(year, month, day, reference))
    return sorted((start, value) for start, _end, value in found)


def _pick_return(folded: str, candidates: list[tuple[int, date]]) -> date | None:
    if not candidates:
        return None
    for start, value in candidates:
        if _RETURN_CUE_RE.search(folded[max(0, start - 40) : start]):
            return value
    return candidates[-1][1]  # "from 2 to 9 May": the last date named ends the absence


def _extract_from_folded(folded: str, received: date | None) -> date | None:
    reference = _reference_day(received)
    explicit = _pick_return(folded, _explicit_dates(folded, reference))
    if explicit is not None:
        return explicit
    relative: list[tuple[int, date]] = []
    for m in _WEEKDAY_RE.finditer(folded):
        ahead = (_WEEKDAYS[m.group(1)] - reference.weekday()) % 7 or 7
        relative.append((m.start(), reference + timedelta(days=ahead)))
    for m in _TOMORROW_RE.finditer(folded):
        relative.append((m.start(), reference + timedelta(days=1)))
    return _pick_return(folded, sorted(relative))


def extract_return_date(text: str, received: date | None = None) -> date | None:
    """The date a reply says its writer is back, or None when it names none.

    Understood: ISO dates (2025-03-12); day and month name in English, German, French, Spanish and
    Portuguese ("12 March", "12th of March", "12. März", "1er mars", "12 de marzo de 2025"); month name
    then day ("March 12th, 2025"); numeric dates ("12/03", "12.03.2025"), read day-first as in most of
    Europe unless the second number cannot be a month ("03/25" is 25 March); weekday names ("back on
    Monday") and "tomorrow", counted forward from `received` (a weekday equal to the received day means a
    week later). Explicit dates beat weekday names, so "returning Monday 4 November" gives 4 November.

    When several dates appear, the first one after a cue such as "until", "back", "returning", "bis",
    "jusqu'au", "hasta" or "até" wins, otherwise the last one. "Until 3 March" gives 3 March as written.
    A date without a year that falls before `received` moves to the next year. When `received` is None,
    today's UTC date is the reference. Impossible dates (31/02) are ignored.
    """
    folded, _ = _fold(clean_reply(text))
    return _extract_from_folded(folded, received)


# --------------------------------------------------------------------------------------------------------
# Classification rules
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rule:
    pattern: re.Pattern[str]
    confidence: float


def _rules(confidence: float, *patterns: str) -> list[_Rule]:
    return [_Rule(re.compile(p), confidence) for p in patterns]


_WD = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|mon|tue|tues|wed|thu|thurs|fri)"
_CONTACT_VERB = (
    r"(?:message|messaging|contact|contacting|email|e-mail|emailing|write|writing|text|dm|reach out"
    r"|ping|pitch|spam|bother|send|sending)"
)

_STRONG: dict[str, list[_Rule]] = {
    "do_not_contact": _rules(
        0.95,
        r"\bunsubscrib\w*",
        r"\bremove (?:me|my (?:name|email|e-mail|details|data|contact|profile|address))\b",
        r"\btake me off\b",
        r"\b(?:stop|quit|cease)\s+(?:\w+\s+)?(?:messag|contact|email|e-mail|writ|spamm|send|pitch|harass"
        r"|bother|dm)",
        r"\b(?:don'?t|do not|never|dont)\s+(?!hesitate)(?:\w+\s+)?" + _CONTACT_VERB + r"\s+(?:\w+\s+)?(?:me|us)\b"
        r"(?!\s+(?:know|if|a|the|more|your|some|an|over)\b)",
        r"\bopt(?:ed|ing)? ?out\b",
        r"\bleave me alone\b",
        r"\bno (?:more|further) (?:messages|emails|e-mails|contact|outreach|pitches|dms)\b",
        r"\b(?:report|reported|reporting|flag|flagged|flagging|mark|marked|marking)\b.{0,25}\bspam\b",
        r"\bblock(?:ed|ing)? (?:you|this|your)\b",
        r"\b(?:delete|erase|remove) (?:all )?(?:of )?my (?:data|details|information|info|personal)\b",
        r"\b(?:don'?t|do not) (?:want|wish) to (?:be contacted|receive|hear from)\b",
        r"\bdo not contact\b",
        r"^stop\W*$",
        r"\bplease stop\b",
        # German
        r"\bentfernen sie mich\b",
        r"\bmich (?:bitte )?(?:aus|von) (?:ihrer|ihren|der|dem|eurer) (?:liste|verteiler|datenbank|kartei)",
        r"\bnicht mehr (?:kontaktieren|anschreiben|schreiben|an)",
        r"\bkeine (?:weiteren )?(?:nachrichten|mails|e-mails|anfragen) mehr\b",
        r"\b(?:abmelden|austragen)\b",
        r"\bloschen sie (?:meine|bitte meine) daten\b",
        # French
        r"\bdesabonn\w*",
        r"\bdesinscri\w*",
        r"\bne (?:me )?contactez plus\b",
        r"\bne plus me (?:contacter|solliciter|ecrire)\b",
        r"\bretirez[- ]moi\b",
        r"\bsupprimez (?:mes|moi)",
        # Spanish
        r"\bno me (?:contactes|contacte|contacten|escribas|escriba|escriban|envies|envie|mandes) mas\b",
        r"\bda(?:r|rme|me|nos)\s+de baja\b",
        r"\belimin\w+ de (?:su|tu|la|vuestra|sus) (?:lista|base|listas)",
        r"\bborr\w+ (?:mis datos|de (?:su|tu|la) lista)",
        # Portuguese
        r"\bnao me (?:contate|contacte|contatem|envie|mande|escreva)\w* mais\b",
        r"\bremova[- ]me\b",
        r"\bme remova\b",
        r"\bdescadastr\w*",
        r"\bpare de me (?:enviar|mandar|contatar|contactar|escrever)\b",
        r"\bdeixe[- ]me em paz\b",
    ),
    "out_of_office": _rules(
        0.9,
        r"\bout of (?:the )?office\b",
        r"\booo\b",
        r"\bauto(?:matic|mated)?[- ]?(?:reply|response|responder)\b",
        r"\b(?:i am|i'm|im|currently|i will be|i'll be|will be)\s+(?:currently\s+)?(?:away|out|off)"
        r"\s+(?:from|until|till|on|for|through|this|next)\b",
        r"\b(?:i am|i'm|im|currently|i will be|i'll be|will be)\s+(?:currently\s+)?on\s+(?:my\s+)?"
        r"(?:annual\s+|parental\s+|maternity\s+|paternity\s+|sick\s+|medical\s+|extended\s+|a\s+)?"
        r"(?:leave|vacation|holiday|holidays|pto|sabbatical|business trip|the road|a trip|honeymoon)\b",
        r"\b(?:parental|maternity|paternity|sick|medical|annual|bereavement|extended) leave\b",
        r"\blimited (?:access to (?:email|e-mail|my inbox|messages|linkedin)|connectivity)\b",
        r"\baway from (?:my desk|the office|email|e-mail|my inbox|linkedin)\b",
        r"\b(?:i will|i'll|will) (?:be )?(?:back|return|returning)\b(?! to you| in touch)"
        r".{0,30}\b(?:on|in|from|after|at)\b",
        r"\b(?:i'm|i am|we are) (?:back|returning) (?:on|in the office)\b",
        r"\breturning (?:to the office )?on\b",
        r"(?<!me )(?<!you )(?<!us )(?<!him )(?<!her )\b(?:back|returning|i return|return date|zuruck|wieder da"
        r"|de retour|de volta|de regreso|regreso)(?:\s+(?:on|in the office|at my desk|in office|from|by|am|le|el"
        r"|em|no dia|a partir de|the))*\s+(?:\d{1,4}\b|" + _WEEKDAY_ALT + "|" + _MONTH_ALT + r")\b",
        # German
        r"\bnicht im (?:buro|haus)\b",
        r"\babwesen(?:d|heit)",
        r"\b(?:im |in )?urlaub\b",
        r"\belternzeit\b",
        r"\bausser haus\b",
        r"\bwieder (?:im buro|erreichbar)\b",
        # French
        r"\babsente? (?:du bureau|jusqu)",
        r"\b(?:je suis |actuellement )?en (?:conge|conges|vacances|deplacement)\b",
        r"\bde retour (?:le|au bureau|a partir)\b",
        # Spanish
        r"\bfuera de (?:la )?oficina\b",
        r"\bde vacaciones\b",
        r"\b(?:estoy|estare) ausente\b",
        r"\bde baja (?:por|de) (?:maternidad|paternidad|enfermedad)\b",
        # Portuguese
        r"\bfora do escritorio\b",
        r"\bde ferias\b",
        r"\b(?:estou|estarei) ausente\b",
        r"\blicenca[- ](?:maternidade|paternidade|medica)\b",
    ),
    "wrong_person": _rules(
        0.85,
        r"\b(?:not|n't|nt)\s+(?:\w+\s+)?(?:the\s+|a\s+)?(?:right|best|correct|appropriate|relevant|ideal)"
        r"\s+(?:person|contact|one|guy|team|department|people|person to talk to)\b",
        r"\bwrong (?:person|contact|guy|department|team|inbox)\b",
        r"\b(?:is|are|'s|would be) (?:the|your) (?:right|best|better|correct|proper) (?:person|contact|one|people"
        r"|team)\b",
        r"\bno longer (?:work|with|at|employed|part of|in (?:this|that) role|handle|responsible)\b",
        r"\b(?:i've|i have|i) (?:left|moved on from)\b(?! (?:a|you|it|my|the (?:message|note))\b)",
        r"\b(?:don'?t|do not|dont) (?:work (?:at|for|there|in)|handle|manage|deal with|look after|make"
        r" (?:those|these|the|that|this|purchasing|buying))\b",
        r"\b(?:not|isn'?t|n't) (?:\w+ )?(?:my|in my) (?:area|department|call|decision|remit|wheelhouse"
        r"|responsibility|field|team|domain)\b",
        r"\bnot (?:in charge|responsible for|the (?:decision[- ]?maker|buyer|one who))\b",
        r"\b(?:you(?:'d| would| might| may| should| will|'ll)?\s+(?:be better off|want to|need to|should"
        r"|have more luck|best)|(?:better|best) (?:to|would be to))\s+(?:\w+\s+)?(?:reaching out|reach out"
        r"|contacting|contact|talking|talk|speaking|speak|asking|ask|trying|try|emailing|email|pinging|ping)\b"
        r"(?:\s+(?:to|with))?\s+(?!me\b|us\b|about\b|more\b|further\b|soon\b|next\b|again\b|then\b|later\b)",
        # "try my colleague", but not the writer's own plan ("let me talk to my boss", "I need to ask our CFO")
        r"(?<!me )(?<!i'll )(?<!i will )(?<!to )(?<!i'd )(?<!i )"
        r"\b(?:try|contact|reach out to|talk to|speak to|speak with|ask|email|ping) (?:my|our) (?:colleague"
        r"|boss|manager|team|head|cto|ceo|cfo|coo|vp|director|procurement|purchasing|it|hr|marketing|sales"
        r"|founder|co-founder|partner)",
        r"(?<!who )(?<!who's )\b(?:handles|handled by|owns (?:this|that)|is responsible for|is in charge of"
        r"|takes care of"
        r"|looks after|decides on|makes (?:those|these|the) decisions)\b",
        r"\b(?:forwarded|have forwarded|i'm forwarding) (?:this|your message|it|you|your note)(?: on| along)? to\b",
        r"\bpass(?:ed|ing)? (?:this|it|your message|your note) (?:on|along) to\b",
        r"\b(?:i'm|i am) (?:now )?(?:retired|no longer)\b",
        # German
        r"\bnicht (?:der|die) (?:richtige|passende)n? (?:ansprechpartner|person|kontakt)",
        r"\bnicht (?:mehr )?zustandig\b",
        r"\bfalsche(?:n|r)? (?:ansprechpartner|person|kontakt)",
        r"\bwenden sie sich (?:bitte )?an\b",
        r"\bnicht mehr bei\b",
        # French
        r"\bpas (?:la bonne|le bon|la personne|le contact|l'interlocuteur) (?:personne|interlocuteur|contact)?",
        r"\bne (?:suis|travaille) (?:pas|plus) (?:en charge|responsable|la bonne|le bon|chez|pour)\b",
        r"\bje ne m'occupe pas\b",
        r"\bcontactez plutot\b",
        # Spanish
        r"\bno soy (?:la persona|el contacto|quien)\b",
        r"\bya no trabajo\b",
        r"\bno me encargo\b",
        r"\b(?:contacta|contacte|contactar|escribe|escriba|hable|habla) (?:a|con) (?:mi|nuestr)",
        # Portuguese
        r"\bnao sou a pessoa\b",
        r"\bnao (?:trabalho|estou) mais\b",
        r"\bfale com (?:o|a|meu|minha|nosso|nossa)\b",
    ),
    "not_interested": _rules(
        0.88,
        r"\bnot\s+(?:(?!sure\b|certain\b|if\b|whether\b)\w+\s+){0,2}interest\w*",
        r"\b(?:no|zero|little) interest\b",
        r"\bnot\s+(?:really\s+|too\s+|that\s+|very\s+|so\s+|at all\s+)?(?:keen|open to|convinced|excited|a fan"
        r"|needed|relevant|for us)\b",
        r"\b(?:don't|do not|dont) have (?:the )?(?:time|bandwidth|capacity|budget)\b",
        r"\bno time\b",
        r"\bnot for (?:us|me|now|our team)\b",
        r"\bno,? thank(?:s|\s+you)\b",
        r"\b(?:thanks?(?: you)?|gracias|merci|danke|obrigad[oa]),? (?:but|pero|mais|aber|mas) no\b",
        r"\b(?:we're|we are|were|i'm|i am|im)\s+(?:all\s+|pretty\s+|already\s+)?(?:good|set|covered|sorted|fine)"
        r"(?:\s+(?:for now|here|on that front|thanks|thank you))?\s*(?:[.,!;]|$)",
        r"\balready (?:have|use|using|work with|working with|partner|got|signed|has|built|invested)\b",
        r"\bhappy with (?:our|my|the) (?:current|existing|present|own)\b",
        r"(?:\bnot|n't) (?:looking|in the market|a (?:good |great )?fit|a priority|relevant|the right time|right now"
        r"|at (?:this|the) (?:time|moment)|something we need|for me|for us)\b",
        r"\b(?:don't|do not|dont|doesn't|does not|won't|will not)\s+(?:really\s+)?(?:need|want|have (?:the )?"
        r"budget|see (?:a|the) fit|think (?:so|this|it|we|that))\b",
        r"\bno (?:budget|need|capacity|bandwidth)\b",
        r"\b(?:we'll|we will|i'll|i will|gonna|going to) pass\b",
        r"\b(?:pass on (?:this|that)|hard pass|i pass)\b",
        r"\b(?:politely |respectfully )?decline\b",
        r"\bnot at this (?:time|point|stage)\b",
        r"\bnot now\b",
        r"\bout of budget\b",
        r"\bmaybe (?:later|next (?:year|quarter))\b",
        r"\b(?:reach out|try|ping|circle back|check back|follow up|contact)\b.{0,20}\b(?:next (?:year|quarter)"
        r"|in (?:q[1-4]|\d+ months|a few months|six months|the new year)|later this year)",
        # sarcasm and annoyance
        r"\boh,? (?:great|wonderful|fantastic|joy|perfect|lovely)\b",
        r"\bwow,? (?:another|more)\b",
        r"\bjust what (?:i|we) (?:needed|wanted|was missing)\b",
        r"\byet another\b",
        r"\banother (?:ai|automated|cold|sales|generic|spammy|bot|robot|templated|copy)\b",
        r"\b(?:written|sent|generated) by (?:a |an )?(?:bot|ai|robot|chatgpt|gpt|machine)\b",
        r"\bnice try\b",
        r"\bhow (?:original|creative|personal)\b",
        r"\bspam\b",
        r"\bcopy[- ]?paste",
        r"(?:🙄|😒|🥱|🤦)",
        # German
        r"\bkein(?:e|en)? (?:interesse|bedarf)\b",
        r"\bnicht interessiert\b",
        r"\bnein,? danke\b",
        r"\bdanke,? (?:aber )?(?:nein|kein)",
        # French
        r"\bpas (?:du tout )?interess\w*",
        r"\bne m'interesse pas\b",
        r"\bnon,? merci\b",
        r"\bpas (?:besoin|pour nous|pour moi)\b",
        # Spanish
        r"\bno (?:me|nos) interesa\b",
        r"\bno (?:estoy|estamos) interesad\w*",
        r"\bno,? gracias\b",
        r"\bno necesitamos\b",
        # Portuguese
        r"\bnao (?:tenho|temos) interesse\b",
        r"\bnao (?:estou|estamos) interessad\w*",
        r"\bnao,? obrigad\w*",
        r"\bsem interesse\b",
        r"\bnao precisamos\b",
    ),
    "schedule_call": _rules(
        0.85,
        r"\bcalendly\b",
        r"\bcalendar (?:link|invite|invitation)\b",
        r"\b(?:send|share|drop)\b.{0,25}\b(?:invite|invitation|calendar|meeting link|zoom link|teams link"
        r"|booking link|scheduling link)\b",
        r"\b(?:book|schedule|set up|setup|arrange|organi[sz]e|find|grab|hop on|jump on|have|get on|do)\s+"
        r"(?:a |an |some )?(?:quick |short |brief |\d+[- ]?min(?:ute)?s? |intro |call |zoom |teams )?"
        r"(?:call|time|meeting|chat|demo|slot|zoom|session)\b",
        r"\b(?:call|meeting|chat|demo|talk)\b.{0,25}\b(?:works|work for me|suits|is fine)\b",
        r"\b(?:" + _WD + r"|tomorrow|next week|this week)\b.{0,30}\b(?:\d{1,2}(?::\d{2})?\s?(?:am|pm)\b"
        r"|\d{1,2}:\d{2}|morning|afternoon|works|work for|free|suits)",
        r"\b\d{1,2}(?::\d{2})?\s?(?:am|pm)\b.{0,30}\b(?:works|work|ok|okay|suits|fine)\b",
        r"\b(?:i'm|i am|we're|we are|im)\s+(?:free|available)\b",
        r"\b(?:see|get|want|like|book) a (?:quick |short |live )?demo\b",
        r"\b(?:let's|lets|happy to|glad to|would love to|love to|can we|could we|shall we|want to|keen to)\s+"
        r"(?:\w+\s+)?(?:talk|chat|speak|meet|connect|jump on|hop on|get on|set up|schedule|book)\b",
        r"\b(?:what|which) (?:time|day|slot)s? (?:works|work|suits)\b",
        r"\bwhen (?:are you|is a good time|works|would work|can we)\b",
        r"\b(?:your|my) availability\b",
        r"\bgive me a (?:call|ring)\b",
        r"\b(?:call|ring|phone) me\b",
        # German
        r"\btermin\w*",
        r"\b(?:telefonat|telefonieren|anruf|kurzes gesprach|videocall)\b",
        # French
        r"\b(?:rendez-vous|rdv|un appel|creneau|une visio|s'appeler)\b",
        # Spanish
        r"\b(?:llamada|agendar|agendemos|una reunion|videollamada)\b",
        # Portuguese
        r"\b(?:ligacao|uma reuniao|marcar (?:uma|a|um)|agendar|bate-papo)\b",
    ),
    "request_info": _rules(
        0.82,
        r"\b(?:send|share|forward|email|e-mail|drop|pass)\b.{0,30}\b(?:info|infos|information|details|pricing"
        r"|prices|price list|deck|slides|brochure|one[- ]pager|case stud\w*|overview|material|materials"
        r"|documentation|docs|whitepaper|examples?|video|website|proposal|quote|specs?|references?|samples?)\b",
        r"\b(?:how much|pricing|price|prices|costs?|quote|rates|fees|price tag|ballpark)\b",
        r"\bmore (?:info|infos|information|details|detail|context)\b",
        r"\btell me (?:a bit |a little )?more\b",
        r"\b(?:can|could) you (?:explain|elaborate|clarify|share)\b",
        r"\b(?:case stud|references|testimonials|integrat|api\b|gdpr|soc ?2|free trial|trial\b|per seat"
        r"|per user|roi\b)",
        r"\bhow does (?:it|this|that|your)\b",
        r"\bwhat (?:exactly )?(?:does|do) (?:it|you|your|this)\b",
        r"\b(?:curious|wondering) (?:how|what|about|whether|if)\b",
        r"\bdo you (?:have|offer|support|work with)\b",
        # German
        r"\bmehr (?:informationen|infos|details)\b",
        r"\b(?:unterlagen|preise|preis|kosten|was kostet|schicken sie mir|senden sie mir|infomaterial)\b",
        # French
        r"\bplus (?:d'info|d'informations|de details)\b",
        r"\b(?:tarif|tarifs|prix|combien|envoyez[- ]moi|documentation|plaquette)\b",
        # Spanish
        r"\bmas (?:informacion|info|detalles)\b",
        r"\b(?:precio|precios|cuanto cuesta|enviame|envieme|enviarme|mandame)\b",
        # Portuguese
        r"\bmais (?:informacoes|informacao|info|detalhes)\b",
        r"\b(?:preco|precos|quanto custa|me envi\w*|envie[- ]me|manda(?:r)? (?:mais )?material)\b",
    ),
    "interested": _rules(
        0.8,
        r"\binter(?:est|ested|esting|essant|essante|essado|essada|essiert|essa|esse|esado|esada|esa|esante)\b",
        r"\b(?:sounds|seems|looks)\s+(?:\w+\s+)?(?:good|great|interesting|promising|cool|useful|relevant"
        r"|intriguing|fun|nice|valuable)\b",
        r"\b(?:i'd|i would|we'd|we would|id)\s+(?:\w+\s+)?(?:love|like|be happy|be keen|be open|be glad)\b",
        r"\b(?:open to|keen|count me in|let's do (?:it|this)|why not|go ahead|please do)\b",
        r"\b(?:i'm|we're|i am|we are) in\s*(?:[.!,;]|$)",
        r"\b(?:absolutely|definitely|of course|certainly|for sure)\b",
        r"\b(?:yes|yeah|yep|yup)\b",
        r"(?<!not )(?<!n't )(?<!make )(?<!be )\bsure\b",
        r"\blove (?:to|this|it|the idea)\b",
        r"\b(?:curious|intrigued)\b",
        r"\bworth (?:a (?:look|try|shot|conversation)|exploring|discussing)\b",
        r"\b(?:makes sense|could be (?:useful|helpful|interesting|handy))\b",
        r"\blearn more\b",
        r"\bthis is (?:exactly|precisely)\b",
        r"\btiming is (?:good|great|perfect)\b",
        # German, French, Spanish, Portuguese
        r"\b(?:klingt (?:gut|spannend|interessant)|sehr gerne|gerne)\b",
        r"\b(?:avec plaisir|volontiers|pourquoi pas|ca me plait)\b",
        r"\b(?:suena (?:bien|interesante)|por supuesto|con gusto|me encantaria)\b",
        r"\b(?:parece (?:otimo|interessante|bom)|com certeza|tenho interesse|adoraria)\b",
    ),
}

_PRIORITY: tuple[str, ...] = (
    "do_not_contact",
    "out_of_office",
    "wrong_person",
    "not_interested",
    "schedule_call",
    "request_info",
    "interested",
)

# Whole-reply answers (folded, surrounding punctuation and emoji removed).
_SHORT_ANSWER_GROUPS: tuple[tuple[str, float, str], ...] = (
    ("interested", 0.75, "yes|yes please|yeah|yep|yup|sure|sure thing|absolutely|definitely|interested"
     "|i'm interested|go for it|deal|let's go|please|ja|ja gerne|oui|si|sim|claro|gerne|d'accord|bien sur"
     "|why not|sounds good|sounds great|of course|count me in|love it|cool"),
    ("not_interested", 0.82, "no|nope|nah|no way|nein|non|nao|pass|no thanks|no thank you|not interested"
     "|not now|not really|never|no gracias|nee"),
    ("unclear", 0.35, "ok|okay|k|kk|thanks|thank you|thx|ty|noted|hm|hmm|huh|what|who|who are you|lol|haha"
     "|hello|hi|hey|merci|danke|gracias|obrigado|obrigada|test|maybe|perhaps|idk|seen|vielleicht|peut-etre"
     "|quizas|talvez"),
)  # fmt: skip
_SHORT_ANSWERS: dict[str, tuple[str, float]] = {
    answer: (category, confidence)
    for category, confidence, answers in _SHORT_ANSWER_GROUPS
    for answer in answers.split("|")
}

_POSITIVE_EMOJI = "👍👌🙌🔥✅💯🤝😀😃😊🙂🚀👏"
_NEGATIVE_EMOJI = "👎🙅🛑⛔🚫"

# Weak heuristics, tried in order only when no strong pattern matched.
_CONFUSED_RE = re.compile(
    r"\b(?:who (?:is this|are you|is this from|gave you)|do (?:i|we) know (?:each other|you)|what is this"
    r"(?: about| regarding| re)?\b|what do you mean|i don'?t (?:understand|get it)|wrong (?:chat|thread)"
    r"|did you mean to|huh\b|ich verstehe nicht|je ne comprends pas|no entiendo|nao entendi)"
)
_QUESTION_RE = re.compile(
    r"\b(?:how|what|which|where|does|do|is|are|can|could|would|will|wie|was|comment|quel|quelle|como|que"
    r"|cual|qual)\b[^?]{0,120}\?"
)
_SHORT_CORE_RE = re.compile(r"^[\W_]+|[\W_]+$")


def _verdict(
    category: str,
    confidence: float,
    evidence: str = "",
    return_date: date | None = None,
    referral: str | None = None,
) -> RuleVerdict:
    return RuleVerdict(
        category=category,
        confidence=round(max(0.0, min(1.0, confidence)), 2),
        return_date=return_date,
        referral=referral,
        evidence=evidence[:_EVIDENCE_CHARS],
    )


def _first_match(folded: str, category: str) -> tuple[re.Match[str], _Rule] | None:
    for rule in _STRONG[category]:
        found = rule.pattern.search(folded)
        if found:
            return found, rule
    return None


def _mask(folded: str, category: str) -> str:
    """Blank every span the category's patterns match, so "not interested" does not also count as
    "interested" when looking for conflicting signals."""
    chars = list(folded)
    for rule in _STRONG[category]:
        for found in rule.pattern.finditer(folded):
            chars[found.start() : found.end()] = " " * (found.end() - found.start())
    return "".join(chars)


# --------------------------------------------------------------------------------------------------------
# Referrals
# --------------------------------------------------------------------------------------------------------

_EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}")
_REFERRAL_TRIGGER_RE = re.compile(
    r"\b(?:try|contact|reach out to|reach|talk to|speak to|speak with|ask|email|e-mail|ping|message|write to"
    r"|colleague|colleagues|coworker|co-worker|boss|manager|head of \w+|replacement|successor|instead"
    r"|kollegin|kollege|kollegen|ansprechpartner(?:in)?|wenden sie sich (?:bitte )?an|collegue|contactez|aupres de"
    r"|companera|companero|colega|hable con|habla con|contacta a|contacte a|fale com|procure)\b",
    re.IGNORECASE,
)
# "Lars Eriksen is the right person", "... but Lars Eriksen does", "Rahul Iyer handles that".
_NAME_BEFORE_RE = re.compile(
    r"\b([^\W\d_][\w'-]*(?:\s+(?:de|da|do|dos|van|von|der|del|la|le|di)?\s*[^\W\d_][\w'-]*){0,3})"
    r"\s*(?:,\s*)?(?:(?:is|would be|will be|ist|est|es|é)\s+(?:the|our|your|a|der|die|la|el|o)?\s*"
    r"(?:right|best|better|correct|proper|richtige|bonne|persona|pessoa|one)\b|does\b|handles\b|runs\b"
    r"|heads\b|owns\b|manages\b|looks after\b|is (?:in charge|responsible)\b)"
)
_NAME_STOPWORDS = {
    "i", "he", "she", "they", "we", "you", "it", "our", "my", "the", "a", "an", "this", "that", "his", "her",
    "their", "hi", "hello", "thanks", "thank", "please", "best", "regards", "cheers", "sorry", "head", "team",
    "sales", "marketing", "hr", "ceo", "cto", "cfo", "coo", "vp", "director", "manager", "lead",
    "procurement", "purchasing", "operations", "ops", "growth", "engineering", "finance", "founder",
    "mr", "ms", "mrs", "dr", "herr", "herrn", "frau", "mme", "m", "sr", "sra", "linkedin", "email", "e-mail",
    "instead", "she's", "he's", "they're", "bitte", "merci", "gracias", "obrigado", "also", "or",
    "and", "not", "but", "if", "at", "on", "in", "for", "to", "with", "from",
    *_WEEKDAYS, *(name for name in _MONTHS if len(name) > 3),
}  # fmt: skip
_CLAUSE_STARTERS = {"she", "he", "they", "who", "which", "that", "but", "and", "sie", "er", "elle", "il", "ela"}
_NAME_PARTICLES = {"de", "da", "do", "dos", "van", "von", "der", "del", "la", "le", "di"}
_TOKEN_RE = re.compile(r"[^\s,;:()<>\"]+")


def _name_tokens_from(text: str, start: int) -> str | None:
    """A run of capitalised words within the few tokens after `start`, skipping titles and fillers."""
    tokens = list(_TOKEN_RE.finditer(text, start))[:8]
    name: list[str] = []
    for index, token in enumerate(tokens):
        word = token.group(0)
        bare = word.strip(".!?'’-")
        if "@" in word or bare.lower() in _CLAUSE_STARTERS:
            break  # the e-mail is the referral, or a new clause ("..., she runs outbound") began
        if not name and index == 0 and bare.lower() in {"me", "us", "him", "her", "them"}:
            return None
        if bare and bare[0].isupper() and bare.lower() not in _NAME_STOPWORDS and "@" not in bare:
            if name and text[tokens[index - 1].end() : token.start()].strip():
                break  # punctuation between words ends the name
            name.append(bare)
            if word.endswith((".", "!", "?")):
                break  # end of sentence
            continue
        if name and bare.lower() in _NAME_PARTICLES:
            name.append(bare)
            continue
        if name:
            break
        if index >= 5 or word.endswith((".", "!", "?")):
            break
    while name and name[-1].lower() in _NAME_PARTICLES:
        name.pop()
    return " ".join(name) if name else None


def _find_referral(cleaned: str) -> str | None:
    emails = _EMAIL_RE.findall(cleaned)
    name: str | None = None
    for trigger in _REFERRAL_TRIGGER_RE.finditer(cleaned):
        name = _name_tokens_from(cleaned, trigger.end())
        if name:
            break
    if name is None:
        for found in _NAME_BEFORE_RE.finditer(cleaned):
            words = found.group(1).split()
            while words and (not words[0][0].isupper() or words[0].lower() in _NAME_STOPWORDS):
                words.pop(0)
            if words and all(w[0].isupper() or w.lower() in _NAME_PARTICLES for w in words):
                name = " ".join(words)
                break
    if name and emails:
        return f"{name} ({emails[0]})"
    if name:
        return name
    return emails[0] if emails else None


# --------------------------------------------------------------------------------------------------------
# The classifier
# --------------------------------------------------------------------------------------------------------


def _short_answer(folded: str, cleaned: str) -> RuleVerdict | None:
    core = _SHORT_CORE_RE.sub("", folded)
    if not core:
        if any(ch in _POSITIVE_EMOJI for ch in cleaned):
            return _verdict("interested", 0.6, cleaned)
        if any(ch in _NEGATIVE_EMOJI for ch in cleaned):
            return _verdict("not_interested", 0.6, cleaned)
        if "🙄" in cleaned or "😒" in cleaned:
            return _verdict("not_interested", 0.55, cleaned)
        return _verdict("unclear", 0.2, cleaned)
    core = _WHITESPACE_RE.sub(" ", core)
    if core.endswith((" please", " thanks", " thank you", " merci", " danke", " gracias", " obrigado")):
        stripped = core.rsplit(" ", 2 if core.endswith("thank you") else 1)[0].rstrip(", ")
        if stripped in _SHORT_ANSWERS and _SHORT_ANSWERS[stripped][0] != "unclear":
            core = stripped
    if core in _SHORT_ANSWERS:
        category, confidence = _SHORT_ANSWERS[core]
        return _verdict(category, confidence, cleaned)
    return None


def classify_by_rules(text: str, received: date | None = None) -> RuleVerdict:
    """Classify one reply with hand-written rules (see the module docstring for the priority order).

    `received` is the day the reply arrived; it anchors relative return dates ("back Monday") and rolls
    year-less dates forward. Empty or whitespace-only text is `unclear` with confidence 0.
    """
    cleaned = clean_reply(text)
    if not cleaned:
        return _verdict("unclear", 0.0)
    folded, index_map = _fold(cleaned)

    short = _short_answer(folded, cleaned)
    if short is not None:
        return short

    for position, category in enumerate(_PRIORITY):
        matched = _first_match(folded, category)
        if matched is None:
            continue
        found, rule = matched
        confidence = rule.confidence
        rest = _mask(folded, category)
        conflicts = sum(1 for other in _PRIORITY[position + 1 :] if _first_match(rest, other) is not None)
        confidence -= min(conflicts, 3) * _CONFLICT_PENALTY
        if len(cleaned) > _LONG_REPLY_CHARS:
            confidence -= _LONG_PENALTY
        evidence = cleaned[index_map[found.start()] : index_map[found.end()]].strip()
        return_date = None
        referral = None
        if category == "out_of_office":
            return_date = _extract_from_folded(folded, received)
            if return_date is None:
                confidence -= 0.05
        elif category == "wrong_person":
            referral = _find_referral(cleaned)
            if referral is not None:
                confidence += 0.05
        return _verdict(category, confidence, evidence or cleaned, return_date, referral)

    confused = _CONFUSED_RE.search(folded)
    if confused:
        span = cleaned[index_map[confused.start()] : index_map[confused.end()]]
        return _verdict("unclear", 0.45, span)
    question = _QUESTION_RE.search(folded)
    if question:
        span = cleaned[index_map[question.start()] : index_map[question.end()]]
        return _verdict("request_info", 0.5, span)
    if any(ch in _POSITIVE_EMOJI for ch in cleaned):
        return _verdict("interested", 0.5, next(ch for ch in cleaned if ch in _POSITIVE_EMOJI))
    return _verdict("unclear", 0.3, cleaned)


# --------------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    """How a classifier did on labelled replies.

    `per_category[c]` holds "precision" (of the replies predicted c, the share truly c), "recall" (of the
    replies truly c, the share predicted c) and "support" (how many are truly c). A ratio whose
    denominator is zero (nothing predicted c, or nothing is truly c) is reported as 0.0, as is the
    accuracy of an empty evaluation. `confusion[true][predicted]` counts replies, with all 8x8 keys present.
    """

    n: int
    accuracy: float
    per_category: dict[str, dict[str, float | int]]
    confusion: dict[str, dict[str, int]]


def evaluate(pairs: Iterable[tuple[str, str]]) -> Evaluation:
    """Score (true category, predicted category) pairs; ValueError names the first pair that is not one."""
    confusion = {true: dict.fromkeys(CATEGORIES, 0) for true in CATEGORIES}
    n = 0
    for index, pair in enumerate(pairs, start=1):
        try:
            true, predicted = pair
        except (TypeError, ValueError):
            raise ValueError(f"pair {index}: expected (true, predicted), got {pair!r}") from None
        for role, value in (("true", true), ("predicted", predicted)):
            if value not in confusion:
                raise ValueError(
                    f"pair {index}: unknown {role} category {value!r}; expected one of {', '.join(CATEGORIES)}"
                )
        confusion[true][predicted] += 1
        n += 1
    correct = sum(confusion[c][c] for c in CATEGORIES)
    per_category: dict[str, dict[str, float | int]] = {}
    for category in CATEGORIES:
        support = sum(confusion[category].values())
        predicted_total = sum(confusion[true][category] for true in CATEGORIES)
        hits = confusion[category][category]
        per_category[category] = {
            "precision": hits / predicted_total if predicted_total else 0.0,
            "recall": hits / support if support else 0.0,
            "support": support,
        }
    return Evaluation(
        n=n,
        accuracy=correct / n if n else 0.0,
        per_category=per_category,
        confusion=confusion,
    )


_LABELLED_COLUMNS = ("text", "category", "received")


def load_labelled(path: Path) -> list[tuple[str, str, date | None]]:
    """Read a labelled-replies CSV (UTF-8, header `text,category,received`; received is YYYY-MM-DD or empty).

    Raises ValueError naming the file and line for a missing column, an unknown category or a bad date.
    """
    path = Path(path)
    rows: list[tuple[str, str, date | None]] = []
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            missing = [column for column in _LABELLED_COLUMNS if column not in header]
            if missing:
                raise ValueError(
                    f"{path}: line 1: header must contain {', '.join(_LABELLED_COLUMNS)}; missing {', '.join(missing)}"
                )
            for record in reader:
                line = reader.line_num
                text = record.get("text") or ""
                category = (record.get("category") or "").strip()
                if category not in CATEGORIES:
                    raise ValueError(
                        f"{path}: line {line}: unknown category {category!r}; expected one of {', '.join(CATEGORIES)}"
                    )
                raw_date = (record.get("received") or "").strip()
                received: date | None = None
                if raw_date:
                    try:
                        received = date.fromisoformat(raw_date)
                    except ValueError:
                        raise ValueError(
                            f"{path}: line {line}: received {raw_date!r} is not a date like 2025-03-14"
                        ) from None
                rows.append((text, category, received))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise ValueError(f"{path}: malformed CSV: {exc}") from None
    return rows
