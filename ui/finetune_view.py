"""The Fine-tune page's sections: a dataset checked line by line, the hyper-parameters, Start,
the runs (progress read from each run's folder by a polling fragment) and the finished adapters.

The trainer is `python -m finetune`, started by `finetune.runs.start_run` as a subprocess in
its own session, never in the app's process. The page keeps nothing about a run but its name:
state, progress and losses come from the run folder on every draw, so a reload, a closed tab
or a run started from a shell shows the same thing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from pydantic import ValidationError

from core.config import Settings
from core.errors import InputError, VChatError
from core.models.local.adapters import ADAPTER_NAME, find_adapters
from core.models.local.host import HOST
from core.models.status import weights_status
from finetune.dataset import ValidationReport
from finetune.options import TrainOptions
from finetune.run_files import CONSOLE, LOG, RUN_CONFIG, is_unused
from finetune.runs import RunState, cancel_run, check_dataset, list_runs, read_progress, resume_run, start_run
from ui.feedback import (
    md,
    plain,
    show_caption,
    show_error,
    show_info,
    show_success,
    show_warning,
    spinner,
)

PATCH = 28 * 28  # pixels of one 28x28 patch: max pixels are set in patches
POLL_S = 2.0  # how often the runs fragment reads the run folders while a run is active
MAX_LISTED = 500
MAX_UPLOAD_MB = 64
MAX_CACHED_REPORTS = 8
CONSOLE_LINES = 20
SKIPPED_DIRS = ("media", "tmp", "results")  # the data folder's caches: no datasets in there

# Session-state keys (widgets and the page's own memory), all prefixed so no other page collides.
SOURCE = "ft_source"
DATASET = "ft_dataset"
UPLOAD = "ft_upload"
REPORTS = "ft_reports"
RECHECK = "ft_recheck"
RUN_NAME = "ft_run_name"
SELECTED_RUN = "ft_selected_run"
PENDING_RUN = "ft_pending_run"
SEEN = "ft_seen_states"
FLASH = "ft_flash"
ANYWAY = "ft_beside_loaded_model"
RUN_PARAM = "run"  # the address bar names the run shown, so a reload shows it again
SOURCES = ("From a folder", "Upload")

log = logging.getLogger("vchat.ui")

# The hyper-parameters on the page: TrainOptions field -> session-state key.
FIELDS = {
    "epochs": "ft_epochs",
    "max_steps": "ft_max_steps",
    "lr": "ft_lr",
    "grad_accum": "ft_grad_accum",
    "rank": "ft_rank",
    "alpha": "ft_alpha",
    "frames": "ft_frames",
    "max_pixels": "ft_max_patches",  # in patches on the page
    "eval_split": "ft_eval_split",
    "skip_bad_lines": "ft_skip_bad_lines",
    "fps": "ft_fps",
    "eval_every": "ft_eval_every",
    "save_every": "ft_save_every",
    "seed": "ft_seed",
}


def _default(name: str) -> Any:
    return TrainOptions.model_fields[name].default


# --- the dataset -----------------------------------------------------------------------------------


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def dataset_files(settings: Settings) -> list[Path]:
    """JSONL files in the data folder and the media folder (hidden files, links, the data folder's
    caches and the run folders left out), sorted, at most MAX_LISTED."""
    skipped = [settings.data_dir / name for name in SKIPPED_DIRS] + [settings.adapters_dir]
    found: dict[Path, None] = {}
    for root in (settings.data_dir, settings.media_dir):
        if not root.is_dir():
            continue
        for folder, dirs, files in os.walk(root):
            here = Path(folder)
            dirs[:] = sorted(
                d for d in dirs if not d.startswith(".") and not any(_inside(here / d, s) for s in skipped)
            )
            for name in sorted(files):
                path = here / name
                if name.startswith(".") or not name.lower().endswith(".jsonl") or path.is_symlink():
                    continue
                found[path] = None
                if len(found) >= MAX_LISTED:
                    return sorted(found)
    return sorted(found)


def _dataset_label(settings: Settings, path: Path) -> str:
    for root, where in ((settings.data_dir, "data folder"), (settings.media_dir, "media folder")):
        if _inside(path, root):
            return f"{path.relative_to(root).as_posix()} ({where})"
    return str(path)


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_upload(settings: Settings, filename: str, data: bytes) -> Path:
    """Keep an uploaded dataset as <data_dir>/datasets/NAME.jsonl, atomically and never over
    another file: the same bytes again reuse their file; other bytes under a taken name get
    NAME-2.jsonl, NAME-3.jsonl... (a hard link of a finished temp file either takes a name or fails)."""
    folder = settings.data_dir / "datasets"
    folder.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(filename).stem).strip("._-") or "dataset"
    digest = _sha256_bytes(data)
    temp = folder / f".upload-{uuid.uuid4().hex}.part"
    try:
        with temp.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        for number in range(1, 1000):
            target = folder / (f"{stem}.jsonl" if number == 1 else f"{stem}-{number}.jsonl")
            if target.exists():
                if target.is_file() and not target.is_symlink() and _sha256_file(target) == digest:
                    return target
                continue
            try:
                os.link(temp, target)
            except FileExistsError:  # another session took the name a moment ago
                continue
            return target
    finally:
        temp.unlink(missing_ok=True)
    raise InputError(f"Too many datasets called {stem} in {folder}.", "Rename the file and upload it again.")


def dataset_picker(settings: Settings) -> Path | None:
    """Pick a JSONL file from the data or media folder, or upload one; return its path."""
    st.subheader("Dataset")
    kind = st.radio("Dataset", SOURCES, horizontal=True, key=SOURCE, label_visibility="collapsed")
    if kind == "Upload":
        upload = st.file_uploader(
            "JSONL dataset",
            type=["jsonl"],
            key=UPLOAD,
            max_upload_size=MAX_UPLOAD_MB,
            help=f"Kept in {settings.data_dir / 'datasets'}; an existing file is never overwritten.",
        )
        if upload is None:
            st.caption(
                md(
                    "One JSON object a line: `video_path` and `text` (USER: / ASSISTANT: turns) or `messages`. "
                    "Video paths are looked up in the media folder {}.",
                    settings.media_dir,
                )
            )
            return None
        try:
            path = save_upload(settings, upload.name, upload.getvalue())
        except (OSError, VChatError) as exc:
            show_error(exc if isinstance(exc, VChatError) else f"The upload could not be saved: {exc}")
            return None
        show_caption(f"Saved as {path} (listed under '{SOURCES[0]}' from now on).")
        return path
    files = dataset_files(settings)
    if not files:
        show_info(
            f"No .jsonl datasets in the data folder {settings.data_dir} or the media folder {settings.media_dir} "
            "yet. Put one there, or upload one.",
            icon=":material/dataset:",
        )
        return None
    options = [str(p) for p in files]
    if st.session_state.get(DATASET) not in options:
        st.session_state.pop(DATASET, None)
    chosen = st.selectbox("JSONL file", options, key=DATASET, format_func=lambda p: _dataset_label(settings, Path(p)))
    return Path(chosen) if chosen else None


# --- the hyper-parameters --------------------------------------------------------------------------


def hyper_parameters() -> dict[str, Any]:
    """The options widgets (TrainOptions' defaults, sized for a 24 GB GPU); their raw values."""
    st.subheader("Hyper-parameters")
    st.caption(
        "The defaults fit the 7B model in bf16 on a 24 GB GPU. Lower the frames or max pixels to fit a "
        "smaller card; max steps, when set, overrides the epochs."
    )
    c = st.columns(4)
    c[0].number_input(
        "Epochs", min_value=0.0, max_value=1000.0, value=_default("epochs"), step=1.0, key=FIELDS["epochs"]
    )
    c[1].number_input("Max steps (0 = by epochs)", min_value=0, value=0, step=10, key=FIELDS["max_steps"])
    c[2].number_input(
        "Learning rate", min_value=0.0, max_value=1.0, value=_default("lr"), step=1e-5, format="%.1e", key=FIELDS["lr"]
    )
    c[3].number_input(
        "Gradient accumulation (examples per step)",
        min_value=1,
        max_value=1024,
        value=_default("grad_accum"),
        key=FIELDS["grad_accum"],
    )
    c = st.columns(4)
    c[0].number_input("LoRA rank", min_value=1, max_value=1024, value=_default("rank"), key=FIELDS["rank"])
    c[1].number_input("LoRA alpha", min_value=0.0, value=float(_default("alpha")), step=1.0, key=FIELDS["alpha"])
    c[2].number_input("Frames per video", min_value=1, max_value=256, value=_default("frames"), key=FIELDS["frames"])
    c[3].number_input(
        "Max pixels per frame (28x28 patches)",
        min_value=4,
        max_value=16384,
        value=_default("max_pixels") // PATCH,
        step=16,
        key=FIELDS["max_pixels"],
    )
    c = st.columns(4)
    c[0].number_input(
        "Held-out share (eval split)",
        min_value=0.0,
        max_value=0.9,
        value=_default("eval_split"),
        step=0.05,
        key=FIELDS["eval_split"],
    )
    c[1].text_input(
        "Run name",
        key=RUN_NAME,
        placeholder="a timestamp",
        help="Letters, digits, '.', '_' and '-'; the adapter's name. An existing run is never overwritten.",
    )
    c[2].checkbox(
        "Skip bad lines",
        value=False,
        key=FIELDS["skip_bad_lines"],
        help="Train on the valid lines only; without it a dataset with errors is refused.",
    )
    with st.expander("More options"):
        c = st.columns(4)
        c[0].number_input(
            "Sample by fps (0 = the fixed frame count)",
            min_value=0.0,
            max_value=30.0,
            value=0.0,
            step=0.5,
            key=FIELDS["fps"],
        )
        c[1].number_input(
            "Evaluate every N steps (0 = before and after only)",
            min_value=0,
            value=_default("eval_every"),
            key=FIELDS["eval_every"],
        )
        c[2].number_input(
            "Checkpoint every N steps", min_value=1, value=_default("save_every"), key=FIELDS["save_every"]
        )
        c[3].number_input("Seed", min_value=0, value=_default("seed"), key=FIELDS["seed"])
    values = {name: st.session_state.get(key) for name, key in FIELDS.items()}
    patches = int(values["max_pixels"] or 0)
    side = int((patches * PATCH) ** 0.5)
    show_caption(f"Max pixels: {patches} patches = {patches * PATCH:,} pixels (about {side}x{side}) per frame.")
    values["run_name"] = str(st.session_state.get(RUN_NAME) or "").strip()
    return values


def build_options(data: Path, values: dict[str, Any]) -> TrainOptions:
    """TrainOptions from the widget values (pydantic's ValidationError on a value out of range)."""
    return TrainOptions(
        data=data,
        epochs=values["epochs"],
        max_steps=int(values["max_steps"]) or None,
        lr=values["lr"],
        grad_accum=values["grad_accum"],
        rank=values["rank"],
        alpha=values["alpha"],
        frames=values["frames"],
        max_pixels=int(values["max_pixels"]) * PATCH,
        eval_split=values["eval_split"],
        skip_bad_lines=bool(values["skip_bad_lines"]),
        fps=float(values["fps"]) or None,
        eval_every=values["eval_every"],
        save_every=values["save_every"],
        seed=values["seed"],
    )


# --- the validation report --------------------------------------------------------------------------


def _report_key(settings: Settings, options: TrainOptions) -> str:
    """What the report depends on: the file's bytes and place (relative videos resolve beside it),
    the media folder, and the sampling whose frames are decoded."""
    parts = [
        _sha256_file(options.data),
        str(options.data),
        str(settings.media_dir),
        str(options.frames),
        str(options.fps),
        str(options.max_pixels),
    ]
    return "|".join(parts)


def dataset_report(settings: Settings, options: TrainOptions) -> ValidationReport:
    """check_dataset's report for these options, from session state when the file and the
    sampling are unchanged; otherwise checked now, under a spinner."""
    key = _report_key(settings, options)
    cache: dict[str, ValidationReport] = st.session_state.setdefault(REPORTS, {})
    if st.session_state.pop(RECHECK, False):
        cache.pop(key, None)
    if key not in cache:
        with spinner(
            f"Checking every line of {options.data.name}: each video through the media pipeline, "
            "its training frames decoded...",
            show_time=True,
        ):
            report = check_dataset(settings, options)
        cache[key] = report
        while len(cache) > MAX_CACHED_REPORTS:
            cache.pop(next(iter(cache)))
    return cache[key]


def report_section(settings: Settings, data: Path | None, values: dict[str, Any]) -> ValidationReport | None:
    """Check the picked dataset (cached) and show the report: counts, then every error by line."""
    if data is None:
        return None
    st.subheader("Dataset check")
    try:
        sampling = TrainOptions(
            data=data,
            frames=values["frames"],
            fps=float(values["fps"]) or None,
            max_pixels=int(values["max_pixels"]) * PATCH,
        )
        report = dataset_report(settings, sampling)
    except (VChatError, ValidationError) as exc:
        show_error(exc)
        return None
    except OSError as exc:
        show_error(f"The dataset {data} cannot be read: {exc.strerror or exc}.")
        return None
    except Exception as exc:  # a bug, not the file: one line here, the traceback in the server log
        log.exception("dataset check failed")
        show_error(exc)
        return None
    counts = (
        f"{report.lines} lines, {len(report.examples)} valid, {len(report.bad_lines)} with errors, "
        f"{report.videos} videos checked"
    )
    if report.ok:
        show_success(f"Ready to train: {counts}.", icon=":material/check_circle:")
    elif report.examples:
        show_warning(
            f"{counts}. Fix the lines below, or tick 'Skip bad lines' to train on the "
            f"{len(report.examples)} valid ones.",
            icon=":material/warning:",
        )
    else:
        show_error(f"Nothing to train on: {counts}.")
    if report.errors:
        rows = [{"line": e.line, "problem": e.message} for e in report.errors]
        st.dataframe(pd.DataFrame(rows), hide_index=True)
    if st.button("Check again", icon=":material/refresh:", help="Videos may have changed since the last check."):
        st.session_state[RECHECK] = True
        st.rerun()
    return report


# --- start ------------------------------------------------------------------------------------------


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _gpu_is_free(settings: Settings) -> bool:
    """False while this process holds the local model on the GPU and the person has not chosen to
    train beside it; draws the question (unload first) or, without a GPU, the CPU note."""
    if not _cuda_available():
        show_info(
            "No GPU here: the trainer runs on the CPU, which it shares with the app (analyses are slower "
            "while it runs).",
            icon=":material/memory:",
        )
        return True
    held = HOST.loaded  # with CUDA there, the app loads the model onto the GPU
    if held is None:
        return True
    show_warning(
        f"The app holds the local model ({held.info.name}) on {held.device}, "
        "and training on the same GPU needs that memory. "
        "Unload it first; it loads again with the next local analysis.",
        icon=":material/memory:",
    )
    cols = st.columns([1, 2])
    if cols[0].button("Unload the local model", icon=":material/eject:", help="Waits for a running analysis."):
        HOST.unload()
        st.session_state[FLASH] = "The local model was unloaded: the GPU is free for training."
        st.rerun()
    return bool(cols[1].checkbox("Train beside it anyway (the GPU has room for both)", key=ANYWAY))


def _check_name(settings: Settings, name: str) -> None:
    """The run name's problems before any work (start_run checks again)."""
    if not name:
        return
    if not ADAPTER_NAME.match(name):
        raise InputError(f"'{name}' cannot be a run name: use letters, digits, '.', '_' and '-'.")
    if not is_unused(settings.adapters_dir / name):
        raise InputError(f"A run called {name} already exists; choose another name (runs are never overwritten).")


def start_section(
    settings: Settings, data: Path | None, values: dict[str, Any], report: ValidationReport | None
) -> None:
    """The Start button: options checked, the dataset report required, the trainer started."""
    weights = weights_status(settings)
    if not weights.found:
        show_warning(f"No base model to train: {weights.problem}", icon=":material/folder_off:")
    else:
        show_caption(f"Base model: {weights.path} ({weights.origin})")
    free = _gpu_is_free(settings)
    disabled = data is None or not weights.found or not free
    if not st.button("Start training", type="primary", icon=":material/model_training:", disabled=disabled):
        return
    assert data is not None
    try:
        options = build_options(data, values)
        _check_name(settings, values["run_name"])
        if report is None:
            report = dataset_report(settings, options)
        if report.errors and not options.skip_bad_lines:
            raise InputError(
                f"The dataset has {len(report.bad_lines)} lines with errors (listed above).",
                f"Fix them, or tick 'Skip bad lines' to train on the {len(report.examples)} valid lines.",
            )
        if not report.examples:
            raise InputError("The dataset has no valid line to train on.")
        run_dir = start_run(settings, options, name=values["run_name"] or None)
    except (VChatError, ValidationError) as exc:
        show_error(exc)
        return
    except OSError as exc:
        show_error(f"The run could not be started: {exc}.")
        return
    except Exception as exc:
        log.exception("starting a run failed")
        show_error(exc)
        return
    st.session_state[PENDING_RUN] = run_dir.name
    st.session_state[FLASH] = f"Started {run_dir.name}: python -m finetune runs as a separate process."
    st.rerun()


def flash() -> None:
    message = st.session_state.pop(FLASH, None)
    if message:
        show_success(message, icon=":material/check:")


# --- the runs ---------------------------------------------------------------------------------------


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
            "state": _state_text(run),
            "step": f"{run.step} / {run.total_steps}" if run.total_steps else str(run.step),
            "eval loss before": run.eval_loss_before,
            "eval loss after": run.eval_loss_after,
            "started": run.started_at or "",
        }
        for run in runs
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    names = [run.name for run in runs]
    by_name = {run.name: run for run in runs}
    pending = st.session_state.pop(PENDING_RUN, None)
    if pending in by_name:
        st.session_state[SELECTED_RUN] = pending
    elif st.session_state.get(SELECTED_RUN) not in by_name:
        wanted = st.query_params.get(RUN_PARAM)
        st.session_state[SELECTED_RUN] = wanted if wanted in by_name else names[0]
    name = st.selectbox("Run", names, key=SELECTED_RUN, format_func=lambda n: f"{n} ({_state_text(by_name[n])})")
    if st.query_params.get(RUN_PARAM) != name:
        st.query_params[RUN_PARAM] = name
    run_details(settings, by_name[name])


