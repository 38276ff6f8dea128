"""The training run: validate, load, train LoRA, checkpoint, evaluate, save. A plain torch loop.

One example a forward pass (videos differ in length; no padding to get wrong), gradients
accumulated over `grad_accum` examples per optimizer step. The order of examples is a
seeded permutation per epoch and step N always starts at example N * grad_accum of that
stream, so a resumed run sees the examples the uninterrupted run would have seen, with
the same RNG state: resuming gives the same adapter as never stopping.

SIGTERM (and Ctrl-C) set a flag; the loop stops after the current example, saves a
checkpoint at the last finished step and exits with state "cancelled".
"""

from __future__ import annotations

import logging
import math
import os
import random
import shutil
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import Settings
from core.errors import InputError
from core.media.storage import atomic_write_json, read_json, sha256_file
from core.models.local.adapters import ADAPTER_NAME
from finetune.dataset import Example, ValidationReport, split_examples
from finetune.options import TrainOptions, check_resume_options, default_run_name
from finetune.run_files import (
    FINAL,
    LOG,
    PID,
    RUN_CONFIG,
    append_progress,
    is_unused,
    now,
    read_state,
    trainer_alive,
    truncate_progress,
    write_state,
)

log = logging.getLogger("finetune")


class DatasetInvalid(InputError):
    """The dataset has bad lines (and --skip-bad-lines was not given), or no usable line."""

    def __init__(self, report: ValidationReport, hint: str) -> None:
        super().__init__(f"The dataset has problems: {report.summary()}.", hint)
        self.report = report


class StopFlag:
    """Set by SIGTERM / SIGINT; the loop polls it between examples."""

    def __init__(self) -> None:
        self.signal: str | None = None
        self._previous: dict[int, Any] = {}

    def __call__(self) -> bool:
        return self.signal is not None

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signals reach the main thread only (a run started in a worker thread)
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        """Give the process its own handlers back (a run inside a longer-lived process)."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: object) -> None:
        self.signal = signal.Signals(signum).name
        log.info("%s received: stopping after the current example and saving a checkpoint", self.signal)


@dataclass
class RunOutcome:
    state: str  # finished | cancelled
    run_dir: Path
    step: int
    total_steps: int
    eval_loss_before: float | None = None
    eval_loss_after: float | None = None


# --- the run folder ----------------------------------------------------------------------------


def resolve_run_dir(options: TrainOptions, settings: Settings) -> Path:
    run_dir = options.output or settings.adapters_dir / default_run_name()
    if not ADAPTER_NAME.match(run_dir.name):
        raise InputError(
            f"'{run_dir.name}' cannot be an adapter name.",
            "Use letters, digits, '.', '_' and '-' (the folder name is the adapter's name in the app).",
        )
    return run_dir


def options_for_resume(run_dir: Path, given: dict[str, Any]) -> TrainOptions:
    """The run's saved options, with the few that may change on resume taken from `given`."""
    saved = read_json(run_dir / RUN_CONFIG)
    if not isinstance(saved, dict) or "options" not in saved:
        raise InputError(f"{run_dir} is not a run folder (no {RUN_CONFIG}); nothing to resume.")
    if (run_dir / FINAL).exists():
        raise InputError(f"The run in {run_dir} has finished; there is nothing to resume.")
    state = read_state(run_dir)
    if state.get("state") == "running" and state.get("pid") != os.getpid() and trainer_alive(state.get("pid")):
        raise InputError(f"The run in {run_dir} is still training (process {state['pid']}).")
    options = TrainOptions(**saved["options"])
    check_resume_options(options, given)
    changes = {k: given[k] for k in ("epochs", "max_steps", "eval_every", "save_every") if given.get(k) is not None}
    return options.model_copy(update={**changes, "resume": True, "output": run_dir})


