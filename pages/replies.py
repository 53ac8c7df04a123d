"""Replies: classify a pasted reply, import a file of replies, classify them under the budget, review and
override the verdicts, and measure the active provider on the labelled replies.

Layout only: every decision is made in the `core.replies` package. Reply text, prospect names and anything a model wrote
are shown with st.text or dataframes, never as Markdown; alerts carry fixed wording only.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date

import plotly.graph_objects as go
import streamlit as st

from console import enter, get_app, sidebar
from core.batches.creation import create_batch
from core.batches.kinds.evaluation import evaluation_of, labelled_rows
from core.batches.lifecycle import BatchError, list_batches, start_batch
from core.batches.lifecycle import status as batch_status
from core.costs.money import usd
from core.llm.errors import BudgetExceededError, LLMError
from core.people.reading import UnreadableFile
from core.replies.categories import CATEGORIES, PENDING, label
from core.replies.classify import TextResult, classify_text, pending_reply_ids, worst_case_cost
from core.replies.evaluation import ProviderEvaluation
from core.replies.importing import ReplyImportReport, import_replies
from core.replies.review import ReviewRow, category_counts, override, review_rows
from core.replies.routing import action_label
from core.store.models import BatchKind, BatchStatus, ItemState

enter()  # the shell and the access gate, whichever address Streamlit started this run at

app = get_app()
sidebar(app)

st.title("Replies")
st.caption("Each reply is sorted into one of eight categories by the classify_reply route, then routed: a call "
           "to book, information to send, a pause while they are away, an opt-out, a referral, or a person to "
           "read it. Any reply stops the automatic sequence for that prospect; an out-of-office reply pauses it.")

for kind, message in st.session_state.pop("replies_flash", []):
    (st.success if kind == "success" else st.error)(message)
for line in st.session_state.pop("replies_flash_text", []):
    st.text(line)

# ---- one reply -------------------------------------------------------------------------------------------

st.subheader("Classify one reply")
st.caption("Nothing is stored or routed: this shows what would happen. The call is a real call to the active "
           "provider and is recorded in the ledger.")
pasted = st.text_area("Reply text", key="replies_paste", height=120,
                      placeholder="Paste the prospect's reply here (the quoted original message is ignored).")
received_on = st.date_input("Received on (optional; anchors 'back on Monday')", value=None, key="replies_received")


def show_one(result: TextResult) -> None:
    verdict = result.classification
    cols = st.columns(3)
    cols[0].metric("Category", label(verdict.category))
    cols[1].metric("Confidence", f"{verdict.confidence:.2f}")
    cols[2].metric("Cost", usd(verdict.cost_usd), help=f"{verdict.tokens:,} tokens in {verdict.calls} call(s)")
    st.text(f"Next action: {action_label(result.next_action)}\n{result.detail}")
    facts = [
        {"field": "status", "value": verdict.status.label},
        {"field": "model said", "value": verdict.model_said or ""},
        {"field": "return date", "value": verdict.return_date.isoformat() if verdict.return_date else ""},
        {"field": "referral", "value": verdict.referral or ""},
        {"field": "problem", "value": verdict.problem},
        {"field": "model", "value": verdict.model},
    ]
    st.dataframe([f for f in facts if f["value"]], hide_index=True, width="stretch")


if st.button("Classify", type="primary", key="replies_classify_one"):
    if not pasted.strip():
        st.warning("Paste a reply first.", icon="✍️")
    else:
        try:
            show_one(classify_text(app, pasted, received_on if isinstance(received_on, date) else None))
        except BudgetExceededError:
            st.error("The month's budget cannot cover this call. Raise the budget on the Spend page.")
        except LLMError as exc:
            st.error("The provider could not classify the reply:")
            st.text(str(exc))

# ---- import ----------------------------------------------------------------------------------------------

st.subheader("Import replies")
st.caption("A CSV with who replied (linkedin_url, email or identity), the reply text (text, reply or message) and "
           "optionally when (received: 2025-03-14 or 2025-03-14T09:30:00Z, UTC). Replies from people who are not "
           "stored prospects are kept and listed. Importing the same file twice stores nothing twice.")
uploaded = st.file_uploader("Replies CSV", type=["csv", "txt", "tsv"], key="replies_upload")
if uploaded is not None and st.button("Import this file", key="replies_import"):
    try:
        st.session_state["replies_report"] = import_replies(app, uploaded.getvalue())
    except UnreadableFile as exc:
        st.session_state.pop("replies_report", None)
        st.error("The file was not imported; nothing was stored.")
        st.text(str(exc))

report: ReplyImportReport | None = st.session_state.get("replies_report")
if report:
    cols = st.columns(4)
    cols[0].metric("Rows read", f"{report.rows:,}")
    cols[1].metric("Stored", f"{report.stored:,}")
    cols[2].metric("Duplicates", f"{report.duplicates:,}")
    cols[3].metric("Rejected", f"{len(report.rejected):,}")
    if report.rejected:
        st.caption("Rejected lines (fix them in the file and import it again; stored rows are not duplicated)")
        st.dataframe([asdict(r) for r in report.rejected], hide_index=True, width="stretch")
    if report.unknown_prospects:
        unknown = len(report.unknown_prospects)
        st.caption(f"{unknown:,} repl{'ies come' if unknown != 1 else 'y comes'} from people who are not stored "
                   "prospects: stored and classified, and an opt-out still reaches the do-not-contact list")
        st.dataframe([asdict(r) for r in report.unknown_prospects], hide_index=True, width="stretch")
    if report.duplicate_lines:
        st.caption("Duplicates (not stored again)")
        st.dataframe([asdict(r) for r in report.duplicate_lines], hide_index=True, width="stretch")
    if report.warnings:
        st.caption("Warnings")
        st.dataframe([asdict(r) for r in report.warnings], hide_index=True, width="stretch")

# ---- classify pending ------------------------------------------------------------------------------------

st.subheader("Classify pending replies")
pending = pending_reply_ids(app)
if not pending:
    st.info("No reply is waiting for classification.", icon="📭")
else:
    state = app.budget_state()
    bound = worst_case_cost(app, pending)
    st.text(f"{len(pending):,} replies pending. Classifying them costs at most {usd(bound)} "
            f"(a reply whose answer needs a re-ask can cost twice its share); {usd(state.remaining_usd)} "
            "of the budget is left this month. The run stops cleanly when the budget is reached.")
    if st.button(f"Classify {len(pending):,} pending replies", type="primary", key="replies_classify_pending"):
        # A batch: the background worker classifies under the budget, and closing the tab does not stop it.
        batch = create_batch(app, [], kind=BatchKind.CLASSIFY, reply_ids=pending, name=f"replies ({len(pending):,})")
        start_batch(app, batch.id)  # type: ignore[arg-type]
        st.session_state["replies_batch"] = batch.id

batch_id = st.session_state.get("replies_batch")
if batch_id:

    @st.fragment(run_every=2)
    def classification_progress(batch_id: int) -> None:
        s = batch_status(app, batch_id)
        st.progress(s.fraction, text=f"{s.done:,} of {s.items:,} classified — {s.label}, "
                    f"{usd(s.cost_usd)} so far")
        if s.status == BatchStatus.PAUSED_BUDGET:
            st.warning("Budget reached: the rest stay pending and resume when the budget is raised or the month "
                       "rolls.", icon="🚦")
        if s.counts[ItemState.FAILED]:
            st.caption(f"{s.counts[ItemState.FAILED]:,} replies could not be classified (the provider failed); "
                       "they stay pending for the next run.")

    classification_progress(batch_id)

def shown_row(row: ReviewRow) -> dict[str, object]:
    """A review row with its codes in people's words (categories and actions by their labels)."""
    return {**asdict(row), "category": label(row.category), "model_category": label(row.model_category),
            "override": label(row.override), "next_action": action_label(row.next_action)}


