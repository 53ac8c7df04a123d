"""Batches: upload a CSV, map its columns, see the pre-flight estimate, run, and watch progress.

The run happens in the background worker (not in this script), so closing the tab does not stop it; progress
is read from the database every two seconds and is right after a reload or from another tab.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, replace

import streamlit as st

from console import batch_label, enter, get_app, noun_for, plain, plural, readable, sidebar
from core.batches.creation import create_batch
from core.batches.heartbeat import list_workers
from core.batches.lifecycle import (
    BatchError,
    cancel_batch,
    item_errors,
    list_batches,
    resume_batch,
    start_batch,
    status,
)
from core.batches.uploads import plan_run
from core.costs.estimate import Estimate, estimate
from core.costs.money import md_usd, usd
from core.messages.library import list_templates
from core.messages.library import steps as step_specs
from core.people.columns import CANONICAL_FIELDS, REQUIRED_FIELDS, suggest_mapping
from core.people.prospects import import_prospects
from core.people.reading import UnreadableFile, open_table
from core.store.models import ItemState, WorkerState, utcnow

enter()  # the shell and the access gate, whichever address Streamlit started this run at

app = get_app()
sidebar(app)
st.title("Batches")
st.caption("Upload prospects, check what the run will cost, start it, and come back later: the run continues "
           "in the background when you close this tab.")

steps = step_specs(app.settings.data_dir)


@st.cache_data(max_entries=16, show_spinner=False)
def read_upload(digest: str, _data: bytes) -> tuple[list[str], int, str, str]:
    """An upload's headers, record count, encoding and delimiter, read once per content digest (reruns of the
    page do not read the file again)."""
    table = open_table(_data)  # read lazily: counting the records never holds the rows in memory
    return list(table.headers), sum(1 for _ in table.records()), table.encoding, table.delimiter


@st.cache_data(max_entries=32, ttl=300, show_spinner="Estimating…")
def cached_estimate(database: str, digest: str, ids: tuple[int, ...], step: str, template_name: str | None,
                    budget_level: str) -> Estimate:
    """The dry run of an upload's batch, once per database, content digest, choice and budget level."""
    return estimate(app, list(ids), step=step, template_name=template_name)

st.header("1. Upload prospects")
upload = st.file_uploader("CSV of prospects", type=["csv", "txt", "tsv"],
                          help="UTF-8, UTF-8 with BOM, Windows-1252 or UTF-16; comma, semicolon, tab or pipe")
if upload is not None:
    data = upload.getvalue()
    digest = hashlib.sha256(data).hexdigest()[:16]
    try:
        headers, records, encoding, delimiter = read_upload(digest, data)
    except UnreadableFile as exc:
        st.error(f"This file cannot be imported: {plain(exc)}")
        st.stop()
    st.text(f"{records:,} records, {len(headers)} columns, encoding {encoding}, delimiter {delimiter!r}")
    suggested = suggest_mapping(headers)
    with st.expander("Column mapping", expanded=any(f not in suggested for f in REQUIRED_FIELDS)):
        st.caption("Which column holds each field; unmapped columns stay available to templates as custom variables.")
        mapping: dict[str, str] = {}
        cols = st.columns(3)
        for i, field in enumerate(CANONICAL_FIELDS):
            options = ["(none)", *headers]
            default = options.index(suggested[field]) if field in suggested else 0
            label = f"{readable(field)}{' (required)' if field in REQUIRED_FIELDS else ''}"
            choice = cols[i % 3].selectbox(label, options, index=default, key=f"map_{digest}_{field}")
            if choice != "(none)":
                mapping[field] = choice
    if st.button("Import", type="primary", key=f"import_{digest}"):
        try:
            report = import_prospects(app, data, mapping)
        except (UnreadableFile, ValueError) as exc:
            st.error(f"Nothing was imported: {plain(exc)}")
        else:
            st.session_state["import"] = {"digest": digest, "report": report.as_json(),
                                          "ids": report.prospect_ids + report.existing_ids,
                                          "rejected": report.as_json()["rejected"],
                                          "flagged": report.flagged, "name": upload.name}

