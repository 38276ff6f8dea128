"""The training run: validate, load, train LoRA, checkpoint, evaluate, save. A plain torch loop.

One example a forward pass (videos differ in length; no padding to get wrong), gradients
accumulated over `grad_accum` examples per optimizer step. The order of examples is a
seeded permutation per epoch and step N always starts at example N * grad_accum of that
stream, so a resumed run sees the examples the uninterrupted run would have seen, with
the same RNG state: resuming gives the same adapter as never stopping.

SIGTERM (and Ctrl-C) set a flag; the loop stops after the current example, saves a
checkpoint at the last finished step and exits with state "cancelled". A trainer started by the
app (`--parent-pid`) sets the same flag when the app is gone (`ParentWatcher`), and exits hard
if it has not stopped `ORPHAN_GRACE_S` seconds later: it never outlives the app.

A trainer killed at any point (SIGKILL, a crash) leaves a folder the next start accepts: before
`run_config.json` a fresh start with the same `--output` takes the folder over; after it
`--resume` continues from the last checkpoint, or starts again from step 0 with the run's saved
options when there is none yet; a run killed once its final adapter was in place is marked
finished by `--resume`. Temporaries a killed writer left are removed when the next trainer starts.
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
from core.errors import EXIT_INTERNAL, EXIT_OK, InputError
from core.media.scratch import temporary_name
from core.media.storage import atomic_write_json, read_json, sha256_file
from core.models.local.adapters import ADAPTER_NAME
from core.processes import pid_exists
from finetune.dataset import Example, ValidationReport, split_examples
from finetune.options import TrainOptions, check_resume_options, default_run_name
from finetune.run_files import (
    CHECKPOINTS,
    FINAL,
    LOG,
    PID,
    RUN_CONFIG,
    append_progress,
    is_unused,
    latest_checkpoint,
    now,
    other_trainer,
    read_progress,
    read_state,
    remove_tree,
    sweep_run_dir,
    truncate_progress,
    write_pid,
    write_state,
)

log = logging.getLogger("finetune")


class DatasetInvalid(InputError):
    """The dataset has bad lines (and --skip-bad-lines was not given), or no usable line."""

    def __init__(self, report: ValidationReport, hint: str) -> None:
        super().__init__(f"The dataset has problems: {report.summary()}.", hint)
        self.report = report


# How long a trainer whose app is gone may take to stop cleanly before it exits hard. A clean stop
# needs at most one example's forward and backward pass and a checkpoint (seconds on a GPU);
# what takes longer (loading the base model, a long evaluation, an example on a slow CPU) is
# cut short: nothing is lost but the steps after the last checkpoint, and the state says so.
ORPHAN_GRACE_S = 30.0
PARENT_POLL_S = 0.5  # how often the watcher looks for the app


class StopFlag:
    """Set by SIGTERM / SIGINT (or `request`, from the parent watcher); the loop polls it between examples."""

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
        self.request(f"{signal.Signals(signum).name} received")

    def request(self, reason: str) -> None:
        """Stop as SIGTERM does (callable from any thread)."""
        if self.signal is None:
            self.signal = reason
            log.info("%s: stopping after the current example and saving a checkpoint", reason)


class ParentWatcher:
    """Stops the run when the process that started it is gone (the app, even killed with SIGKILL).

    The app starts the trainer in a session of its own (a closed tab or the app's terminal must
    not stop it), so nothing would stop an orphan. A thread polls for the parent every `poll_s`:
    gone when `os.getppid()` is no longer it (the trainer was re-parented), or, for a pid that is
    not the direct parent, when that process no longer exists. Polling rather than Linux's
    PR_SET_PDEATHSIG, which fires when the *thread* that started the child ends (a page's script
    thread, long before the app). It sets the flag SIGTERM sets; a main thread held in a long
    operation may not look at it for a while, so `grace_s` later, if the process is still there,
    `on_hard_exit` runs and the process exits at once."""

    def __init__(
        self,
        parent_pid: int,
        stop: StopFlag,
        on_hard_exit: Callable[[], int],
        grace_s: float = ORPHAN_GRACE_S,
        poll_s: float = PARENT_POLL_S,
    ) -> None:
        self.parent_pid, self.stop, self.on_hard_exit = parent_pid, stop, on_hard_exit
        self.grace_s, self.poll_s = grace_s, poll_s
        self._direct = os.getppid() == parent_pid
        self._started = _start_time(parent_pid)

    def parent_gone(self) -> bool:
        if self._direct:
            return os.getppid() != self.parent_pid
        if not pid_exists(self.parent_pid):
            return True
        return self._started is not None and _start_time(self.parent_pid) != self._started  # a reused pid

    def start(self) -> ParentWatcher:
        threading.Thread(target=self._watch, name="parent-watcher", daemon=True).start()
        return self

    def _watch(self) -> None:
        while not self.parent_gone():
            time.sleep(self.poll_s)
        self.stop.request(f"the process that started this run ({self.parent_pid}) is gone")
        time.sleep(self.grace_s)
        # Still here: the main thread is busy (or the interpreter hangs on its way out).
        os._exit(self.on_hard_exit())


def _start_time(pid: int) -> str | None:
    """The process's start time (field 22 of /proc/PID/stat), to tell a reused pid; None off Linux."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[19]
    except (OSError, IndexError):
        return None


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
        if run_dir.is_dir() and is_unused(run_dir):
            raise InputError(
                f"The run in {run_dir} stopped before it saved its options ({RUN_CONFIG}); there is nothing to resume.",
                f"Start it again: python -m finetune --data FILE.jsonl --output {run_dir}",
            )
        raise InputError(f"{run_dir} is not a run folder (no {RUN_CONFIG}); nothing to resume.")
    if (run_dir / FINAL).exists() and read_state(run_dir).get("state") == "finished":
        raise InputError(f"The run in {run_dir} has finished; there is nothing to resume.")
    busy = other_trainer(run_dir)
    if busy is not None:
        raise InputError(f"The run in {run_dir} is still training (process {busy}).")
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
        busy = other_trainer(run_dir)
        raise InputError(
            f"{run_dir} already exists; an existing run folder is never overwritten"
            + (f" (its trainer, process {busy}, is still running)." if busy else "."),
            "Choose another --output, or add --resume to continue the run in it.",
        )
    run_dir.mkdir(parents=True, exist_ok=True)


