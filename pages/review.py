"""Review queue: filter a batch's messages, approve, reject or edit them, and export what was approved."""

from __future__ import annotations

import dataclasses

import streamlit as st

from console import batch_label, enter, get_app, noun_for, plain, plural, readable, sidebar
from core.batches.lifecycle import list_batches
from core.messages.approvals import (
    QueueFilter,
    ReviewError,
    approve,
    approve_passed,
    edit,
    export_file,
    queue,
    reject,
)
from core.messages.guards import GUARD_NAMES
from core.store.models import Approval, BatchKind, MessageState

enter()  # the shell and the access gate, whichever address Streamlit started this run at

app = get_app()
sidebar(app)
st.title("Review queue")

batches = list_batches(app, kind=BatchKind.PERSONALIZE)  # the batches that write messages
if not batches:
    st.info("No batch yet: start one on the Batches page.")
    st.stop()

labels = {b.id: batch_label(b) for b in batches}
batch_id = st.selectbox("Batch", list(labels), format_func=lambda i: labels[i])

with st.expander("Filters", expanded=False):
    c = st.columns(4)
    states = c[0].multiselect("State", [m.value for m in MessageState], format_func=MessageState.label_of)
    approval = c[1].multiselect("Approval", [m.value for m in Approval], format_func=Approval.label_of)
    guard = c[2].selectbox("Failed guard", ["(any)", *GUARD_NAMES], format_func=lambda g: g if g == "(any)" else
                           readable(g))
    template = c[3].text_input("Template name")
    c = st.columns(3)
    min_score = c[0].number_input("Min review score", 0.0, 10.0, 0.0)
    use_score = c[1].checkbox("Filter by review score")
    flagged = c[2].checkbox("Only injection-flagged prospects")

rows = queue(app, QueueFilter(batch_id=batch_id, states=tuple(states), approval=tuple(approval),
                              guard_failed=None if guard == "(any)" else guard,
                              min_score=min_score if use_score else None, template=template or None,
                              flagged_only=flagged))
blocked = sum(r.do_not_contact for r in rows)
st.caption(plural(len(rows), "message") + (f"; {blocked:,} to {noun_for(blocked, 'a person', 'people')} on the "
                                           "do-not-contact list (never approved, never exported)" if blocked else ""))
if not rows:
    st.info("No message matches these filters.")
else:
    columns = ["id", "prospect", "company", "do_not_contact", "state", "approval", "message", "template",
               "template_text", "variant", "guards_failed", "review_score", "flagged", "reason", "cost_usd"]
    shown = [{**dataclasses.asdict(r), "state": MessageState.label_of(r.state),
              "approval": Approval.label_of(r.approval)} for r in rows]
    st.dataframe(shown, hide_index=True, width="stretch", column_order=columns,
                 column_config={c: readable(c) for c in columns})
    ids = [r.id for r in rows]
    picked = st.multiselect("Messages to act on", ids, key="review_picked")

    def act(action: str) -> None:
        """Runs before the next script run, so the table below already shows the result."""
        chosen = st.session_state.get("review_picked") or []
        try:
            if action == "approve":
                flash = ("success", f"Approved {plural(approve(app, chosen), 'message')}.")
            elif action == "reject":
                flash = ("success", f"Rejected {plural(reject(app, chosen), 'message')}.")
            else:
                flash = ("success", f"Approved {plural(approve_passed(app, batch_id), 'message')} (ready, all "
                                    "guards and review passed, prospect not flagged).")
        except ReviewError as exc:
            flash = ("error", plain(exc))
        st.session_state["review_flash"] = flash

    a, b, c2 = st.columns(3)
    a.button("Approve selected", disabled=not picked, on_click=act, args=("approve",))
    b.button("Reject selected", disabled=not picked, on_click=act, args=("reject",))
    c2.button("Approve everything that passed", type="primary", on_click=act, args=("passed",))
    flash = st.session_state.pop("review_flash", None)
    if flash:
        (st.success if flash[0] == "success" else st.error)(flash[1])

    st.subheader("Edit a message")
    target = st.selectbox("Message", ids, key="edit_target")
    current = next(r for r in rows if r.id == target)
    st.caption("Template")
    st.code(current.template_text or "(template not found)", language=None, wrap_lines=True)
    new_text = st.text_area("Message text", value=current.message, key=f"edit_{target}")
    if st.button("Save edit and re-check"):
        results = edit(app, target, new_text)
        st.dataframe([dataclasses.asdict(r) for r in results], hide_index=True, width="stretch")
        if all(r.passed for r in results):
            st.success("The edit passes every guard; approve it above.")
        else:
            st.warning("The edit fails a guard; it cannot be approved until it passes.")

st.subheader("Export approved messages")
as_csv, as_json = export_file(app, batch_id, "csv"), export_file(app, batch_id, "json")
(st.warning if as_csv.withheld else st.caption)(as_csv.summary())
e1, e2 = st.columns(2)
e1.download_button("Download CSV", as_csv.data, file_name=f"batch-{batch_id}-approved.csv", mime="text/csv")
e2.download_button("Download JSON", as_json.data, file_name=f"batch-{batch_id}-approved.json",
                   mime="application/json")
