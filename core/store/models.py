"""The schema: every table the console stores, defined here and nowhere else.

Defining tables in a Streamlit page would redefine them on every rerun ("Table already defined"), so pages
and workers import them from this module. Tables are created and changed only by `core.store.migrations`.

Two column types keep the house rules at the storage boundary:
- `Money` stores USD as an integer count of nano-dollars, so sums in SQL are exact on SQLite and PostgreSQL
  alike and come back as `Decimal` (a sub-nano-dollar remainder of a provider's cost is rounded half-even).
- `UTCDateTime` stores naive UTC and always returns aware UTC datetimes.

Every stored state (a batch's status, an item's state, a reply's category, ...) is a `LabelledEnum`: the code is
what the database holds and what SQL is built from (`ItemState.sql(...)`), `.label` is what a page shows.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, TypeDecorator, UniqueConstraint, event
from sqlmodel import Field, SQLModel

NANO = Decimal("1e-9")


def to_nanos(value: Decimal) -> int:
    return int(value.quantize(NANO, rounding=ROUND_HALF_EVEN) / NANO)


def from_nanos(value: int | None) -> Decimal:
    return (Decimal(int(value or 0)) * NANO).quantize(NANO)


def money_str(value: Decimal) -> str:
    """Plain decimal text for JSON and CSV: no exponent, no trailing zeros ("0", "12000", "0.0000388")."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


class Money(TypeDecorator[Decimal]):
    """USD as nano-dollars in a BIGINT column."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> int | None:
        if value is None:
            return None
        return to_nanos(value if isinstance(value, Decimal) else Decimal(str(value)))

    def process_result_value(self, value: Any, dialect: Any) -> Decimal | None:
        return None if value is None else from_nanos(value)


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; times are stored in UTC and must be timezone-aware")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


# ---------------------------------------------------------------------------------------------------------
# States: every stored state is one of these. The value is the code in the database (and in SQL, built from
# the member: never a hand-typed literal); `.label` is what a person reads on a page.
# ---------------------------------------------------------------------------------------------------------


class LabelledEnum(StrEnum):
    """A stored code with the words a user reads for it: `BatchStatus.PAUSED_BUDGET.label` is "Paused: budget"."""

    @property
    def label(self) -> str:
        return _LABELS.get((type(self), self.value), self.value.replace("_", " ").capitalize())

    @classmethod
    def sql(cls, *members: LabelledEnum) -> str:
        """Members as a SQL list of quoted literals, e.g. "('pending', 'claimed')" (codes are plain words)."""
        chosen = members or tuple(cls)
        return "(" + ", ".join(f"'{m.value}'" for m in chosen) + ")"

    @classmethod
    def label_of(cls, code: str) -> str:
        """The label of a stored code; a code this version does not know shows as itself, made readable."""
        try:
            return cls(code).label
        except ValueError:
            return str(code).replace("_", " ").capitalize()


class BatchStatus(LabelledEnum):
    DRAFT = "draft"
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    PAUSED_BUDGET = "paused_budget"
    PAUSED_PROVIDER = "paused_provider"
    CANCELLED = "cancelled"
    FAILED = "failed"


class BatchKind(LabelledEnum):
    """What a batch's items are and what working one does (see `core.batches.kinds`)."""

    PERSONALIZE = "personalize"  # one item per prospect: a message for a sequence step
    CLASSIFY = "classify"  # one item per stored reply: its category and next action
    VARIANTS = "variants"  # one item per base template: model-written variants, kept when they pass the checks
    EVALUATION = "evaluation"  # one item per labelled reply: the active provider's verdict against the label


class ItemState(LabelledEnum):
    """A batch item: pending -> claimed (leased by a worker) -> one final state."""

    PENDING = "pending"
    CLAIMED = "claimed"
    READY = "ready"
    FALLBACK = "fallback"
    NEEDS_DATA = "needs_data"
    REVIEW_FAILED = "review_failed"
    FAILED = "failed"


class MessageState(LabelledEnum):
    """How a message came out of the personalization ladder."""

    READY = "ready"
    FALLBACK = "fallback"
    NEEDS_DATA = "needs_data"
    REVIEW_FAILED = "review_failed"
    FAILED = "failed"