# ---- review ----------------------------------------------------------------------------------------------

st.subheader("Review and override")
counts = category_counts(app)
if counts.total == 0:
    st.info("No replies yet. Import a CSV of replies above; they appear here once stored.", icon="📭")
else:
    bars = go.Figure(go.Bar(x=[label(c) for c in (*CATEGORIES, PENDING)],
                            y=[counts.of(c) for c in (*CATEGORIES, PENDING)]))
    bars.update_layout(title="Replies per category", yaxis_title="replies", margin={"t": 40})
    st.plotly_chart(bars, width="stretch")

    shown = st.selectbox("Show", ["all", *CATEGORIES, PENDING], key="replies_filter",
                         format_func=lambda c: f"{'All' if c == 'all' else label(c)} "
                                               f"({counts.total if c == 'all' else counts.of(c):,})")
    rows = review_rows(app, None if shown == "all" else shown)
    if not rows:
        st.info("No reply in this category.", icon="📭")
    else:
        st.dataframe([shown_row(r) for r in rows], hide_index=True, width="stretch",
                     column_order=("id", "received", "prospect", "text", "category", "confidence", "override",
                                   "overridden_by", "next_action", "sequence", "detail", "model_category",
                                   "problem"))
        labels = {r.id: f"#{r.id} · {label(r.category)} · {r.prospect[:60]}" for r in rows}

        def save_override() -> None:
            reply_id = st.session_state.get("replies_pick")
            category = st.session_state.get("replies_new_category")
            who = st.session_state.get("replies_by", "")
            try:
                result = override(app, int(reply_id), str(category), str(who))
            except (ValueError, LookupError) as exc:
                st.session_state["replies_flash"] = [("error", "The override was not saved.")]
                st.session_state["replies_flash_text"] = [str(exc)]
                return
            st.session_state["replies_flash"] = [("success", f"Reply #{int(reply_id)} is now: {label(str(category))}.")]
            st.session_state["replies_flash_text"] = [f"Next action: {action_label(result.action)}\n{result.detail}"]

        left, right = st.columns([2, 1])
        picked = left.selectbox("Reply", list(labels), format_func=lambda i: labels[i], key="replies_pick")
        current = next(r for r in rows if r.id == picked)
        right.selectbox("Correct category", CATEGORIES, key="replies_new_category", format_func=label,
                        index=CATEGORIES.index(current.category) if current.category in CATEGORIES else 0)
        st.text_input("Your name (recorded with the override)", key="replies_by")
        st.caption("Full reply")
        st.text(current.text)
        st.button("Save override", key="replies_save_override", on_click=save_override)

