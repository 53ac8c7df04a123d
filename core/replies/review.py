"""A person's side of the replies: the review table, the counts per category, and overriding a verdict.

An override keeps the model's answer beside the person's (`model_category`), records who decided and routes
the reply again (`routing.apply_routing`), so its sequence hold and any suppression follow the new category.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import select

from core.app import App
from core.replies.categories import CATEGORIES, PENDING
from core.replies.holds import reply_holds
from core.replies.routing import RouteResult, apply_routing, writing
from core.store.db import session_scope
from core.store.lookup import get_or_raise
from core.store.models import Prospect, Reply, utcnow

_SHOWN_CHARS = 300


def override(app: App, reply_id: int, category: str, by: str) -> RouteResult:
    """A person's category for a reply, stored beside the model's (kept in model_category), then routed."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}; expected one of {', '.join(CATEGORIES)}")
    who = " ".join(str(by or "").split())[:100]
    if not who:
        raise ValueError("say who is overriding (a name or initials), so the decision can be traced")
    with writing(app) as s:
        reply = get_or_raise(s, Reply, reply_id)
        history = list((reply.details or {}).get("overrides", []))
        history.append({"from": reply.category, "to": category, "by": who, "at": utcnow().isoformat()})
        reply.override_category = category
        reply.overridden_by = who
        reply.category = category
        reply.details = {**(reply.details or {}), "overrides": history}
        s.add(reply)
    return apply_routing(app, reply_id, corrected=True)


@dataclass(frozen=True)
class ReviewRow:
    """One reply as the review table shows it: who sent it, what the model and a person said, what routing did."""

    id: int
    received: str
    prospect: str
    text: str
    category: str  # the effective category, or "pending"
    confidence: float
    model_category: str
    override: str
    overridden_by: str
    next_action: str
    sequence: str  # the reply's hold in words ("stopped", "paused until 2025-03-21"), or why there is none
    detail: str
    problem: str


def review_rows(app: App, category: str | None = None, limit: int = 500) -> list[ReviewRow]:
    """The newest replies for the review table (all, one category, or "pending"), newest first."""
    with session_scope(app.engine) as s:
        query = select(Reply, Prospect).join(Prospect, Reply.prospect_id == Prospect.id, isouter=True)  # type: ignore[arg-type]
        if category == PENDING:
            query = query.where(Reply.category == "")
        elif category:
            query = query.where(Reply.category == category)
        found = s.exec(query.order_by(Reply.received_at.desc(), Reply.id.desc()).limit(limit)).all()  # type: ignore[attr-defined]
        holds = reply_holds(s, [int(r.id) for r, _ in found if r.id is not None])
    rows = []
    for reply, prospect in found:
        details = reply.details or {}
        hold = holds.get(int(reply.id or 0))
        rows.append(ReviewRow(
            id=int(reply.id or 0),
            received=reply.received_at.strftime("%Y-%m-%d %H:%M"),
            prospect=(f"{prospect.first_name} {prospect.last_name}".strip() + f" ({prospect.company_name})"
                      if prospect else f"unknown: {reply.prospect_identity}"),
            text=reply.text if len(reply.text) <= _SHOWN_CHARS else reply.text[:_SHOWN_CHARS - 1] + "…",
            category=reply.category or PENDING,
            confidence=round(reply.confidence, 2),
            model_category=reply.model_category,
            override=reply.override_category or "",
            overridden_by=reply.overridden_by,
            next_action=reply.next_action,
            sequence=hold.describe() if hold else "none: the prospect is not known",
            detail=str((details.get("routing") or {}).get("detail", "")),
            problem=str((details.get("classification") or {}).get("problem", "")),
        ))
    return rows


@dataclass(frozen=True)
class CategoryCounts:
    """Replies per effective category (every category present) and those still pending."""

    by_category: dict[str, int]
    pending: int

    @property
    def total(self) -> int:
        return sum(self.by_category.values()) + self.pending

    def of(self, category: str) -> int:
        """The count for a category or "pending"; 0 for anything else."""
        return self.pending if category == PENDING else self.by_category.get(category, 0)


def category_counts(app: App) -> CategoryCounts:
    """Replies per effective category, every category present, plus how many are not classified yet."""
    with session_scope(app.engine) as s:
        found = s.exec(select(Reply.category, func.count()).group_by(Reply.category)).all()  # type: ignore[arg-type]
    counts = dict.fromkeys(CATEGORIES, 0)
    pending = 0
    for category, n in found:
        if category:
            counts[category] = counts.get(category, 0) + int(n)
        else:
            pending += int(n)
    return CategoryCounts(counts, pending)
