"""The template library in the database: starter templates, listing, adding with validation.

Syntax and names are checked by `core.messages.templates`; this module stores what passed and turns rows into the
`TemplateSpec`s the selector reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from core.app import App
from core.messages.templates import (
    SIZE_BANDS,
    StepSpec,
    TemplateError,
    TemplateSpec,
    load_library,
    load_markers,
    load_steps,
    validate,
)
from core.people.columns import CANONICAL_FIELDS
from core.store.db import immediate, session_scope
from core.store.models import Template


def markers(data_dir: Path) -> dict[str, str]:
    """The writing markers of `data/markers.json` (read again when the file changes)."""
    return load_markers(data_dir / "markers.json")


def steps(data_dir: Path) -> dict[str, StepSpec]:
    """The sequence steps of `data/steps.json` (read again when the file changes)."""
    return load_steps(data_dir / "steps.json")


def known_fields(extra: list[str] | None = None) -> list[str]:
    return [*CANONICAL_FIELDS, *(extra or [])]


def seed_templates(app: App) -> int:
    """Load `data/templates.json` into an empty library; returns how many were added."""
    with session_scope(app.engine) as s:
        if s.exec(select(Template.id).limit(1)).first() is not None:
            return 0
        specs = load_library(app.settings.data_dir / "templates.json")
        for spec in specs:
            s.add(Template(name=spec.name, step=spec.step, text=spec.text, industry=spec.industry,
                           size_band=spec.size_band, is_default=spec.is_default,
                           lineage={"source": "data/templates.json"}))
        return len(specs)


def list_templates(app: App, step: str | None = None, include_archived: bool = False) -> list[Template]:
    with session_scope(app.engine) as s:
        q = select(Template).order_by(Template.step, Template.name)
        if step:
            q = q.where(Template.step == step)
        if not include_archived:
            q = q.where(Template.archived == False)  # noqa: E712
        return list(s.exec(q).all())


def get_template(app: App, name: str) -> Template | None:
    with session_scope(app.engine) as s:
        return s.exec(select(Template).where(Template.name == name)).first()


def to_spec(t: Template) -> TemplateSpec:
    return TemplateSpec(name=t.name, step=t.step, text=t.text, industry=t.industry, size_band=t.size_band,
                        is_default=t.is_default)


def specs(app: App) -> list[TemplateSpec]:
    return [to_spec(t) for t in list_templates(app)]


def add_template(
    app: App,
    name: str,
    step: str,
    text: str,
    *,
    industry: str | None = None,
    size_band: str | None = None,
    is_default: bool = False,
    parent_id: int | None = None,
    lineage: dict[str, Any] | None = None,
    custom_fields: list[str] | None = None,
) -> Template:
    """Validate and store a template; raises TemplateError (bad syntax or unknown marker) or ValueError."""
    name = name.strip()
    if not name or len(name) > 80:
        raise ValueError("a template name must be 1 to 80 characters")
    step_names = set(steps(app.settings.data_dir))
    safe_steps = {f"{s}_safe" for s in step_names}
    if step not in step_names | safe_steps:
        raise ValueError(f"unknown step {step!r}; steps: {', '.join(sorted(step_names))}")
    if size_band is not None and size_band not in SIZE_BANDS:
        raise ValueError(f"unknown size band {size_band!r}; bands: {', '.join(SIZE_BANDS)}")
    validate(text, markers(app.settings.data_dir), known_fields(custom_fields))
    # The write lock is taken up front: a read that then writes would fail on SQLite ("database is locked") when
    # another connection (a batch's committer, say) wrote in between.
    with immediate(app.engine) as conn, Session(bind=conn, expire_on_commit=False) as s:
        if s.exec(select(Template.id).where(Template.name == name)).first() is not None:
            raise ValueError(f"a template named {name!r} already exists")
        row = Template(name=name, step=step, text=text, industry=industry or None, size_band=size_band,
                       is_default=is_default, parent_id=parent_id, lineage=lineage or {"source": "added"})
        s.add(row)
        s.flush()
        return row


__all__ = ["TemplateError", "add_template", "get_template", "list_templates", "seed_templates", "specs"]