class Approval(LabelledEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class ReservationState(LabelledEnum):
    HELD = "held"
    SETTLED = "settled"
    SWEPT = "swept"  # expired or its worker died: released without a cost


class CostSource(LabelledEnum):
    """Where a ledger row's cost came from."""

    PROVIDER = "provider"
    ESTIMATED = "estimated"
    HOLD = "hold"  # no believable figure: booked at the hold (see `core.costs.settlement`)
    NONE = "none"


class UsageStatus(LabelledEnum):
    """The ledger statuses every call may end with; the client adds error codes (http_429, deadline, malformed)
    and `core.costs.settlement.Booking` its own."""

    OK = "ok"


class CapSource(LabelledEnum):
    """Who set a month's budget cap."""

    ENV = "env"  # MONTHLY_BUDGET_USD, followed at every start
    SPEND_PAGE = "spend_page"
    CLI = "cli"


class ExperimentStatus(LabelledEnum):
    RUNNING = "running"
    STOPPED = "stopped"


class WorkerState(LabelledEnum):
    """A worker row's stored state; "silent" is not stored: it is an alive row whose last beat is too old."""

    ALIVE = "alive"
    STOPPED = "stopped"
    SILENT = "silent"  # shown only, never stored


class ReplyCategory(LabelledEnum):
    INTERESTED = "interested"
    NOT_INTERESTED = "not_interested"
    REQUEST_INFO = "request_info"
    SCHEDULE_CALL = "schedule_call"
    OUT_OF_OFFICE = "out_of_office"
    WRONG_PERSON = "wrong_person"
    DO_NOT_CONTACT = "do_not_contact"
    UNCLEAR = "unclear"


# Labels that are not the code made readable (the code, underscores as spaces, capitalised, is the default).
# Keyed by enum and code: members of two enums with the same code are equal strings (review_failed).
_LABEL_LIST: list[tuple[LabelledEnum, str]] = [
    (BatchStatus.PAUSED_BUDGET, "Paused: budget"),
    (BatchStatus.PAUSED_PROVIDER, "Paused: provider"),
    (BatchKind.PERSONALIZE, "Messages"),
    (BatchKind.CLASSIFY, "Reply classification"),
    (BatchKind.VARIANTS, "Template variants"),
    (BatchKind.EVALUATION, "Provider evaluation"),
    (ItemState.CLAIMED, "In progress"),
    (ItemState.READY, "Ready"),
    (ItemState.FALLBACK, "Template fallback"),
    (ItemState.NEEDS_DATA, "Needs data"),
    (ItemState.REVIEW_FAILED, "Review failed"),
    (MessageState.FALLBACK, "Fallback to the safe template"),
    (MessageState.NEEDS_DATA, "Held: needs data"),
    (MessageState.REVIEW_FAILED, "Held: review failed"),
    (ReservationState.SWEPT, "Released"),
    (ReplyCategory.REQUEST_INFO, "Wants more information"),
    (ReplyCategory.SCHEDULE_CALL, "Wants a call"),
    (ReplyCategory.UNCLEAR, "Unclear: a person reads it"),
    (CostSource.PROVIDER, "Reported by the provider"),
    (CostSource.ESTIMATED, "Estimated from prices"),
    (CostSource.HOLD, "Booked at the hold"),
    (CostSource.NONE, "No cost"),
    (UsageStatus.OK, "OK"),
    (CapSource.ENV, "Environment setting"),
    (CapSource.SPEND_PAGE, "Spend page"),
    (CapSource.CLI, "Command line"),
    (ReplyCategory.REQUEST_INFO, "Asked for information"),
    (ReplyCategory.SCHEDULE_CALL, "Wants a call"),
    (ReplyCategory.DO_NOT_CONTACT, "Do not contact"),
]
_LABELS: dict[tuple[type, str], str] = {(type(m), m.value): text for m, text in _LABEL_LIST}

FINAL_ITEM_STATES: tuple[ItemState, ...] = (ItemState.READY, ItemState.FALLBACK, ItemState.NEEDS_DATA,
                                           ItemState.REVIEW_FAILED, ItemState.FAILED)
OPEN_ITEM_STATES: tuple[ItemState, ...] = (ItemState.PENDING, ItemState.CLAIMED)


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: Any) -> datetime:
    """A time read by raw SQL (a datetime, naive or not, or SQLite's ISO text) as an aware UTC datetime."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def month_of(moment: datetime) -> str:
    """Calendar month in UTC, as 'YYYY-MM' (the budget period)."""
    return moment.astimezone(UTC).strftime("%Y-%m")


def money_field(default: Decimal | None = Decimal(0), nullable: bool = False) -> Any:
    return Field(default=default, sa_column=Column(Money(), nullable=nullable))


def time_field(nullable: bool = False, index: bool = False) -> Any:
    if nullable:
        return Field(default=None, sa_column=Column(UTCDateTime(), nullable=True, index=index))
    return Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False, index=index))


def json_field(default_factory: Any = dict) -> Any:
    return Field(default_factory=default_factory, sa_column=Column(JSON, nullable=False))


class SchemaMigration(SQLModel, table=True):
    __tablename__ = "schema_migrations"
    name: str = Field(primary_key=True)
    applied_at: datetime = time_field()


class Setting(SQLModel, table=True):
    __tablename__ = "settings"
    key: str = Field(primary_key=True)
    value: Any = json_field(default_factory=dict)
    updated_at: datetime = time_field()


class Prospect(SQLModel, table=True):
    __tablename__ = "prospects"
    id: int | None = Field(default=None, primary_key=True)
    identity: str = Field(unique=True, index=True)  # the primary key of `core.people.identity` (normalised)
    first_name: str
    last_name: str = ""
    company_name: str
    job_title: str = ""
    industry: str = ""
    company_size: int | None = None
    linkedin_url: str = ""  # as the user gave it (shown and exported); matching uses ProspectIdentity keys
    email: str = ""
    recent_news: str = ""
    notes: str = ""
    sender_account: str = ""
    custom: dict[str, str] = json_field()
    flags: list[dict[str, str]] = json_field(default_factory=list)
    source: str = "import"
    created_at: datetime = time_field()


class ProspectIdentity(SQLModel, table=True):
    """Every identity key a prospect is known by (see `core.people.identity`): each profile URL and e-mail address it
    was imported with, normalised. Matching and the do-not-contact list use these (with the prospect's fields)."""

    __tablename__ = "prospect_identities"
    __table_args__ = (UniqueConstraint("prospect_id", "key"),)  # also the index for look-ups by prospect
    id: int | None = Field(default=None, primary_key=True)
    prospect_id: int = Field(foreign_key="prospects.id")
    key: str = Field(index=True)
    kind: str = ""  # li | email | name


def _record_prospect_identities(mapper: Any, connection: Any, target: Prospect) -> None:
    """A prospect written through the ORM (not the bulk import) is known by the keys of its fields too."""
    from core.people.identity import prospect_keys, record_identities

    if target.id is not None:
        record_identities(connection, int(target.id), prospect_keys(target))


event.listen(Prospect, "after_insert", _record_prospect_identities)
event.listen(Prospect, "after_update", _record_prospect_identities)


class Suppression(SQLModel, table=True):
    """The do-not-contact list, honoured by imports and batches."""

    __tablename__ = "suppressions"
    identity: str = Field(primary_key=True)
    reason: str = ""
    created_at: datetime = time_field()


class Template(SQLModel, table=True):
    __tablename__ = "templates"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    step: str = Field(index=True)
    text: str
    industry: str | None = None
    size_band: str | None = None
    is_default: bool = False
    parent_id: int | None = Field(default=None, foreign_key="templates.id")
    lineage: dict[str, Any] = json_field()
    archived: bool = False
    created_at: datetime = time_field()


class Experiment(SQLModel, table=True):
    __tablename__ = "experiments"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    step: str
    segment: str = ""
    metric: str = "positive_rate"
    baseline_rate: float = 0.10
    mde_abs: float = 0.03
    power: float = 0.8
    alpha: float = 0.05
    planned_per_arm: int | None = None
    status: str = ExperimentStatus.RUNNING
    decision: dict[str, Any] = json_field()
    created_at: datetime = time_field()


class ExperimentArm(SQLModel, table=True):
    __tablename__ = "experiment_arms"
    __table_args__ = (UniqueConstraint("experiment_id", "name"),)
    id: int | None = Field(default=None, primary_key=True)
    experiment_id: int = Field(foreign_key="experiments.id", index=True)
    name: str
    template_id: int = Field(foreign_key="templates.id")
    is_control: bool = False
    weight: float = 1.0


class Assignment(SQLModel, table=True):
    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("experiment_id", "prospect_id"),)
    id: int | None = Field(default=None, primary_key=True)
    experiment_id: int = Field(foreign_key="experiments.id", index=True)
    prospect_id: int = Field(foreign_key="prospects.id", index=True)
    arm_id: int = Field(foreign_key="experiment_arms.id")
    assigned_at: datetime = time_field()