imported = st.session_state.get("import")
if imported:
    r = imported["report"]
    st.subheader(f"Imported {plain(imported['name'])}")
    c = st.columns(5)
    c[0].metric("Rows", f"{r['rows']:,}")
    c[1].metric("New", f"{r['accepted']:,}")
    c[2].metric("Duplicates", f"{r['duplicates']:,}")
    c[3].metric("Do-not-contact", f"{r['suppressed']:,}")
    c[4].metric("Rejected", f"{len(r['rejected']):,}")
    if imported["rejected"]:
        st.caption("Rejected rows (fix them in the file and upload again; the rest were imported)")
        st.dataframe(imported["rejected"], hide_index=True, width="stretch")
    if imported["flagged"]:
        flagged = len(imported["flagged"])
        st.warning(f"{plural(flagged, 'row')} {noun_for(flagged, 'carries', 'carry')} prompt-injection text; "
                   f"{noun_for(flagged, 'it gets', 'they get')} plain templates only and "
                   f"{noun_for(flagged, 'is', 'are')} never bulk-approved.", icon="🛡️")

    st.header("2. Pre-flight estimate")
    c1, c2, c3 = st.columns(3)
    step = c1.selectbox("Sequence step", list(steps), format_func=lambda s: steps[s].label)
    names = [t.name for t in list_templates(app, step)]
    template = c2.selectbox("Template", ["(choose by rule)", *names])
    concurrency = c3.number_input("Concurrency", 1, 64, app.settings.worker_concurrency)
    template_name = None if template == "(choose by rule)" else template
    plan = plan_run(app, imported["ids"], step)  # the database says what a run would do, whichever session asks
    ids = list(plan.to_run)
    if ids:
        for batch_id, held in plan.in_batches.items():
            st.info(f"{plural(held, 'prospect')} of this file {noun_for(held, 'is')} already in batch #{batch_id} "
                    f"for the {steps[step].label.lower()} step; left out so nobody is paid for twice.")
    if plan.left_out:
        st.info(f"{plural(plan.left_out, 'prospect')} of this file {noun_for(plan.left_out, 'is')} left out: "
                f"{noun_for(plan.left_out, 'it', 'they')} already {noun_for(plan.left_out, 'has', 'have')} a "
                f"{steps[step].label.lower()} message, replied (which stops or pauses the sequence), or "
                f"{noun_for(plan.left_out, 'is')} on the do-not-contact list.")
    if ids:
        state = app.budget_state()
        est = replace(cached_estimate(app.settings.database_url, imported["digest"], tuple(ids), step, template_name,
                                      state.level), remaining_usd=state.remaining_usd)
        e = st.columns(len(est.tiles))
        for col, tile in zip(e, est.tiles, strict=True):
            col.metric(tile.label, f"{tile.prospects:,}",
                       help=f"{md_usd(tile.cost_low_usd)} to {md_usd(tile.cost_high_usd)}")
        e = st.columns(3)
        e[0].metric("Estimated cost", f"{usd(est.cost_low_usd)} – {usd(est.cost_high_usd)}")
        e[1].metric("Input tokens", f"{est.input_tokens:,}")
        e[2].metric("Budget left", usd(est.remaining_usd))
        (st.success if est.fits else st.warning)(f"This batch {est.verdict}.")
        if est.sampled:
            st.caption(f"Estimated from an evenly spaced sample of {est.sampled:,} prospects.")

        st.header("3. Run")
        if st.button("Run batch", type="primary"):
            try:  # another session (or a `batch run`) may have taken these prospects a moment ago
                batch = create_batch(app, ids, step=step, template_name=template_name, concurrency=int(concurrency),
                                     name=imported["name"])
            except BatchError as exc:
                st.error(plain(exc))
            else:
                start_batch(app, batch.id)  # type: ignore[arg-type]
                st.session_state["follow"] = batch.id
                st.rerun()
    elif plan.latest_batch is not None:
        st.header("3. Run")
        st.info(f"Batch #{plan.latest_batch} was created for this file's prospects at the "
                f"{steps[step].label.lower()} step; follow it below.")
    else:
        st.header("3. Run")
        st.info(f"Nothing to run: every prospect of this file is left out at the {steps[step].label.lower()} step.")

st.header("Progress")
batches = list_batches(app)
if not batches:
    st.info("No batch yet. Upload a CSV above to start one.")
else:
    labels = {b.id: batch_label(b) for b in batches}
    follow = st.session_state.get("follow")
    chosen = st.selectbox("Batch", list(labels), format_func=lambda i: labels[i],
                          index=list(labels).index(follow) if follow in labels else 0)

    @st.fragment(run_every=2)
    def progress(batch_id: int) -> None:
        s = status(app, batch_id)
        st.progress(s.fraction, text=f"{s.done:,} / {s.items:,} done — {s.label}")
        m = st.columns(4)
        m[0].metric("Cost so far", usd(s.cost_usd))
        m[1].metric("Rate", f"{s.rate_per_s}/s" if s.rate_per_s else "—")
        m[2].metric("ETA", f"{s.eta_s} s" if s.eta_s is not None else "—")
        m[3].metric("Model calls", f"{s.calls:,}")
        st.dataframe([{"state": ItemState.label_of(k), "items": v} for k, v in s.counts.items()], hide_index=True,
                     width="stretch")
        if s.error:
            st.warning(plain(s.error))
        if s.errors:
            st.subheader(f"Item errors ({s.errors:,})")
            st.caption("Items whose last attempt failed. Failed ones are final; the others are tried again. "
                       "The last error:")
            st.text(s.last_error)  # plain text: an error may quote a provider's words
            st.dataframe([asdict(e) for e in item_errors(app, batch_id)], hide_index=True, width="stretch")
        workers_table()

    def workers_table() -> None:
        st.subheader("Workers")
        rows = list_workers(app)
        if not rows:
            st.caption("No worker has run yet. The console runs one in its own thread; `python -m core worker` "
                       "starts more.")
            return
        now = utcnow()
        st.caption(f"A worker that has not beaten for {app.settings.worker_silent_s:g} s is silent: its items and "
                   "budget holds go back at once.")
        st.dataframe([{"worker": w.id, "host": w.host, "pid": w.pid, "state": WorkerState.label_of(w.state),
                       "items held": w.items_held,
                       "batches": ", ".join(f"#{b}" for b in w.batches),
                       "last beat": f"{(now - w.last_beat_at).total_seconds():.0f} s ago",
                       "started": w.started_at.strftime("%Y-%m-%d %H:%M:%S UTC")} for w in rows],
                     hide_index=True, width="stretch")

    progress(chosen)
    b1, b2 = st.columns(2)
    if b1.button("Cancel batch"):
        try:
            cancel_batch(app, chosen)
        except BatchError as exc:
            st.error(plain(exc))
        st.rerun()
    if b2.button("Resume batch"):
        try:
            resume_batch(app, chosen)
        except BatchError as exc:
            st.error(plain(exc))
        st.rerun()
    st.page_link("pages/review.py", label="Review and export the messages", icon="✅")
