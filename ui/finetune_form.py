"""The Fine-tune page's hyper-parameters: the widgets (TrainOptions' defaults) and the TrainOptions
they make. Every key is prefixed `ft_`, so no other page collides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from finetune.options import TrainOptions
from ui.feedback import show_caption

PATCH = 28 * 28  # pixels of one 28x28 patch: max pixels are set in patches
RUN_NAME = "ft_run_name"
SAMPLING = ("frames", "fps", "max_pixels")  # what the dataset check decodes frames with

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


def _fields(values: dict[str, Any]) -> dict[str, Any]:
    """The widget values as TrainOptions fields (0 = unset for max steps and fps; patches to pixels)."""
    fields = {name: values[name] for name in FIELDS}
    fields.update(
        max_steps=int(values["max_steps"]) or None,
        max_pixels=int(values["max_pixels"]) * PATCH,
        skip_bad_lines=bool(values["skip_bad_lines"]),
        fps=float(values["fps"]) or None,
    )
    return fields


def build_options(data: Path, values: dict[str, Any]) -> TrainOptions:
    """TrainOptions from the widget values (pydantic's ValidationError on a value out of range)."""
    return TrainOptions(data=data, **_fields(values))


def sampling_options(data: Path, values: dict[str, Any]) -> TrainOptions:
    """TrainOptions with only the sampling from the widgets: what the dataset check depends on."""
    fields = _fields(values)
    return TrainOptions(data=data, **{name: fields[name] for name in SAMPLING})
