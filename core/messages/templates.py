"""Outreach templates: parse, check, render with fallbacks, and pick one per prospect.

Templates are Liquid (python-liquid 2). Rendering is split in two so the cheap path stays cheap:

1. ``render`` fills *plain variables* (``{{ first_name }}``, custom fields) without any model, and
   leaves every *writing marker* (``{{ recent_achievement }}``, names listed in ``data/markers.json``)
   as an internal slot. A variable with no value and no ``default`` fallback never renders blank or as
   raw braces: it is reported in ``Rendered.missing`` so the pipeline can ask for data instead.
2. ``fill_markers`` puts the sentences a model wrote into the slots.

Rules worth knowing (they are the contract with the pipeline, the CLI and the console):

- A name is a *marker* exactly when it is a key of the markers mapping; every other global name is a
  plain variable. ``analyze`` cannot tell a typo from a custom field, so it only refuses bad syntax
  and misused markers. ``validate`` is the gate for templates a person saves: every name must be a
  marker or one of ``known_fields`` (prospect fields plus custom fields), otherwise it is refused as an
  "unknown marker or field" with a did-you-mean hint. An unknown name that reaches ``render`` anyway
  is just a missing variable, so it blocks the message rather than vanishing.
- A marker may only appear on its own, as ``{{ marker }}``: no filters, no properties, not inside a
  tag expression (``{% if recent_achievement %}`` would always be true, ``| upcase`` would mangle the
  slot). The model writes the whole sentence instead.
- Values are inserted as plain text and never re-evaluated, so a value such as ``"{{ x }}"`` or
  ``"{% raw %}"`` appears literally. None, empty and whitespace-only values count as missing, which
  is also when ``| default: "..."`` applies.
- ``required`` (static) is the set of variables output somewhere without a ``default`` fallback;
  variables only tested in ``{% if %}`` / ``{% unless %}`` / ``{% case %}``, or output only inside a
  block whose condition tests them (``{% if x %}{{ x }}{% endif %}``), are optional.
  ``Rendered.missing`` (dynamic) is what one render actually lacked, so a guarded
  ``{% if x %}{{ x }}{% endif %}`` does not block a prospect without ``x``.
- ``include`` and ``render`` tags are disabled (a template is one self-contained text), and loops and
  output size are capped so a template cannot stall a batch.

Each distinct template text is parsed once (LRU cache by text). Templates made only of text, plain
outputs and ``default`` fallbacks with a literal string (the usual case) are compiled to a flat plan
rendered without the Liquid interpreter; everything else goes through Liquid with a recording
``Undefined``. Both paths give the same result (the tests check it).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from liquid import BoundTemplate, Environment, RenderContext, Undefined
from liquid.ast import Node
from liquid.builtin.content import ContentNode
from liquid.builtin.expressions import FilteredExpression, PositionalArgument, StringLiteral
from liquid.builtin.expressions import Path as LiquidPath
from liquid.builtin.output import OutputNode
from liquid.exceptions import LiquidError
from liquid.expression import Expression
from liquid.token import Token

from core import datafiles

__all__ = [
    "SIZE_BANDS",
    "Rendered",
    "StepSpec",
    "TemplateError",
    "TemplateInfo",
    "TemplateSpec",
    "analyze",
    "fill_markers",
    "load_library",
    "load_markers",
    "load_steps",
    "preview_text",
    "render",
    "select_template",
    "size_band",
    "validate",
]


class TemplateError(ValueError):
    """A template cannot be used: bad syntax, a misused marker, or an unknown name."""


# --------------------------------------------------------------------------------------------------
# Slots. NUL never survives into a value (render strips it) and templates containing NUL are
# refused, so a slot can only come from this module.

_MARKER_SLOT = "\x00m:{}\x00"
_MISSING_SLOT = "\x00v:{}\x00"
# Also matches an upper-cased kind letter, so a missing-value slot that went through `upcase` is
# still shown as missing in previews.
_SLOT_RE = re.compile(r"\x00([mvMV]):([^\x00]+)\x00")
_MARKER_SLOT_RE = re.compile(r"\x00m:([^\x00]+)\x00")
_EXACT_SLOT_RE = re.compile(r"\x00[mv]:[^\x00]+\x00")
_MARKER_NAME_RE = re.compile(r"[a-z_][a-z0-9_]*")

# Names the Liquid Undefined was stringified for, during the current slow-path render.
_missing_seen: ContextVar[list[str] | None] = ContextVar("_missing_seen", default=None)


class _RecordingUndefined(Undefined):
    """Undefined that renders as a missing-value slot and records which name was needed."""

    __slots__ = ()

    def __str__(self) -> str:
        seen = _missing_seen.get()
        if seen is not None:
            seen.append(self.name)
        return _MISSING_SLOT.format(self.name)


class _OutreachEnvironment(Environment):
    # A connection note is 300 characters and a follow-up about 1,000: these caps only stop runaway
    # templates, they never bind a reasonable one.
    loop_iteration_limit = 1_000
    output_stream_limit = 20_000
    local_namespace_limit = 20_000

    def setup_tags_and_filters(self, *, extra: bool = False) -> None:
        super().setup_tags_and_filters(extra=extra)
        for tag in ("include", "render"):
            self.tags.pop(tag, None)


_ENV = _OutreachEnvironment(undefined=_RecordingUndefined)


# --------------------------------------------------------------------------------------------------
# Analysis


@dataclass(frozen=True)
class TemplateInfo:
    """What a template refers to."""

    variables: frozenset[str]  # plain variables referenced (first_name, company_name, custom ones...)
    markers: frozenset[str]  # writing markers referenced
    required: frozenset[str]  # variables output without a `default` fallback


def load_markers(path: Path) -> dict[str, str]:
    """Read marker name -> description of what the model writes (the description goes in prompts).
    Cached until the file changes (`core.datafiles`); do not change the result."""
    return datafiles.load(path, _markers_from)


def _markers_from(path: Path, raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"{path}: expected a non-empty JSON object of marker name -> description")
    markers: dict[str, str] = {}
    for name, description in raw.items():
        if not _MARKER_NAME_RE.fullmatch(name):
            raise ValueError(
                f"{path}: marker name {name!r} must be lower-case letters, digits and underscores"
            )
        if not isinstance(description, str) or not description.strip():
            raise ValueError(f"{path}: marker {name!r} needs a one-line description of what to write")
        markers[name] = " ".join(description.split())
    return markers


def _where(source: str, index: int | None) -> str:
    """' (line L, column C)' for a character index into a template, or '' when unknown."""
    if index is None or index < 0:
        return ""
    before = source[:index]
    line = before.count("\n") + 1
    col = index - (before.rfind("\n") + 1) + 1
    return f" (line {line}, column {col})"


def _token_where(token: Token | None) -> str:
    return _where(token.source, token.start_index) if token is not None else ""


def _syntax_error(exc: LiquidError) -> TemplateError:
    message = str(exc.message if exc.message is not None else type(exc).__name__)
    where = _token_where(exc.token) if exc.token is not None and exc.token.start_index >= 0 else ""
    if not where and message.startswith("expected tag end"):
        # Liquid reports an unclosed block at end of input, without a position.
        tag = message.removeprefix("expected tag end").split(",")[0]
        message += f" (a {{% {tag} %}} block is never closed with {{% end{tag} %}})"
    return TemplateError(f"template syntax error{where}: {message}")


def _paths(expr: Expression) -> Iterator[LiquidPath]:
    """Every variable path inside an expression, nested ones included."""
    if isinstance(expr, LiquidPath):
        yield expr
    for child in expr.children():
        yield from _paths(child)


@dataclass(frozen=True)
class _Parsed:
    """Marker-independent facts about one template text, cached by text."""

    template: BoundTemplate
    globals: tuple[tuple[str, int], ...]  # (name, index of first use) in order of appearance
    locals: frozenset[str]
    # (root name, index, kind) for every variable path: kind is "bare" (`{{ name }}` alone),
    # "output" (output/assign value without a `default` fallback), "fallback", "condition" or
    # "guarded" (output inside a block whose condition tests that same name).
    uses: tuple[tuple[str, int, str], ...]


def _classify_filtered(expr: FilteredExpression, bare_ok: bool) -> Iterator[tuple[LiquidPath, str]]:
    filters = expr.filters or []
    names = [f.name for f in filters]
    left_kind = "fallback" if "default" in names else "output"
    if bare_ok and not filters and isinstance(expr.left, LiquidPath) and len(expr.left.path) == 1:
        left_kind = "bare"
    for path in _paths(expr.left):
        yield path, left_kind
    for i, filter_ in enumerate(filters):
        # An argument is needed unless this filter is `default` or a later `default` catches it.
        kind = "fallback" if filter_.name == "default" or "default" in names[i + 1 :] else "output"
        for arg in filter_.children():
            for path in _paths(arg):
                yield path, kind


@lru_cache(maxsize=1024)
def _parse(text: str) -> _Parsed:
    if "\x00" in text:
        raise TemplateError("template contains a NUL character; remove it")
    try:
        template = _ENV.from_string(text)
        analysis = template.analyze(include_partials=False)
    except LiquidError as exc:
        raise _syntax_error(exc) from exc

    for name, spans in analysis.filters.items():
        if name not in _ENV.filters:
            raise TemplateError(f"unknown filter '{name}'{_where(text, spans[0].index)}")

    uses: list[tuple[str, int, str]] = []
    static_context = RenderContext(template)

    def visit(node: Node, guarded: frozenset[str]) -> None:
        tested: set[str] = set()
        for expr in node.expressions():
            if isinstance(expr, FilteredExpression):
                pairs: Iterable[tuple[LiquidPath, str]] = _classify_filtered(
                    expr, bare_ok=isinstance(node, OutputNode)
                )
            else:
                pairs = ((p, "condition") for p in _paths(expr))
            for path, kind in pairs:
                root = path.path[0]
                if not isinstance(root, str):
                    continue
                if kind == "condition":
                    tested.add(root)
                elif kind in ("bare", "output") and root in guarded:
                    kind = "guarded"
                uses.append((root, path.token.start_index, kind))
        # `{% if x %}...{{ x }}...{% endif %}`: the block only renders when x has a value.
        inner = guarded | tested if tested else guarded
        for child in node.children(static_context, include_partials=False):
            visit(child, inner)

    for node in template.nodes:
        visit(node, frozenset())

    first_use = [(name, min(v.span.index for v in variables)) for name, variables in analysis.globals.items()]
    first_use.sort(key=lambda item: item[1])
    return _Parsed(
        template=template,
        globals=tuple(first_use),
        locals=frozenset(analysis.locals),
        uses=tuple(uses),
    )


# Plan steps for the fast path: (kind, name_or_text, fallback).
_TEXT, _VAR, _MARKER = 0, 1, 2
_Plan = tuple[tuple[int, str, str | None], ...]


@dataclass(frozen=True)
class _Compiled:
    info: TemplateInfo
    parsed: _Parsed
    plan: _Plan | None  # None when the template needs the Liquid interpreter


def _fast_plan(parsed: _Parsed, markers: frozenset[str]) -> _Plan | None:
    plan: list[tuple[int, str, str | None]] = []
    for node in parsed.template.nodes:
        if type(node) is ContentNode:
            plan.append((_TEXT, node.text, None))
            continue
        if type(node) is not OutputNode:
            return None
        expr = node.expression
        if type(expr) is not FilteredExpression or type(expr.left) is not LiquidPath:
            return None
        path = expr.left.path
        if len(path) != 1 or not isinstance(path[0], str):
            return None
        name = path[0]
        filters = expr.filters or []
        if not filters:
            plan.append((_MARKER if name in markers else _VAR, name, None))
            continue
        if len(filters) != 1 or filters[0].name != "default" or len(filters[0].args) != 1:
            return None
        arg = filters[0].args[0]
        if type(arg) is not PositionalArgument or type(arg.value) is not StringLiteral:
            return None
        plan.append((_VAR, name, arg.value.value))
    return tuple(plan)


@lru_cache(maxsize=1024)
def _compile(text: str, markers: frozenset[str]) -> _Compiled:
    parsed = _parse(text)
    for root, index, kind in parsed.uses:
        if root in markers and kind != "bare":
            raise TemplateError(
                f"marker '{root}'{_where(text, index)} must stand on its own as {{{{ {root} }}}}: "
                "no filters, properties or tag conditions (the model writes the whole sentence)"
            )
    assigned_markers = sorted(parsed.locals & markers)
    if assigned_markers:
        raise TemplateError(f"marker '{assigned_markers[0]}' cannot be assigned or used as a loop variable")
    names = [name for name, _index in parsed.globals]
    found_markers = frozenset(n for n in names if n in markers)
    variables = frozenset(n for n in names if n not in markers)
    required = frozenset(
        root for root, _index, kind in parsed.uses if kind in ("bare", "output") and root in variables
    )
    info = TemplateInfo(variables=variables, markers=found_markers, required=required)
    return _Compiled(info=info, parsed=parsed, plan=_fast_plan(parsed, markers))


def analyze(text: str, markers: Mapping[str, str]) -> TemplateInfo:
    """Report the variables and markers a template refers to.

    Raises TemplateError on bad syntax, unknown filters, disabled tags and misused markers.
    """
    return _compile(text, frozenset(markers)).info


def validate(text: str, markers: Mapping[str, str], known_fields: Iterable[str]) -> TemplateInfo:
    """Check a template before it is saved: it must parse and name only markers and known fields."""
    if not text.strip():
        raise TemplateError("template is empty")
    compiled = _compile(text, frozenset(markers))
    fields = sorted(set(known_fields))
    known = set(fields) | set(markers)
    for name, index in compiled.parsed.globals:
        if name in known:
            continue
        hint = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
        did_you_mean = f" (did you mean '{hint[0]}'?)" if hint else ""
        raise TemplateError(
            f"unknown marker or field '{name}'{_where(text, index)}{did_you_mean}; "
            f"markers: {', '.join(sorted(markers)) or '(none)'}; fields: {', '.join(fields) or '(none)'}"
        )
    return compiled.info


# --------------------------------------------------------------------------------------------------
# Rendering


@dataclass(frozen=True)
class Rendered:
    """A template with plain variables filled and markers left as slots."""

    text: str  # markers as slots; missing variables as missing-value slots (never blank)
    markers: tuple[str, ...]  # markers still to write, in order of appearance, unique
    missing: tuple[str, ...]  # variables this render needed but had no value for

    @property
    def needs_data(self) -> bool:
        return bool(self.missing)

    @property
    def needs_writing(self) -> bool:
        return bool(self.markers)


def _clean_value(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        text = value
    elif isinstance(value, float) and value != value:  # NaN: how pandas spells an empty CSV cell
        return None
    else:
        text = str(value)
    if "\x00" in text:
        text = text.replace("\x00", "")
    return text if text.strip() else None


def _render_plan(plan: _Plan, variables: Mapping[str, str | None]) -> Rendered:
    parts: list[str] = []
    missing: list[str] = []
    found: list[str] = []
    for kind, name, fallback in plan:
        if kind == _TEXT:
            parts.append(name)
        elif kind == _MARKER:
            parts.append(_MARKER_SLOT.format(name))
            if name not in found:
                found.append(name)
        else:
            value = _clean_value(variables.get(name))
            if value is not None:
                parts.append(value)
            elif fallback is not None:
                parts.append(fallback)
            else:
                parts.append(_MISSING_SLOT.format(name))
                if name not in missing:
                    missing.append(name)
    return Rendered(text="".join(parts), markers=tuple(found), missing=tuple(missing))


def _render_liquid(compiled: _Compiled, variables: Mapping[str, str | None]) -> Rendered:
    data: dict[str, str] = {}
    for name in compiled.info.variables:
        value = _clean_value(variables.get(name))
        if value is not None:
            data[name] = value
    for name in compiled.info.markers:
        data[name] = _MARKER_SLOT.format(name)
    seen: list[str] = []
    reset = _missing_seen.set(seen)
    try:
        text = compiled.parsed.template.render(data)
    except LiquidError as exc:
        raise TemplateError(f"template failed to render{_token_where(exc.token)}: {exc.message}") from exc
    finally:
        _missing_seen.reset(reset)
    if "\x00" in _EXACT_SLOT_RE.sub("", text) and not seen:
        # Only a filter applied to captured or assigned text can alter a marker slot.
        raise TemplateError(
            "a marker was changed by a filter (through capture or assign); use {{ marker }} on its own"
        )
    found = tuple(dict.fromkeys(_MARKER_SLOT_RE.findall(text)))
    return Rendered(text=text, markers=found, missing=tuple(dict.fromkeys(seen)))


def render(text: str, variables: Mapping[str, str | None], markers: Mapping[str, str]) -> Rendered:
    """Fill plain variables; leave markers as slots; report variables that had no value."""
    compiled = _compile(text, frozenset(markers))
    if compiled.plan is not None:
        return _render_plan(compiled.plan, variables)
    return _render_liquid(compiled, variables)


def fill_markers(rendered: Rendered, texts: Mapping[str, str]) -> str:
    """Put written sentences into the marker slots and return the finished message.

    Each text is stripped and folded onto one line. Raises KeyError naming the first marker with no
    (or only blank) text, and ValueError when the render still lacks data (see ``Rendered.missing``).
    """
    if rendered.missing:
        raise ValueError(f"cannot finish the message: no value for {', '.join(rendered.missing)}")
    cleaned: dict[str, str] = {}
    for name in dict.fromkeys((*rendered.markers, *_MARKER_SLOT_RE.findall(rendered.text))):
        written = texts.get(name)
        one_line = " ".join(written.replace("\x00", "").split()) if written is not None else ""
        if not one_line:
            raise KeyError(f"marker '{name}' has not been written")
        cleaned[name] = one_line
    # One pass with a function: written text is inserted literally and never scanned again.
    return _MARKER_SLOT_RE.sub(lambda m: cleaned[m.group(1)], rendered.text)


def preview_text(rendered: Rendered) -> str:
    """The rendered text for display: markers as ⟨name⟩, missing values as ⟨missing: name⟩."""

    def show(match: re.Match[str]) -> str:
        kind, name = match.group(1).lower(), match.group(2)
        return f"⟨{name}⟩" if kind == "m" else f"⟨missing: {name}⟩"

    return _SLOT_RE.sub(show, rendered.text).replace("\x00", "")


# --------------------------------------------------------------------------------------------------
# Library and selection

SIZE_BANDS = ("1-50", "51-200", "201-1000", "1001-5000", "5001+")
_BAND_UPPER = (50, 200, 1000, 5000)


def size_band(company_size: int | None) -> str | None:
    """The employee-count band of a company; None when the size is unknown (None or below 1)."""
    if company_size is None or company_size < 1:
        return None
    for band, upper in zip(SIZE_BANDS, _BAND_UPPER, strict=False):
        if company_size <= upper:
            return band
    return SIZE_BANDS[-1]


@dataclass(frozen=True)
class TemplateSpec:
    """A library entry as the selector sees it (the DB layer builds these)."""

    name: str
    step: str
    text: str
    industry: str | None = None
    size_band: str | None = None
    is_default: bool = False


@dataclass(frozen=True)
class StepSpec:
    """One step of the outreach sequence with its LinkedIn character caps (configuration)."""

    name: str
    label: str
    max_chars: int
    max_chars_free: int | None
    safe_template: str
    order: int


def _norm(text: str | None) -> str:
    return " ".join(text.split()).casefold() if text else ""


def select_template(
    step: str,
    industry: str | None,
    company_size: int | None,
    library: Sequence[TemplateSpec],
    assigned: str | None = None,
) -> tuple[TemplateSpec, str]:
    """Pick the template for one prospect and say why, in a sentence for a person.

    Rule order: experiment assignment -> industry match (case-insensitive; a template whose size band
    also matches wins) -> company-size band match (templates not aimed at an industry) -> the step's
    default -> the step's first template (untargeted ones first). Safe templates live on their own
    "<step>_safe" steps, so they are never picked for a normal step.
    """
    candidates = [t for t in library if t.step == step]
    if not candidates:
        raise LookupError(f"no template for step '{step}'")
    note = ""
    if assigned is not None:
        for template in candidates:
            if template.name == assigned:
                return template, f"experiment assignment: {assigned}"
        note = f"experiment template '{assigned}' is not a '{step}' template, so it was skipped; "

    band = size_band(company_size)
    wanted = _norm(industry)
    if wanted:
        matches = [t for t in candidates if _norm(t.industry) == wanted]
        if matches:
            for template in matches:
                if band is not None and template.size_band == band:
                    return template, f"{note}industry match: {industry} (size band {band})"
            untargeted = [t for t in matches if t.size_band is None]
            defaults = [t for t in untargeted if t.is_default]  # a promoted experiment winner
            chosen = (defaults or untargeted or matches)[0]
            return chosen, f"{note}industry match: {industry}"

    if band is not None:
        for template in candidates:
            if template.industry is None and template.size_band == band:
                return template, f"{note}company-size band match: {band} employees"

    for template in candidates:
        if template.is_default:
            return template, f"{note}default template for {step}"

    generic = [t for t in candidates if t.industry is None and t.size_band is None]
    chosen = (generic or candidates)[0]
    return chosen, f"{note}first template for {step} (no default is set)"


def load_library(path: Path) -> list[TemplateSpec]:
    """Read starter templates (a JSON list of {name, step, text, industry, size_band, is_default}).
    Cached until the file changes (`core.datafiles`); do not change the result."""
    return datafiles.load(path, _library_from)


def _library_from(path: Path, raw: Any) -> list[TemplateSpec]:
    if not isinstance(raw, list):
        raise ValueError(f"{path}: expected a JSON list of templates")
    library: list[TemplateSpec] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw, start=1):
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in ("name", "step", "text")):
            raise ValueError(f"{path}: template #{i} needs string 'name', 'step' and 'text'")
        if entry["name"] in seen:
            raise ValueError(f"{path}: template #{i}: duplicate name {entry['name']!r}")
        seen.add(entry["name"])
        band = entry.get("size_band")
        if band is not None and band not in SIZE_BANDS:
            raise ValueError(f"{path}: template {entry['name']!r}: size_band must be one of {SIZE_BANDS}")
        library.append(
            TemplateSpec(
                name=entry["name"],
                step=entry["step"],
                text=entry["text"],
                industry=entry.get("industry"),
                size_band=band,
                is_default=bool(entry.get("is_default", False)),
            )
        )
    return library


def load_steps(path: Path) -> dict[str, StepSpec]:
    """Read the sequence steps, in their configured order.
    Cached until the file changes (`core.datafiles`); do not change the result."""
    return datafiles.load(path, _steps_from)


def _steps_from(path: Path, raw: Any) -> dict[str, StepSpec]:
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"{path}: expected a JSON object of step name -> settings")
    steps: list[StepSpec] = []
    for name, entry in raw.items():
        try:
            free = entry.get("max_chars_free")
            steps.append(
                StepSpec(
                    name=name,
                    label=str(entry["label"]),
                    max_chars=int(entry["max_chars"]),
                    max_chars_free=int(free) if free is not None else None,
                    safe_template=str(entry["safe_template"]),
                    order=int(entry["order"]),
                )
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(
                f"{path}: step {name!r} needs label, max_chars, safe_template and order ({exc})"
            ) from exc
    return {s.name: s for s in sorted(steps, key=lambda s: s.order)}
