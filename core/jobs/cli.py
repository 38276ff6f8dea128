"""The `batch` and `evaluate` commands of `python -m core` (registered by core/__main__.py).

`batch CSV` checks the CSV (problems listed by row; `--skip-bad` leaves those rows out), stores the
job in the data dir's job store, and works it headless with the same engines, request options and
result store as the app. Run again on the same CSV (with the same options), it finds its job and
finishes what is left, then writes the whole output. When the app is running on the same data dir,
its worker holds the batch lease and hosts the model: the command then leaves the job to it and
follows its progress, so there is never a second copy of the model (see core/jobs/worker.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.config import Settings
from core.errors import EXIT_OK, InputError

FORMATS = ("csv", "jsonl", "appended")
Command = Callable[[argparse.Namespace, Settings], int]


def add_commands(commands: Any, add_model_options: Callable[[Any], None], request_from: Callable) -> dict[str, Command]:  # type: ignore[type-arg]
    """Add `batch` and `evaluate` to the CLI's subparsers; their functions by command name."""
    batch = commands.add_parser("batch", help="run a CSV of videos headless; write the results CSV")
    batch.add_argument(
        "csv", help="a CSV with a url column (http(s) URLs or files in the media dir); optional question, label, id"
    )
    batch.add_argument(
        "--kind", default="analyze", help="analyze (a question per row), labels (a label schema) or factcheck"
    )
    batch.add_argument("--question", "-Q", help="the question for rows without their own (kind analyze)")
    batch.add_argument("--labels", help="a JSON file with the label schema (kind labels)")
    add_model_options(batch)
    batch.add_argument("--out", help="write the output to this file (default: standard output)")
    batch.add_argument(
        "--format", choices=FORMATS, default="csv",
        help="csv: results CSV; jsonl: full results, one a line; appended: the original CSV with result columns",
    )  # fmt: skip
    batch.add_argument("--excel", action="store_true", help="write CSV as UTF-8 with a byte order mark (for Excel)")
    batch.add_argument("--skip-bad", action="store_true", help="leave out the rows the check finds problems in")
    batch.add_argument("--retry-failed", action="store_true", help="try the failed rows of an earlier run again")
    batch.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    batch.set_defaults(request_from=request_from)

    evaluate = commands.add_parser("evaluate", help="score a results CSV against its label column")
    evaluate.add_argument("results", help="a results CSV (from batch, or any CSV with label and answer columns)")
    evaluate.add_argument("--label-column", default="label", help="the expected answers (default label)")
    evaluate.add_argument(
        "--answer-column", action="append",
        help="a column of answers to score (repeatable; default: answer, or answer_local and answer_gemini)",
    )  # fmt: skip
    evaluate.add_argument("--json", action="store_true", help="print the evaluation as JSON")
    return {"batch": cmd_batch, "evaluate": cmd_evaluate}


def model_label(model: str, adapter: str | None, gemini_model: str | None, settings: Settings) -> str:
    from core.analysis.choices import LOCAL_LABEL

    labels = {
        "local": LOCAL_LABEL,
        "gemini": f"Google Gemini ({gemini_model or settings.gemini_model})",
        "vllm": "VideoChat-R1.5 (vLLM)",
        "linked": "Linked: Gemini + VideoChat-R1.5",
    }
    label = labels.get(model, model)
    return f"{label} + LoRA {adapter}" if adapter else label


