"""Checkpoints that a resumed run continues from exactly where the first one stopped.

A checkpoint is taken at an optimizer-step boundary: the adapter (peft's own format, so a
checkpoint is a usable adapter by itself), the optimizer and scheduler state, the torch RNG
state of that boundary (LoRA dropout draws from it) and the counters. It is written under a
temporary name (hidden, tagged with the writer's pid) and renamed, and an old one is renamed
away before it is deleted, so a kill at any moment never leaves a half checkpoint under a name
that `--resume` would pick; the next trainer of the run removes the temporaries.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from core.media.scratch import temporary_name
from finetune.run_files import CHECKPOINTS, checkpoint_dirs, latest_checkpoint, remove_tree

TRAINER_STATE = "trainer_state.pt"
KEEP_CHECKPOINTS = 2


@dataclass
class RngState:
    cpu: torch.Tensor
    cuda: list[torch.Tensor]

    @classmethod
    def capture(cls) -> RngState:
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
        return cls(torch.get_rng_state(), cuda)

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(self.cuda)


@dataclass
class TrainerState:
    step: int
    seconds: float  # training time over every session of the run
    rng: RngState
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]


def save_checkpoint(run_dir: Path, peft_model: Any, state: TrainerState) -> Path:
    root = run_dir / CHECKPOINTS
    target = root / f"step-{state.step:06d}"
    tmp = temporary_name(target)
    tmp.mkdir(parents=True)
    peft_model.save_pretrained(str(tmp))
    torch.save(
        {
            "step": state.step,
            "seconds": state.seconds,
            "rng_cpu": state.rng.cpu,
            "rng_cuda": state.rng.cuda,
            "optimizer": state.optimizer,
            "scheduler": state.scheduler,
        },
        tmp / TRAINER_STATE,
    )
    remove_tree(target)  # the same step saved again (a run cancelled where it was resumed)
    tmp.rename(target)
    for _, old in checkpoint_dirs(run_dir)[:-KEEP_CHECKPOINTS]:
        remove_tree(old)
    return target


def load_trainer_state(checkpoint: Path) -> TrainerState:
    raw = torch.load(checkpoint / TRAINER_STATE, map_location="cpu", weights_only=True)
    return TrainerState(
        step=int(raw["step"]),
        seconds=float(raw["seconds"]),
        rng=RngState(raw["rng_cpu"], list(raw["rng_cuda"])),
        optimizer=raw["optimizer"],
        scheduler=raw["scheduler"],
    )


def last_checkpoint(run_dir: Path) -> Path | None:
    found = latest_checkpoint(run_dir)
    return found[1] if found else None