class Outcome(SQLModel, table=True):
    __tablename__ = "outcomes"
    __table_args__ = (UniqueConstraint("experiment_id", "prospect_id"),)
    id: int | None = Field(default=None, primary_key=True)
    experiment_id: int = Field(foreign_key="experiments.id", index=True)
    prospect_id: int = Field(foreign_key="prospects.id")
    arm_id: int = Field(foreign_key="experiment_arms.id")
    sent_at: datetime = time_field()
    accepted: bool = False
    replied: bool = False
    positive: bool = False
    source: str = "import"


class Batch(SQLModel, table=True):
    __tablename__ = "batches"
    id: int | None = Field(default=None, primary_key=True)
    name: str = ""
    status: str = Field(default=BatchStatus.DRAFT, index=True)
    kind: str = BatchKind.PERSONALIZE
    step: str = "connection_request"
    template_name: str | None = None
    concurrency: int = 16
    items_total: int = 0
    options: dict[str, Any] = json_field()
    error: str = ""
    created_at: datetime = time_field()
    started_at: datetime | None = time_field(nullable=True)
    finished_at: datetime | None = time_field(nullable=True)


class BatchItem(SQLModel, table=True):
    __tablename__ = "batch_items"
    __table_args__ = (
        UniqueConstraint("batch_id", "prospect_id", "step"),
        Index("ix_batch_items_batch_state", "batch_id", "state"),
        Index("ix_batch_items_lease_owner", "lease_owner"),
    )
    id: int | None = Field(default=None, primary_key=True)
    batch_id: int = Field(foreign_key="batches.id")
    prospect_id: int | None = Field(default=None, foreign_key="prospects.id")
    reply_id: int | None = None
    subject: str = ""  # what the item works on when it is neither a prospect nor a reply (a template, a row)
    step: str = "connection_request"
    state: str = ItemState.PENDING
    lease_owner: str | None = None
    lease_expires_at: datetime | None = time_field(nullable=True)
    attempts: int = 0
    error: str = ""
    # What an item that writes no message produced (a template's variants, an evaluated row's verdict).
    result: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    updated_at: datetime = time_field()