def cmd_batch(args: argparse.Namespace, settings: Settings) -> int:
    from core.jobs.csv_input import read_batch_csv
    from core.jobs.kinds import get_kind
    from core.jobs.store import JobStore
    from core.jobs.submit import submit_job

    get_kind(args.kind)
    path = Path(args.csv)
    if not path.is_file():
        raise InputError(f"No such CSV file: {args.csv}")
    out = Path(args.out) if args.out else None
    if out is not None and not out.parent.is_dir():
        raise InputError(f"The folder of {out} does not exist.", "Give --out a path in an existing folder.")
    schema = None
    if args.kind == "labels":
        if not args.labels:
            raise InputError("--kind labels needs --labels SCHEMA.json (the labels to ask for).")
        schema = Path(args.labels).read_text(encoding="utf-8") if Path(args.labels).is_file() else None
        if schema is None:
            raise InputError(f"No such label schema file: {args.labels}")
    data = path.read_bytes()
    batch = read_batch_csv(data, settings, name=path.name)
    for note in batch.notes:
        sys.stderr.write(f"note: {note}\n")
    if batch.problems and (batch.fatal or not args.skip_bad):
        for problem in batch.problems[:50]:
            sys.stderr.write(f"problem: {problem.line()}\n")
        more = f" ({len(batch.problems) - 50} more not shown)" if len(batch.problems) > 50 else ""
        hint = None if batch.fatal else "Fix them, or pass --skip-bad to leave those rows out."
        raise InputError(f"The CSV has {len(batch.problems)} problem(s), listed above{more}.", hint)
    request = args.request_from(args, args.question or "(each row's question)")
    model_path = str(Path(args.model_path).absolute()) if args.model_path else None
    job, reused = submit_job(
        batch,
        settings,
        kind=args.kind,
        model=args.model,
        model_label=model_label(args.model, args.adapter, args.gemini_model, settings),
        request=request,
        question=args.question,
        schema=schema,
        model_path=model_path,
        skip_bad=args.skip_bad,
        submitted_by="cli",
        original=data,
        reuse=True,
    )
    store = JobStore(settings)
    if reused:
        counts = store.counts(job.id)
        if not args.quiet:
            sys.stderr.write(
                f"note: continuing job {job.id} (started {job.created}): {counts.get('done')} of {counts.total} "
                "rows done\n"
            )
        if job.state != "active" or job.hold:
            store.set_state(job.id, "active")
        if args.retry_failed:
            store.retry_failed(job.id)
    _work_or_follow(job.id, settings, args.quiet)
    job = store.job(job.id) or job
    if job.hold:
        raise InputError(f"The batch is held: {job.hold}")
    _write_output(job.id, settings, args, out)
    counts = store.counts(job.id)
    if not args.quiet:
        failed = counts.get("failed")
        tail = f", {failed} failed (see the status and error columns)" if failed else ""
        sys.stderr.write(f"done: {counts.get('done')} of {counts.total} rows answered{tail}\n")
    return EXIT_OK


def _work_or_follow(job_id: str, settings: Settings, quiet: bool) -> None:
    """Work the job here, or, while another process (the app) holds the lease, follow it there."""
    from core.jobs.store import JobStore
    from core.jobs.worker import BatchWorker

    store = JobStore(settings)
    total = store.counts(job_id).total

    def finished(item: Any, state: str, error: str | None) -> None:
        if quiet:
            return
        done = store.counts(job_id).finished
        what = f"{state}: {error}" if error else state
        sys.stderr.write(f"[{done}/{total}] row {item.row_number}: {what}\n")

    worker = BatchWorker(settings, role="cli", on_finished=finished)
    told = False
    last = -1
    while True:
        job = store.job(job_id)
        if job is None or job.hold or job.state != "active" or store.counts(job_id).open == 0:
            return
        if worker.run_job(job_id):
            continue
        lease = store.lease()
        if not told and not quiet:
            who = "the app" if lease.role == "app" else f"another vChat process ({lease.role})"
            sys.stderr.write(
                f"note: {who} (pid {lease.pid} on {lease.host}) works batches for this data dir and holds its "
                "model; the job is queued there, following its progress\n"
            )
            told = True
        while store.lease().live():
            job = store.job(job_id)
            counts = store.counts(job_id)
            if job is None or job.hold or job.state != "active" or counts.open == 0:
                return
            if counts.finished != last and not quiet:
                sys.stderr.write(f"[{counts.finished}/{counts.total}] rows finished\n")
                last = counts.finished
            time.sleep(1.0)
        time.sleep(0.2)  # the lease just went: take it over at the next turn


def _write_output(job_id: str, settings: Settings, args: argparse.Namespace, out: Path | None) -> None:
    from core.jobs.export import appended_csv, results_csv, results_jsonl
    from core.jobs.store import JobStore
    from core.media.storage import atomic_write_bytes

    store = JobStore(settings)
    job = store.job(job_id)
    assert job is not None
    items = store.items(job_id)
    if args.format == "jsonl":
        data = results_jsonl(job, items, settings)
    elif args.format == "appended":
        data = appended_csv(job, store.original(job_id) or b"", items, settings, excel=args.excel)
    else:
        data = results_csv(job, items, settings, excel=args.excel)
    if out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        atomic_write_bytes(out, data)
        if not args.quiet:
            sys.stderr.write(f"wrote {out}\n")


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from core.jobs.evaluate import evaluate_table, read_table, report_lines

    path = Path(args.results)
    if not path.is_file():
        raise InputError(f"No such results file: {args.results}")
    header, rows = read_table(path.read_bytes())
    evaluation = evaluate_table(header, rows, args.label_column, args.answer_column)
    if not evaluation.labelled:
        raise InputError(f"No row of {path.name} has a label in its '{args.label_column}' column.")
    if args.json:
        print(evaluation.model_dump_json(indent=2, exclude={"engines": {"__all__": {"predictions"}}}))
    else:
        print("\n".join(report_lines(evaluation)))
    return EXIT_OK