# ---- evaluation ------------------------------------------------------------------------------------------

st.subheader("How good is the classifier?")
st.caption("Runs the labelled replies shipped in data/replies_labelled.csv through the active provider and "
           "compares its routed categories (low confidence counts as unclear) with the labels. These are real "
           "calls, recorded in the ledger.")
if st.button("Evaluate the active provider", key="replies_evaluate"):
    # A batch: the background worker classifies the rows under the budget; closing the tab does not stop it.
    try:
        rows = labelled_rows(app)
        evaluation_batch = create_batch(app, [], kind=BatchKind.EVALUATION, subjects=rows,
                                        name=f"provider evaluation ({len(rows):,} labelled replies)")
    except (BatchError, ValueError) as exc:
        st.error("The evaluation could not start.")
        st.text(str(exc))
    else:
        start_batch(app, evaluation_batch.id)  # type: ignore[arg-type]
        st.session_state["replies_eval_batch"] = evaluation_batch.id

evaluation_batch_id = st.session_state.get("replies_eval_batch")
if evaluation_batch_id is None:
    latest = list_batches(app, limit=1, kind=BatchKind.EVALUATION)
    evaluation_batch_id = latest[0].id if latest else None


@st.fragment(run_every=2)
def evaluation_progress(batch_id: int) -> None:
    s = batch_status(app, batch_id)
    if s.active:
        st.progress(s.fraction, text=f"{s.done:,} of {s.items:,} labelled replies classified — "
                    f"{usd(s.cost_usd)} so far")
        return
    if s.status != BatchStatus.DONE:
        st.warning(f"The evaluation is {s.label}; the figures cover only the replies classified.", icon="🚦")
    show_evaluation(evaluation_of(app, batch_id))


def show_evaluation(evaluation: ProviderEvaluation) -> None:
    if evaluation.stopped:
        st.text(evaluation.stopped)
    cols = st.columns(3)
    cols[0].metric("Accuracy", f"{evaluation.accuracy:.1%}", help=f"{evaluation.n} of {evaluation.labelled} "
                   "labelled replies classified")
    cols[1].metric("Sent to a person (unclear fallback)", f"{evaluation.fallbacks:,}")
    cols[2].metric("Cost of the run", usd(evaluation.cost_usd))
    st.dataframe([{"category": label(c), "precision": round(s.precision, 3), "recall": round(s.recall, 3),
                   "support": s.support}
                  for c, s in evaluation.per_category.items()],
                 hide_index=True, width="stretch")
    shown_categories = [label(c) for c in CATEGORIES]
    heat = go.Figure(go.Heatmap(
        z=[[evaluation.confusion[t][p] for p in CATEGORIES] for t in CATEGORIES],
        x=shown_categories, y=shown_categories, colorscale="Blues", texttemplate="%{z}",
        hovertemplate="labelled %{y}, predicted %{x}: %{z}<extra></extra>"))
    heat.update_layout(title="Confusion matrix (rows: label, columns: prediction)", xaxis_title="predicted",
                       yaxis_title="labelled", yaxis_autorange="reversed", margin={"t": 40})
    st.plotly_chart(heat, width="stretch")
    if evaluation.errors:
        st.caption("Labelled replies the provider failed on (left out)")
        st.dataframe([{"error": e} for e in evaluation.errors], hide_index=True, width="stretch")


if evaluation_batch_id is None:
    st.caption("No evaluation has run yet.")
else:
    evaluation_progress(evaluation_batch_id)