def _claim(run_dir: Path, resume: bool) -> None:
    if resume:
        if not run_dir.is_dir():
            raise InputError(f"There is no run folder {run_dir} to resume.")
        return
    if not is_unused(run_dir):
        raise InputError(
            f"{run_dir} already exists; an existing run folder is never overwritten.",
            "Choose another --output, or add --resume to continue the run in it.",
        )
    run_dir.mkdir(parents=True, exist_ok=True)


def _log_to(run_dir: Path, quiet: bool) -> list[logging.Handler]:
    file_handler = logging.FileHandler(run_dir / LOG, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handlers: list[logging.Handler] = [file_handler]
    if not quiet:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter("[finetune] %(message)s"))
        handlers.append(console)
    for handler in handlers:
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    return handlers


# --- model ------------------------------------------------------------------------------------


def load_base(options: TrainOptions, settings: Settings) -> Any:
    """The base model and processor through the app's own loader (same checks, same dtype)."""
    import torch

    from core.models.local.loading import load_model, resolve_source

    if options.qlora:
        if not torch.cuda.is_available():
            raise InputError("--qlora needs a CUDA GPU (bitsandbytes 4-bit runs on GPUs only).")
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise InputError("--qlora needs the bitsandbytes package.", "pip install bitsandbytes") from None
    source = resolve_source(settings, options.model_path)
    quantization = "4bit" if options.qlora else "none"  # never the app's 8-bit setting: LoRA trains on 4-bit or bf16
    loaded = load_model(settings.model_copy(update={"quantization": quantization}), source)
    model = loaded.model
    model.config.use_cache = False
    if options.qlora:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=options.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    elif options.gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    loaded.model = model
    return loaded


def example_loss(model: Any, inputs: dict[str, Any]) -> tuple[Any, int]:
    """Mean cross-entropy over the labelled tokens, and their count.

    Logits are computed only at the positions that predict a label (`logits_to_keep`): the
    same loss as the model's own, without a (sequence x vocabulary) logit matrix for every
    visual token, which on the 7B model with a video is gigabytes."""
    import torch.nn.functional as F

    from finetune.collator import IGNORE

    labels = inputs.pop("labels")
    targets = labels[0, 1:]
    keep = (targets != IGNORE).nonzero().squeeze(1)
    output = model(**inputs, logits_to_keep=keep, use_cache=False)
    logits = output.logits[0].float()
    return F.cross_entropy(logits, targets[keep]), int(keep.numel())


# --- the loop ----------------------------------------------------------------------------------