class Message(SQLModel, table=True):
    __tablename__ = "messages"
    id: int | None = Field(default=None, primary_key=True)
    prospect_id: int | None = Field(default=None, foreign_key="prospects.id", index=True)
    batch_item_id: int | None = Field(default=None, foreign_key="batch_items.id", unique=True)
    batch_id: int | None = Field(default=None, index=True)
    step: str
    template_name: str
    variant: str = ""
    text: str
    state: str
    used_ai: bool = False
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = money_field()
    guards: list[dict[str, Any]] = json_field(default_factory=list)
    review: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    fallback: bool = False
    reason: str = ""
    approval: str = Field(default=Approval.PENDING, index=True)
    edited_text: str | None = None
    decided_at: datetime | None = time_field(nullable=True)
    created_at: datetime = time_field()


class UsageEntry(SQLModel, table=True):
    """The usage ledger: one row per call attempt, failures included. The only source of spend figures."""

    __tablename__ = "usage_ledger"
    __table_args__ = (Index("ix_usage_month_task", "month", "task"),)
    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = time_field(index=True)
    month: str = Field(index=True)
    task: str
    model_requested: str
    model_answered: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = money_field()
    cost_source: str = CostSource.NONE
    status: str = UsageStatus.OK  # or an error code (e.g. http_429, deadline, malformed)
    error: str = ""
    latency_ms: int = 0
    attempt: int = 1
    batch_id: int | None = Field(default=None, index=True)
    prospect_id: int | None = None
    request_id: str = ""
    provider: str = ""


class BudgetMonth(SQLModel, table=True):
    """Running totals that make reservation one atomic conditional UPDATE; the ledger stays the record."""

    __tablename__ = "budget_months"
    month: str = Field(primary_key=True)
    cap_usd: Decimal = money_field()
    spent_usd: Decimal = money_field()
    reserved_usd: Decimal = money_field()
    # Sum of the holds that settled this month: spent / held_settled is how much of a worst case a call really
    # costs, which the throttle ladder applies to the holds still in flight.
    held_settled_usd: Decimal = money_field()
    # Who set the cap: "env" (MONTHLY_BUDGET_USD, followed at every start), "spend_page" or "cli" (a person:
    # kept for the month, the environment value applies from the next month).
    cap_source: str = CapSource.ENV
    cap_set_at: datetime | None = time_field(nullable=True)


