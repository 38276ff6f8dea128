"""The Fine-tune page's runs and finished adapters. The page keeps nothing about a run but its name:
state, progress, losses, the options summary and the console come from the run folder
(`finetune.runs.RunState`) on every draw, redrawn by a polling fragment while a run is active, so a
reload, a closed tab or a run started from a shell shows the same thing."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.config import Settings
from core.models.local.adapters import find_adapters
from finetune.runs import ACTIVE, RunState, cancel_run, list_runs, resume_run
from ui.errors import shown_errors
from ui.feedback import plain, show_caption, show_error, show_info, show_success, show_warning

POLL_S = 2.0  # how often the runs fragment reads the run folders while a run is active
CONSOLE_LINES = 20
SELECTED_RUN = "ft_selected_run"
PENDING_RUN = "ft_pending_run"  # a run just started: shown once the list has it
SEEN = "ft_seen_states"
FLASH = "ft_flash"  # a message for the next draw (the page reruns after an action)
RUN_PARAM = "run"  # the address bar names the run shown, so a reload shows it again


def flash() -> None:
    message = st.session_state.pop(FLASH, None)
    if message:
        show_success(message, icon=":material/check:")


def runs_section(settings: Settings) -> None:
    """Every run in the adapters folder and the chosen one's progress, redrawn by a fragment every
    POLL_S seconds while a run is active (no polling when none is)."""
    st.subheader("Runs")
    active = any(run.active for run in list_runs(settings))
    st.fragment(_runs, run_every=POLL_S if active else None)(settings)


def _runs(settings: Settings) -> None:
    runs = list_runs(settings)
    if not runs:
        show_caption(f"No runs yet in {settings.adapters_dir}.")
        return
    _notice_ended(runs)
    rows = [
        {
            "run": run.name,
            "state": run.label,
            "step": f"{run.step} / {run.total_steps}" if run.total_steps else str(run.step),
            "eval loss before": run.eval_loss_before,
            "eval loss after": run.eval_loss_after,
            "started": run.started_at or "",
        }
        for run in runs
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    by_name = {run.name: run for run in runs}
    pending = st.session_state.pop(PENDING_RUN, None)
    if pending in by_name:
        st.session_state[SELECTED_RUN] = pending
    elif st.session_state.get(SELECTED_RUN) not in by_name:
        wanted = st.query_params.get(RUN_PARAM)
        st.session_state[SELECTED_RUN] = wanted if wanted in by_name else runs[0].name
    name = st.selectbox("Run", list(by_name), key=SELECTED_RUN, format_func=lambda n: f"{n} ({by_name[n].label})")
    if st.query_params.get(RUN_PARAM) != name:
        st.query_params[RUN_PARAM] = name
    run_details(settings, by_name[name])


def _notice_ended(runs: list[RunState]) -> None:
    """A run seen active that is not any more: rerun the whole app, so the sidebar's model list and
    the adapters below show a new adapter (and polling stops when nothing is active)."""
    seen: dict[str, str] = st.session_state.setdefault(SEEN, {})
    ended = any(seen.get(run.name) in ACTIVE and not run.active for run in runs)
    seen.clear()
    seen.update({run.name: run.state for run in runs})
    if ended:
        st.rerun(scope="app")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def _loss(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def loss_figure(rows: list[dict[str, Any]]) -> go.Figure:
    """Training loss by step (a line) and the held-out loss (points: before, every N steps, after)."""
    train = [r for r in rows if r.get("kind") == "train" and r.get("loss") is not None]
    evals = [r for r in rows if r.get("kind") == "eval" and r.get("eval_loss") is not None]
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(x=[r["step"] for r in train], y=[r["loss"] for r in train], mode="lines", name="training loss")
    )
    figure.add_trace(
        go.Scatter(
            x=[r["step"] for r in evals],
            y=[r["eval_loss"] for r in evals],
            mode="markers",
            marker={"size": 10, "symbol": "diamond"},
            name="eval loss (held out)",
        )
    )
    figure.update_layout(
        height=300,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        xaxis_title="step",
        yaxis_title="loss",
        legend={"orientation": "h", "y": 1.12},
    )
    return figure


def _headline(run: RunState, total: int | None) -> None:
    shown = run.name
    if run.state == "starting":
        show_info(f"{shown}: starting (the trainer is loading).", icon=":material/hourglass_top:")
    elif run.state == "running":
        show_info(f"{shown}: running, {run.phase or 'working'}.", icon=":material/model_training:")
    elif run.state == "finished":
        show_success(
            f"{shown}: finished after {run.step} steps. The adapter is offered in the sidebar's model list as "
            f"'VideoChat-R1.5 + LoRA {shown}' (no restart needed).",
            icon=":material/check_circle:",
        )
    elif run.state == "cancelled":
        show_warning(
            f"{shown}: cancelled at step {run.step}"
            + (f" of {total}" if total else "")
            + (". Resume continues from its last checkpoint." if run.resumable else "."),
            icon=":material/pause_circle:",
        )
    else:
        first = (run.message or "the trainer stopped").strip().splitlines()
        show_error(f"{shown}: failed: {first[-1] if first else ''}")


def run_details(settings: Settings, run: RunState) -> None:
    """One run: state, a progress bar, losses, ETA, the loss chart, cancel/resume, the console on failure."""
    rows = run.progress()
    train = [r for r in rows if r.get("kind") == "train"]
    total = run.total_steps or (train[-1].get("total_steps") if train else None)
    _headline(run, total)
    if total:
        st.progress(min(run.step / total, 1.0), text=plain(f"Step {run.step} of {total}"))
    last = train[-1] if train else None
    eta = last.get("eta_s") if last and run.active else None
    cols = st.columns(5)
    cols[0].metric("Step", f"{run.step} / {total}" if total else str(run.step))
    cols[1].metric("Training loss", _loss(last.get("loss") if last else None))
    cols[2].metric("Eval loss before", _loss(run.eval_loss_before), help="On the held-out examples, before training.")
    change = None
    if run.eval_loss_after is not None and run.eval_loss_before is not None:
        change = f"{run.eval_loss_after - run.eval_loss_before:+.4f}"
    cols[3].metric("Eval loss after", _loss(run.eval_loss_after), delta=change, delta_color="inverse")
    cols[4].metric("ETA", _duration(eta) if run.active else "-")
    if train or any(r.get("kind") == "eval" for r in rows):
        st.plotly_chart(
            loss_figure(rows), config={"displayModeBar": False, "scrollZoom": False}, key=f"ft_loss_{run.name}"
        )
    summary = run.summary()
    if summary:
        show_caption(summary)
    show_caption(f"Folder: {run.path}")

    if run.active and st.button("Cancel", icon=":material/stop_circle:", key=f"ft_cancel_{run.name}"):
        if cancel_run(run.path):
            show_info(
                "Cancel sent: the trainer stops after the current example and saves a checkpoint.",
                icon=":material/stop_circle:",
            )
        else:
            show_warning("The trainer had already stopped.")
    if run.resumable and st.button("Resume", icon=":material/play_arrow:", key=f"ft_resume_{run.name}"):
        with shown_errors(f"resuming {run.path}") as attempt:
            resume_run(settings, run.path)
        if not attempt.failed:
            st.session_state[FLASH] = f"Resumed {run.name} from its last checkpoint."
            st.rerun(scope="app")
    if run.state == "failed":
        console = run.console_tail(CONSOLE_LINES)
        if console:
            st.markdown("**Last lines of the console**")
            st.code(console, language=None)


def adapters_section(settings: Settings) -> None:
    st.subheader("Finished adapters")
    adapters = find_adapters(settings)
    if not adapters:
        show_caption(f"None yet in {settings.adapters_dir}.")
        return
    rows = []
    for adapter in adapters:
        sampling = adapter.sampling or {}
        rows.append(
            {
                "name": adapter.name,
                "base model": adapter.base_model or "",
                "rank": adapter.rank,
                "frames": sampling.get("frames"),
                "max pixels": sampling.get("max_pixels"),
                "config sha256": adapter.config_hash[:12],
                "folder": str(adapter.path),
            }
        )
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    st.caption(
        "Each one is offered in the sidebar's model list right away, as 'VideoChat-R1.5 + LoRA NAME' (no "
        "restart): it is loaded onto the one base model the first time a request names it. Ask with the "
        "frames and max pixels it was trained with to show it videos as it learned them."
    )