def _log_to(run_dir: Path, quiet: bool) -> list[logging.Handler]:
    _end_last_line(run_dir / LOG)
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


def _end_last_line(path: Path) -> None:
    """Close a line a kill cut short, so that the next one starts a line of its own."""
    try:
        with open(path, "rb+") as fh:
            if fh.seek(0, os.SEEK_END) == 0:
                return
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                fh.write(b"\n")
    except FileNotFoundError:
        pass


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
        """The held-out loss; None without held-out examples, or when a stop came (checked between examples)."""
        if not self.eval_set:
            return None
        model.eval()
        total, tokens = 0.0, 0
        with self.torch.no_grad():
            for example in self.eval_set:
                if self.stop():
                    break
                loss, count = example_loss(model, self.inputs(example))
                total += float(loss) * count
                tokens += count
        model.train()
        return None if self.stop() else total / max(1, tokens)

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

        def cancelled(at_step: int, target: Path | None) -> RunOutcome:
            where = f"checkpoint {target}" if target else "no new checkpoint needed"
            log.info("cancelled at step %d of %d; %s", at_step, self.total_steps, where)
            write_state(self.run_dir, state="cancelled", phase=None, step=at_step, finished_at=now())
            return RunOutcome("cancelled", self.run_dir, at_step, self.total_steps, eval_before)

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
            write_state(self.run_dir, phase="evaluating", step=0, total_steps=self.total_steps)
            eval_before = self.evaluate(model)
            if self.stop():  # nothing trained yet: a resume starts over from step 0
                return cancelled(0, None)
            self._eval_row(0, eval_before, seconds_before)
            log.info("eval loss before training: %s", _fmt(eval_before))
        write_state(
            self.run_dir, phase="training", step=step, total_steps=self.total_steps, eval_loss_before=eval_before
        )
        if self.stop():  # the checkpoint this session resumed from (if any) is the state at `step`
            return cancelled(step, None)

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
                write_state(self.run_dir, phase="saving")
                return cancelled(step, checkpoint(step))
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
        if self.stop():  # every step is done: a resume from this checkpoint evaluates and saves
            write_state(self.run_dir, phase="saving")
            return cancelled(step, checkpoint(step))
        self._eval_row(step, eval_after, elapsed())
        log.info("eval loss before %s, after %s", _fmt(eval_before), _fmt(eval_after))
        write_state(self.run_dir, phase="saving")
        save_final(self.run_dir, model)
        write_state(
            self.run_dir, state="finished", phase=None, step=step, eval_loss_after=eval_after, finished_at=now()
        )
        remove_tree(self.run_dir / CHECKPOINTS)  # the run is over: the final adapter is what counts
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
    tmp = temporary_name(run_dir / FINAL)
    model.save_pretrained(str(tmp))
    tmp.rename(run_dir / FINAL)
    return run_dir / FINAL


