"""`python -m finetune --data FILE.jsonl [--output lora_adapters/NAME] ...`: train a LoRA adapter.

Exit codes as for `python -m core`: 0 finished (or cancelled cleanly, with a checkpoint to
resume from), 2 bad input (the dataset report, or one line saying what to fix), 1 internal error
(or a trainer whose app was gone and that did not stop in time, see `finetune.trainer.ORPHAN_GRACE_S`).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from core.config import get_settings
from core.errors import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_OK, VChatError, validation_message
from core.media.scratch import sweep_stale
from core.models.registry import check_installed
from finetune.options import DEFAULT_ALPHA, DEFAULT_FRAMES, DEFAULT_LR, DEFAULT_MAX_PIXELS, DEFAULT_RANK, TrainOptions


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"error: {message} (see {self.prog} --help)\n")
        raise SystemExit(EXIT_BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="vchat-finetune",
        description="Train a LoRA adapter of the local model on videos. Every option left out keeps its "
        "default (or, with --resume, the run's own value).",
    )
    p.add_argument("--data", help="the JSONL dataset (not needed with --resume)")
    p.add_argument("--output", help="the run folder, e.g. lora_adapters/NAME (default: a timestamp there)")
    p.add_argument("--model-path", help="the base checkpoint (default: the app's local model)")
    p.add_argument("--epochs", type=float, help="passes over the training examples (default 3)")
    p.add_argument("--max-steps", type=int, help="optimizer steps; overrides --epochs")
    p.add_argument("--lr", type=float, help=f"peak learning rate (default {DEFAULT_LR:g}, cosine decay)")
    p.add_argument("--rank", type=int, help=f"LoRA rank (default {DEFAULT_RANK})")
    p.add_argument("--alpha", type=float, help=f"LoRA alpha (default {DEFAULT_ALPHA})")
    p.add_argument("--dropout", type=float, help="LoRA dropout (default 0.05)")
    p.add_argument("--frames", type=int, help=f"frames per video (default {DEFAULT_FRAMES})")
    p.add_argument("--fps", type=float, help="sample at this rate, at most --frames (default: uniform)")
    p.add_argument("--max-pixels", type=int, help=f"pixels per frame at most (default {DEFAULT_MAX_PIXELS})")
    p.add_argument("--grad-accum", type=int, help="examples per optimizer step (default 8)")
    p.add_argument("--eval-split", type=float, help="share of examples held out for eval loss (default 0.1)")
    p.add_argument("--eval-every", type=int, help="also evaluate every N steps (default: before and after only)")
    p.add_argument("--save-every", type=int, help="checkpoint every N steps (default 50)")
    p.add_argument("--warmup-ratio", type=float, help="share of steps of linear warm-up (default 0.03)")
    p.add_argument("--seed", type=int, help="seed of the split, the order and the LoRA init (default 0)")
    p.add_argument("--skip-bad-lines", action="store_const", const=True, help="train on the valid lines only")
    p.add_argument("--qlora", action="store_const", const=True, help="4-bit base model (bitsandbytes, GPU)")
    p.add_argument(
        "--no-gradient-checkpointing",
        dest="gradient_checkpointing",
        action="store_const",
        const=False,
        help="faster, needs more memory",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --output from its last checkpoint")
    p.add_argument(
        "--parent-pid",
        type=int,
        metavar="PID",
        help="stop as on SIGTERM (checkpoint, state cancelled) when process PID is gone; the app passes its own",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="log to train.log only")
    return p


def given_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options typed on the command line (None = not given), paths made absolute."""
    given = {k: v for k, v in vars(args).items() if k not in ("resume", "quiet") and v is not None and k in _FIELDS}
    for key in ("data", "output", "model_path"):
        if key in given:
            given[key] = Path(given[key]).expanduser().absolute()
    return given


_FIELDS = set(TrainOptions.model_fields)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.filterwarnings("ignore", category=FutureWarning)  # transformers' deprecation notes, every step
    try:
        check_installed("local")  # torch, transformers, peft...: say what to install, before any work
        settings = get_settings()
        sweep_stale(settings.data_dir)  # what a killed vChat process left in the data dir
        given = given_options(args)
        if args.resume:
            if "output" not in given:
                raise VChatError("--resume needs --output, the run folder to continue.")
            options = TrainOptions(data=given.get("data", given["output"]), output=given["output"], resume=True)
        else:
            if "data" not in given:
                raise VChatError("--data is required: the JSONL file to train on.")
            options = TrainOptions(**given)
        from finetune.trainer import DatasetInvalid, train

        try:
            outcome = train(options, settings, given=given, quiet=args.quiet, parent_pid=args.parent_pid)
        except DatasetInvalid as exc:
            if args.quiet:  # otherwise the log has just listed every bad line on stderr
                sys.stderr.write(exc.report.format() + "\n")
            raise
    except ValidationError as exc:
        sys.stderr.write(f"error: {validation_message(exc, as_option=True)}\n")
        return EXIT_BAD_INPUT
    except VChatError as exc:
        sys.stderr.write(f"error: {exc.one_line()}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # internal: the traceback is in train.log when the run folder exists
        sys.stderr.write(f"error: internal error: {type(exc).__name__}: {exc}\n")
        return EXIT_INTERNAL
    if outcome.state == "cancelled":
        where = f"at step {outcome.step} of {outcome.total_steps}" if outcome.total_steps else "before training"
        sys.stderr.write(f"cancelled {where}; resume with: python -m finetune --output {outcome.run_dir} --resume\n")
    else:
        sys.stderr.write(
            f"finished {outcome.step} steps; eval loss before {_fmt(outcome.eval_loss_before)}, "
            f"after {_fmt(outcome.eval_loss_after)}\n"
        )
        print(outcome.run_dir / "final_checkpoint")
    return EXIT_OK


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


if __name__ == "__main__":
    sys.exit(main())