class Trainer:
    def __init__(
        self,
        options: TrainOptions,
        settings: Settings,
        run_dir: Path,
        train: list[Example],
        evaluation: list[Example],
        loaded: Any,
        stop: StopFlag,
    ) -> None:
        import torch

        from finetune.collator import Collator

        self.options, self.settings, self.run_dir = options, settings, run_dir
        self.train_set, self.eval_set = train, evaluation
        self.stop = stop
        self.processor = loaded.processor
        self.device = loaded.model.device
        self.collate = Collator(loaded.processor, options, settings)
        per_epoch = len(train) / options.grad_accum
        self.total_steps = options.max_steps or max(1, math.ceil(options.epochs * per_epoch))
        self.torch = torch

    def example_at(self, position: int) -> Example:
        """The `position`-th example of the endless stream of seeded per-epoch permutations."""
        epoch, offset = divmod(position, len(self.train_set))
        order = list(range(len(self.train_set)))
        random.Random(self.options.seed * 1_000_003 + epoch).shuffle(order)
        return self.train_set[order[offset]]

    def inputs(self, example: Example) -> dict[str, Any]:
        return {k: v.to(self.device) if hasattr(v, "to") else v for k, v in self.collate(example).items()}

    def evaluate(self, model: Any) -> float | None:
        if not self.eval_set:
            return None
        model.eval()
        total, tokens = 0.0, 0
        with self.torch.no_grad():
            for example in self.eval_set:
                loss, count = example_loss(model, self.inputs(example))
                total += float(loss) * count
                tokens += count
        model.train()
        return total / max(1, tokens)

    def run(self, model: Any, resume_from: Path | None) -> RunOutcome:
        from transformers import get_cosine_schedule_with_warmup

        from finetune.checkpoint import RngState, TrainerState, load_trainer_state, save_checkpoint

        torch, options = self.torch, self.options
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=options.lr, weight_decay=0.0)
        warmup = round(options.warmup_ratio * self.total_steps)
        scheduler = get_cosine_schedule_with_warmup(optimizer, warmup, self.total_steps)
        step, seconds_before = 0, 0.0
        state = read_state(self.run_dir)
        eval_before = state.get("eval_loss_before")
        if resume_from is not None:
            saved = load_trainer_state(resume_from)
            optimizer.load_state_dict(saved.optimizer)
            scheduler.load_state_dict(saved.scheduler)
            saved.rng.restore()
            step, seconds_before = saved.step, saved.seconds
            truncate_progress(self.run_dir, step)  # rows written after this checkpoint are redone
            log.info("resumed from %s: step %d of %d", resume_from.name, step, self.total_steps)
        else:
            truncate_progress(self.run_dir, -1)  # a resume without a checkpoint starts over
            write_state(self.run_dir, phase="evaluating")
            eval_before = self.evaluate(model)
            self._eval_row(0, eval_before, seconds_before)
            log.info("eval loss before training: %s", _fmt(eval_before))
        write_state(
            self.run_dir, phase="training", step=step, total_steps=self.total_steps, eval_loss_before=eval_before
        )

        model.train()
        rng = RngState.capture()
        session_start, session_steps = time.perf_counter(), 0

        def elapsed() -> float:
            return seconds_before + time.perf_counter() - session_start

        def checkpoint(at_step: int) -> Path:
            target = save_checkpoint(
                self.run_dir,
                model,
                TrainerState(at_step, elapsed(), rng, optimizer.state_dict(), scheduler.state_dict()),
            )
            write_state(self.run_dir, checkpoint=str(target), checkpoint_step=at_step)
            return target

        while step < self.total_steps:
            losses: list[float] = []
            for micro in range(options.grad_accum):
                loss, _ = example_loss(model, self.inputs(self.example_at(step * options.grad_accum + micro)))
                (loss / options.grad_accum).backward()
                losses.append(float(loss.detach()))
                if self.stop():
                    break
            if self.stop():
                optimizer.zero_grad(set_to_none=True)  # a partial step is dropped; resume redoes it
                target = checkpoint(step)
                log.info("cancelled at step %d of %d; checkpoint %s", step, self.total_steps, target)
                write_state(self.run_dir, state="cancelled", phase=None, step=step, finished_at=now())
                return RunOutcome("cancelled", self.run_dir, step, self.total_steps, eval_before)
            lr = scheduler.get_last_lr()[0]
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            session_steps += 1
            rng = RngState.capture()
            per_step = (time.perf_counter() - session_start) / session_steps
            row = {
                "kind": "train",
                "step": step,
                "epoch": round(step * options.grad_accum / len(self.train_set), 4),
                "loss": sum(losses) / len(losses),
                "eval_loss": None,
                "lr": lr,
                "seconds": round(elapsed(), 3),
                "eta_s": round(per_step * (self.total_steps - step), 1),
                "total_steps": self.total_steps,
            }
            append_progress(self.run_dir, row)
            write_state(self.run_dir, step=step)
            if options.eval_every and step % options.eval_every == 0 and step < self.total_steps:
                self._eval_row(step, self.evaluate(model), elapsed())
            if step % options.save_every == 0 and step < self.total_steps:
                checkpoint(step)

        write_state(self.run_dir, phase="evaluating")
        eval_after = self.evaluate(model)
        self._eval_row(step, eval_after, elapsed())
        log.info("eval loss before %s, after %s", _fmt(eval_before), _fmt(eval_after))
        write_state(self.run_dir, phase="saving")
        save_final(self.run_dir, model)
        write_state(
            self.run_dir, state="finished", phase=None, step=step, eval_loss_after=eval_after, finished_at=now()
        )
        return RunOutcome("finished", self.run_dir, step, self.total_steps, eval_before, eval_after)

    def _eval_row(self, step: int, value: float | None, seconds: float) -> None:
        if value is None:
            return
        append_progress(
            self.run_dir,
            {
                "kind": "eval",
                "step": step,
                "epoch": round(step * self.options.grad_accum / len(self.train_set), 4),
                "loss": None,
                "eval_loss": value,
                "lr": None,
                "seconds": round(seconds, 3),
                "eta_s": None,
                "total_steps": self.total_steps,
            },
        )