class ModelCostFactor(SQLModel, table=True):
    """Per model, how far the provider's reported cost went above the worst case held for it (>= 1).

    Later holds of the model are multiplied by it, so a provider that bills more than its price list cannot
    carry the month past its cap by more than one call's difference.
    """

    __tablename__ = "model_cost_factors"
    model: str = Field(primary_key=True)
    factor: str = "1"  # a Decimal as text: a ratio, not money
    reported_usd: Decimal = money_field()  # the call that set the factor: what the provider reported
    worst_case_usd: Decimal = money_field()  # ... and what it was held at
    updated_at: datetime = time_field()


class Reservation(SQLModel, table=True):
    __tablename__ = "reservations"
    id: int | None = Field(default=None, primary_key=True)
    month: str = Field(index=True)
    amount_usd: Decimal = money_field()
    task: str = ""
    state: str = Field(default=ReservationState.HELD, index=True)
    created_at: datetime = time_field()
    expires_at: datetime = time_field()
    owner: str | None = Field(default=None, index=True)  # the worker whose call holds it (released if it dies)


class StageResult(SQLModel, table=True):
    """A model answer for one batch item and stage, written in the transaction that records its cost.

    A reclaimed item (its worker died) replays these instead of calling the model again, so a crash never pays
    twice for the same stage; the unique key means a stage's result is written once.
    """

    __tablename__ = "stage_results"
    __table_args__ = (UniqueConstraint("batch_item_id", "stage"),)
    id: int | None = Field(default=None, primary_key=True)
    batch_item_id: int = Field(foreign_key="batch_items.id", index=True)
    stage: str
    content: str
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = money_field()
    created_at: datetime = time_field()


class Reply(SQLModel, table=True):
    __tablename__ = "replies"
    id: int | None = Field(default=None, primary_key=True)
    prospect_id: int | None = Field(default=None, foreign_key="prospects.id", index=True)
    prospect_identity: str = ""
    text: str
    received_at: datetime = time_field()
    category: str = ""
    confidence: float = 0.0
    model_category: str = ""
    override_category: str | None = None
    overridden_by: str = ""
    next_action: str = ""
    details: dict[str, Any] = json_field()
    batch_id: int | None = None
    created_at: datetime = time_field()


class PriceOverride(SQLModel, table=True):
    __tablename__ = "price_overrides"
    model: str = Field(primary_key=True)
    input_per_mtok: str  # decimal string, USD per million tokens
    output_per_mtok: str
    source: str = "manual"
    fetched_at: datetime = time_field()


class Scenario(SQLModel, table=True):
    __tablename__ = "scenarios"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    payload: dict[str, Any] = json_field()
    created_at: datetime = time_field()


class Worker(SQLModel, table=True):
    """One row per batch worker (a console thread, `python -m core worker`, a foreground `batch run`): it
    beats every few seconds, so the items and holds of one that falls silent go back at once."""

    __tablename__ = "workers"
    id: str = Field(primary_key=True)  # host:pid:random, the lease owner written on its items and holds
    host: str = ""
    pid: int = 0
    started_at: datetime = time_field()
    last_beat_at: datetime = time_field(index=True)
    items_held: int = 0
    state: str = Field(default=WorkerState.ALIVE, index=True)
    stopped_at: datetime | None = time_field(nullable=True)


class StepClaim(SQLModel, table=True):
    """At most one batch item per prospect and sequence step, whichever batch, session or process made it.

    Taken in the transaction that creates the item; kept once the item wrote a message (that prospect's step
    is done), given up when the item ends without one (failed: a later batch may try again).
    """

    __tablename__ = "step_claims"
    prospect_id: int = Field(foreign_key="prospects.id", primary_key=True)
    step: str = Field(primary_key=True)
    batch_id: int = Field(foreign_key="batches.id", index=True)
    created_at: datetime = time_field()


class HoldKind(StrEnum):
    """Why a sequence hold keeps the automatic sequence from a prospect (`core.replies.holds`)."""

    STOPPED = "stopped"  # the prospect replied (a reply not yet classified stops too)
    PAUSED = "paused"  # an out-of-office reply: the sequence may resume on `until`
    SUPPRESSED = "suppressed"  # the reply was an opt-out; its identities are on the do-not-contact list


class SequenceHold(SQLModel, table=True):
    """One hold per reply from a known prospect: the batch runner reads these rows, not the replies' details."""

    __tablename__ = "sequence_holds"
    id: int | None = Field(default=None, primary_key=True)
    prospect_id: int = Field(foreign_key="prospects.id", index=True)
    kind: str = Field(default=HoldKind.STOPPED)
    until: date | None = None
    reason: str = ""
    reply_id: int | None = Field(default=None, foreign_key="replies.id", unique=True)
    created_at: datetime = time_field()