def _notice_ended(runs: list[RunState]) -> None:
    """A run seen active that is not any more: rerun the whole app, so the sidebar's model list and
    the adapters below show a new adapter (and polling stops when nothing is active)."""
    seen: dict[str, str] = st.session_state.setdefault(SEEN, {})
    ended = any(seen.get(run.name) in ("starting", "running") and not run.active for run in runs)
    seen.clear()
    seen.update({run.name: run.state for run in runs})
    if ended:
        st.rerun(scope="app")


def _state_text(run: RunState) -> str:
    if run.state == "running" and run.phase:
        return f"running: {run.phase}"
    return run.state


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


def _run_options(run: RunState) -> str | None:
    """The run's main options from its run_config.json (None until the trainer wrote it)."""
    try:
        saved = json.loads((run.path / RUN_CONFIG).read_text(encoding="utf-8"))
        options, data = saved["options"], saved["data"]
        return (
            f"Data: {data['path']} · lr {options['lr']:g} · rank {options['rank']} · alpha {options['alpha']:g} · "
            f"{options['frames']} frames of at most {options['max_pixels']:,} pixels · gradient accumulation "
            f"{options['grad_accum']} · {run.train_examples} training, {run.eval_examples} held-out examples"
        )
    except (OSError, ValueError, KeyError, TypeError):  # a run_config of another version: no summary
        return None


def _tail(path: Path, lines: int = CONSOLE_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").rstrip()
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


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


def run_details(settings: Settings, run: RunState) -> None:
    """One run: state, a progress bar, losses, ETA, the loss chart, cancel/resume, the console on failure."""
    rows = read_progress(run.path)
    train = [r for r in rows if r.get("kind") == "train"]
    total = run.total_steps or (train[-1].get("total_steps") if train else None)
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
    described = _run_options(run)
    if described:
        show_caption(described)
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
        try:
            resume_run(settings, run.path)
        except VChatError as exc:
            show_error(exc)
        except Exception as exc:
            log.exception("resuming %s failed", run.path)
            show_error(exc)
        else:
            st.session_state[FLASH] = f"Resumed {run.name} from its last checkpoint."
            st.rerun(scope="app")
    if run.state == "failed":
        console = _tail(run.path / CONSOLE) or _tail(run.path / LOG)
        if console:
            st.markdown("**Last lines of the console**")
            st.code(console, language=None)


# --- the adapters ------------------------------------------------------------------------------------


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