def save_final(run_dir: Path, model: Any) -> Path:
    """Write final_checkpoint/ under a temporary name and rename it: the app lists an adapter
    only when its adapter_config.json is there, so it never sees half an adapter."""
    from finetune.run_files import CHECKPOINTS

    tmp = run_dir / f".{FINAL}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    tmp.rename(run_dir / FINAL)
    shutil.rmtree(run_dir / CHECKPOINTS, ignore_errors=True)  # the run is over: the final adapter is what counts
    return run_dir / FINAL


def _fmt(value: float | None) -> str:
    return "n/a (no held-out examples)" if value is None else f"{value:.4f}"


# --- the whole run -----------------------------------------------------------------------------


def run_config(
    options: TrainOptions, report: ValidationReport, train: list[Example], evaluation: list[Example], loaded: Any
) -> dict[str, Any]:
    import peft
    import torch
    import transformers

    from finetune.lora import LORA_TARGET

    return {
        "options": options.model_dump(mode="json"),
        "data": {
            "path": str(options.data),
            "sha256": sha256_file(options.data),
            "lines": report.lines,
            "skipped_lines": report.bad_lines,
            "train_lines": [e.line for e in train],
            "eval_lines": [e.line for e in evaluation],
        },
        # What inference should use to see videos as training did.
        "sampling": {
            "frames": options.frames,
            "fps": options.fps,
            "max_pixels": options.max_pixels,
            "sampler": "core.analysis.perception.sample_round (round 1)",
        },
        "lora": {
            "rank": options.rank,
            "alpha": options.alpha,
            "dropout": options.dropout,
            "target_modules": LORA_TARGET,
        },
        "model": loaded.info.model_dump(),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
        "started_at": now(),
    }


def train(
    options: TrainOptions,
    settings: Settings,
    given: dict[str, Any] | None = None,
    quiet: bool = False,
    on_report: Callable[[ValidationReport], None] | None = None,
) -> RunOutcome:
    """Run (or resume) one training run; raises VChatError for anything the user can fix."""
    run_dir = resolve_run_dir(options, settings)
    if options.resume:
        options = options_for_resume(run_dir, given or {})
    created = not run_dir.exists()
    _claim(run_dir, options.resume)
    stop = StopFlag()
    stop.install()
    handlers = _log_to(run_dir, quiet)
    (run_dir / PID).write_text(str(_pid()), encoding="utf-8")
    started_training = False
    try:
        write_state(run_dir, state="running", phase="validating", pid=_pid(), started_at=now(), message=None)
        log.info("run folder %s", run_dir)
        report, train_set, eval_set = _data(options, settings, stop, run_dir)
        if on_report:
            on_report(report)
        if stop():
            write_state(run_dir, state="cancelled", phase=None, step=0, finished_at=now())
            return RunOutcome("cancelled", run_dir, 0, 0)
        write_state(run_dir, phase="loading model")
        loaded = load_base(options, settings)
        model, resume_from = _with_lora(loaded.model, options, run_dir)
        log.info("LoRA on %d language-model modules, %d trainable parameters", *_lora_size(model))
        if not options.resume:
            atomic_write_json(run_dir / RUN_CONFIG, run_config(options, report, train_set, eval_set, loaded))
        write_state(run_dir, train_examples=len(train_set), eval_examples=len(eval_set))
        trainer = Trainer(options, settings, run_dir, train_set, eval_set, loaded, stop)
        started_training = True
        return trainer.run(model, resume_from)
    except InputError as exc:
        if created and not started_training and not options.resume:
            _drop_handlers(handlers)
            handlers = []
            shutil.rmtree(run_dir, ignore_errors=True)  # a refused run leaves nothing behind
        else:
            write_state(run_dir, state="failed", phase=None, message=_message(exc), finished_at=now())
        raise
    except BaseException as exc:
        if type(exc).__name__ == "OutOfMemoryError":  # torch.OutOfMemoryError: the settings ask too much
            message = (
                f"Out of GPU memory at step {read_state(run_dir).get('step', 0)}: start a new run with fewer "
                "--frames, a lower --max-pixels, or --qlora (or free the GPU and --resume this one)."
            )
            log.error("%s (%s)", message, exc)
            write_state(run_dir, state="failed", phase=None, message=message, finished_at=now())
            raise InputError(message) from exc
        log.exception("the run failed")
        write_state(run_dir, state="failed", phase=None, message=f"{type(exc).__name__}: {exc}", finished_at=now())
        raise
    finally:
        (run_dir / PID).unlink(missing_ok=True)
        _drop_handlers(handlers)
        stop.uninstall()