def _mark_finished(run_dir: Path) -> RunOutcome:
    """The trainer was killed after final_checkpoint/ was in place but before it said so: the
    adapter is complete, so the run is finished (state, eval loss after, checkpoints removed)."""
    state = read_state(run_dir)
    rows = read_progress(run_dir)
    step = max((int(r["step"]) for r in rows if r.get("kind") == "train"), default=int(state.get("step") or 0))
    evals = [r for r in rows if r.get("kind") == "eval"]
    after = evals[-1].get("eval_loss") if evals and step > 0 and evals[-1].get("step") == step else None
    log.info("final_checkpoint/ was complete when the trainer stopped: the run is finished")
    write_state(run_dir, state="finished", phase=None, step=step, eval_loss_after=after, finished_at=now())
    remove_tree(run_dir / CHECKPOINTS)
    total = int(state.get("total_steps") or step)
    return RunOutcome("finished", run_dir, step, total, state.get("eval_loss_before"), after)


def _fmt(value: float | None) -> str:
    return "n/a (no held-out examples)" if value is None else f"{value:.4f}"


# --- the whole run -----------------------------------------------------------------------------


def first_config(options: TrainOptions) -> dict[str, Any]:
    """What run_config.json holds from the moment the trainer claims the folder: enough for
    `--resume` to start the run again with its own options, whenever it is stopped."""
    from finetune.lora import LORA_TARGET

    return {
        "options": options.model_copy(update={"resume": False}).model_dump(mode="json"),
        "data": {"path": str(options.data), "sha256": sha256_file(options.data) if options.data.is_file() else None},
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
        "started_at": now(),
    }


def run_config(
    options: TrainOptions, report: ValidationReport, train: list[Example], evaluation: list[Example], loaded: Any
) -> dict[str, Any]:
    """The whole run_config.json, once the data is split and the model loaded (the first one completed)."""
    import peft
    import torch
    import transformers

    config = first_config(options)
    config["data"].update(
        {
            "lines": report.lines,
            "skipped_lines": report.bad_lines,
            "train_lines": [e.line for e in train],
            "eval_lines": [e.line for e in evaluation],
        }
    )
    config["model"] = loaded.info.model_dump()
    versions = {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}
    config["versions"] = versions
    return config


@dataclass
class _Session:
    """What the parent watcher's hard exit needs to know about the run (it runs in another thread)."""

    run_dir: Path | None = None
    over: bool = False


