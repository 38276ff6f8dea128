"""The settings of one training run: one object for the CLI, the app and the run folder.

The CLI parses its flags into `TrainOptions`; the app builds the same object from its form
and `to_argv()` turns it back into the flags of `python -m finetune`. The run folder keeps
it as `run_config.json`, which `--resume` reads back.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pydantic import BaseModel, Field, field_validator

from core.errors import InputError

# Defaults sized for a 24 GB GPU with the 7B model in bf16 (about 16.6 GB of weights), gradient
# checkpointing, and logits computed only where the loss needs them: 16 frames of at most
# 256 patches (the app's pixel default) are about 2k visual tokens a sample.
DEFAULT_FRAMES = 16
DEFAULT_MAX_PIXELS = 256 * 28 * 28
DEFAULT_LR = 1e-4  # LLaMA-Factory's LoRA default for this family
DEFAULT_RANK = 8
DEFAULT_ALPHA = 16

# Options that define what is trained: a resumed run must keep them (the data file too).
FIXED_ON_RESUME = (
    "data",
    "model_path",
    "lr",
    "rank",
    "alpha",
    "dropout",
    "frames",
    "fps",
    "max_pixels",
    "grad_accum",
    "eval_split",
    "warmup_ratio",
    "seed",
    "skip_bad_lines",
    "qlora",
    "gradient_checkpointing",
)


class TrainOptions(BaseModel):
    """Every hyper-parameter and path of a run (see `python -m finetune --help`)."""

    data: Path
    output: Path | None = None  # the run folder; None = <adapters_dir>/<timestamp>
    model_path: Path | None = None  # None = the app's model (VCHAT_MODEL_PATH, ./VideoChat-R1, the hub cache)
    epochs: float = Field(3.0, gt=0, le=1000)
    max_steps: int | None = Field(None, ge=1)  # overrides epochs
    lr: float = Field(DEFAULT_LR, gt=0, le=1)
    rank: int = Field(DEFAULT_RANK, ge=1, le=1024)
    alpha: float = Field(DEFAULT_ALPHA, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    frames: int = Field(DEFAULT_FRAMES, ge=1, le=256)
    fps: float | None = Field(None, gt=0, le=30)  # sample by rate (at most `frames`), as the app does
    max_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=4 * 28 * 28, le=16384 * 28 * 28)
    grad_accum: int = Field(8, ge=1, le=1024)
    eval_split: float = Field(0.1, ge=0, lt=1)
    eval_every: int = Field(0, ge=0)  # 0 = only before and after training
    save_every: int = Field(50, ge=1)
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    seed: int = 0
    skip_bad_lines: bool = False
    resume: bool = False
    qlora: bool = False  # 4-bit base model (needs bitsandbytes and a GPU)
    gradient_checkpointing: bool = True

    @field_validator("data", "output", "model_path", mode="after")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        # The trainer may run in another working directory (a subprocess of the app).
        return value.expanduser().absolute() if value is not None else None

    def to_argv(self) -> list[str]:
        """The flags of `python -m finetune` that give back these options."""
        argv = ["--data", str(self.data)]
        if self.output is not None:
            argv += ["--output", str(self.output)]
        if self.model_path is not None:
            argv += ["--model-path", str(self.model_path)]
        defaults = TrainOptions(data=self.data)
        for name in TrainOptions.model_fields:
            if name in ("data", "output", "model_path"):
                continue
            value = getattr(self, name)
            flag = "--" + name.replace("_", "-")
            if isinstance(value, bool):
                if name == "gradient_checkpointing":
                    argv += [] if value else ["--no-gradient-checkpointing"]
                elif value:
                    argv.append(flag)
            elif value is not None and value != getattr(defaults, name):
                argv += [flag, str(value)]
        return argv


def default_run_name(now: dt.datetime | None = None) -> str:
    """A timestamp name such as 20250102-030405 (sortable, a valid adapter name)."""
    return (now or dt.datetime.now()).strftime("%Y%m%d-%H%M%S")


def check_resume_options(saved: TrainOptions, given: dict[str, object]) -> None:
    """Refuse a resume whose options differ from the run's (it would train something else)."""
    changed = [
        f"--{name.replace('_', '-')} {given[name]} (the run has {getattr(saved, name)})"
        for name in FIXED_ON_RESUME
        if name in given and given[name] is not None and given[name] != getattr(saved, name)
    ]
    if changed:
        raise InputError(
            f"--resume keeps the run's settings, but these differ: {'; '.join(changed)}.",
            "Leave them out to resume, or start a new run in another folder. "
            "Only --epochs, --max-steps, --eval-every and --save-every may change on resume.",
        )