def _data(
    options: TrainOptions, settings: Settings, stop: StopFlag, run_dir: Path
) -> tuple[ValidationReport, list[Example], list[Example]]:
    from finetune.runs import check_dataset

    if options.resume:
        saved = read_json(run_dir / RUN_CONFIG) or {}
        recorded = saved.get("data", {}).get("sha256")
        if not options.data.is_file():
            raise InputError(f"The run's dataset {options.data} is gone; it is needed to resume.")
        if recorded and sha256_file(options.data) != recorded:
            raise InputError(
                f"The dataset {options.data} changed since the run started; resuming would train on other data.",
                "Restore the file, or start a new run.",
            )
    log.info("checking %s", options.data)
    report = check_dataset(settings, options, should_stop=stop)
    for error in report.errors:
        log.warning("%s", error)
    log.info("%s", report.summary())
    if stop():
        return report, [], []
    if report.errors and not options.skip_bad_lines:
        raise DatasetInvalid(report, "Fix the lines listed, or pass --skip-bad-lines to train on the others.")
    if not report.examples:
        raise DatasetInvalid(report, "There is no usable example to train on.")
    if report.errors:
        log.warning("skipping %d bad lines (--skip-bad-lines)", len(report.bad_lines))
    train_set, eval_set = split_examples(report.examples, options.eval_split, options.seed)
    log.info("%d training examples, %d held out for evaluation", len(train_set), len(eval_set))
    return report, train_set, eval_set


def _with_lora(model: Any, options: TrainOptions, run_dir: Path) -> tuple[Any, Path | None]:
    import torch
    from peft import PeftModel, get_peft_model

    from finetune.checkpoint import last_checkpoint
    from finetune.lora import lora_config

    resume_from = last_checkpoint(run_dir) if options.resume else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # transformers 5 deprecation notes peft triggers
        if resume_from is not None:
            return PeftModel.from_pretrained(model, str(resume_from), is_trainable=True), resume_from
        if options.resume:
            log.info("no checkpoint in %s: starting from step 0", run_dir)
        torch.manual_seed(options.seed)  # the LoRA A matrices' initialisation
        return get_peft_model(model, lora_config(options.rank, options.alpha, options.dropout)), None


def _lora_size(model: Any) -> tuple[int, int]:
    from finetune.lora import lora_module_names

    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return len(lora_module_names(model)), trainable


def _drop_handlers(handlers: list[logging.Handler]) -> None:
    for handler in handlers:
        log.removeHandler(handler)
        handler.close()


def _message(exc: InputError) -> str:
    if isinstance(exc, DatasetInvalid):
        return exc.one_line() + "\n" + exc.report.format()
    return exc.one_line()


def _pid() -> int:
    return os.getpid()