def train(
    options: TrainOptions,
    settings: Settings,
    given: dict[str, Any] | None = None,
    quiet: bool = False,
    on_report: Callable[[ValidationReport], None] | None = None,
    parent_pid: int | None = None,
) -> RunOutcome:
    """Run (or resume) one training run; raises VChatError for anything the user can fix.

    `parent_pid`: the process that started the trainer (the app); the run stops, as on SIGTERM,
    when it is gone (see `ParentWatcher`)."""
    stop = StopFlag()
    session = _Session()
    if parent_pid is not None:
        ParentWatcher(parent_pid, stop, lambda: _hard_exit(session, stop)).start()
    run_dir = resolve_run_dir(options, settings)
    if options.resume:
        options = options_for_resume(run_dir, given or {})
    created = not run_dir.exists()
    _claim(run_dir, options.resume)
    stop.install()
    handlers = _log_to(run_dir, quiet)
    session.run_dir = run_dir
    previous = read_state(run_dir)
    swept = sweep_run_dir(run_dir)
    write_pid(run_dir, _pid())
    started_training = False
    wrote_config = False
    try:
        write_state(
            run_dir,
            fresh=not options.resume,
            state="running",
            phase="validating",
            pid=_pid(),
            started_at=now(),
            message=None,
        )
        log.info("run folder %s", run_dir)
        _say_what_was_left(run_dir, options, previous, swept)
        if not options.resume:
            atomic_write_json(run_dir / RUN_CONFIG, first_config(options))
            wrote_config = True
        elif (run_dir / FINAL).exists():
            return _mark_finished(run_dir)
        report, train_set, eval_set = _data(options, settings, stop, run_dir)
        if on_report:
            on_report(report)
        if stop():
            return _cancelled_before_training(run_dir, options)
        write_state(run_dir, phase="loading model")
        loaded = load_base(options, settings)
        if stop():
            return _cancelled_before_training(run_dir, options)
        model, resume_from = _with_lora(loaded.model, options, run_dir)
        log.info("LoRA on %d language-model modules, %d trainable parameters", *_lora_size(model))
        if resume_from is None:
            if options.resume:
                _say(
                    f"{run_dir} has no checkpoint (the run stopped before its first one): starting it again from "
                    "step 0 with the run's saved options",
                    quiet,
                )
            config = run_config(options, report, train_set, eval_set, loaded)
            config["started_at"] = (read_json(run_dir / RUN_CONFIG) or {}).get("started_at", config["started_at"])
            atomic_write_json(run_dir / RUN_CONFIG, config)
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
            if wrote_config and not started_training:  # a refused start is no run: the folder may be reused
                (run_dir / RUN_CONFIG).unlink(missing_ok=True)
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
        session.over = True
        (run_dir / PID).unlink(missing_ok=True)
        _drop_handlers(handlers)
        stop.uninstall()


def _say_what_was_left(run_dir: Path, options: TrainOptions, previous: dict[str, Any], swept: list[str]) -> None:
    """The log says what the last trainer of this folder left, when it did not stop cleanly."""
    if previous.get("state") == "running":  # its trainer is gone (else the folder was refused)
        phase = previous.get("phase") or "starting"
        log.warning(
            "the previous trainer of this run (process %s) stopped without a word while %s, at step %s",
            previous.get("pid"),
            phase,
            previous.get("step", 0),
        )
    if previous and not options.resume:
        log.info("the folder held no run yet (no %s): this run takes it over", RUN_CONFIG)
    if swept:
        log.info("removed what a killed writer left half-written: %s", ", ".join(sorted(swept)))


def _cancelled_before_training(run_dir: Path, options: TrainOptions) -> RunOutcome:
    """Stopped while validating or loading: nothing new to save (the last checkpoint, if any, stays)."""
    found = latest_checkpoint(run_dir) if options.resume else None
    step = found[0] if found else 0
    state = write_state(run_dir, state="cancelled", phase=None, step=step, finished_at=now())
    log.info("cancelled before training; --resume continues from step %d", step)
    return RunOutcome("cancelled", run_dir, step, int(state.get("total_steps") or 0))


def _hard_exit(session: _Session, stop: StopFlag) -> int:
    """The parent watcher's last resort: say so in the state (when the run had not ended) and
    give the exit code."""
    run_dir = session.run_dir
    if session.over or run_dir is None:
        return EXIT_OK if session.over else EXIT_INTERNAL
    found = latest_checkpoint(run_dir)
    message = (
        f"Stopped hard: {stop.signal}, and the trainer was still busy {ORPHAN_GRACE_S:g} s later; "
        f"resume continues from step {found[0] if found else 0}."
    )
    log.error("%s", message)
    write_state(run_dir, state="failed", phase=None, message=message, finished_at=now())
    return EXIT_INTERNAL


def _say(message: str, quiet: bool) -> None:
    """A notice for the log and stderr (with --quiet the log goes to train.log only)."""
    log.warning("%s", message)
    if quiet:
        sys.stderr.write(f"[finetune] {message}\n")
        sys.stderr.flush()


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
