"""A job made from a checked CSV: the rows it gets, the question each row is asked, the input key.

The app and the CLI both call `submit_job`. The input key hashes everything the job's output
depends on (the CSV's bytes, the kind, the model and its path, the request, the options, whether bad
rows were skipped): `python -m core batch` run again on the same CSV finds its job by it and
finishes what is left.
"""

from __future__ import annotations

import time
from typing import Any

from core.analysis.store import stable_hash
from core.config import Settings
from core.errors import InputError
from core.jobs.csv_input import BatchInput
from core.jobs.kinds import get_kind
from core.jobs.labels import LabelSchema
from core.jobs.store import Item, Job, JobStore, new_job_id
from core.models.base import AnalysisRequest


def submit_job(
    batch: BatchInput,
    settings: Settings,
    *,
    kind: str,
    model: str,
    model_label: str,
    request: AnalysisRequest,
    question: str | None = None,
    schema: str | None = None,
    model_path: str | None = None,
    skip_bad: bool = False,
    submitted_by: str = "app",
    original: bytes | None = None,
    reuse: bool = False,
) -> tuple[Job, bool]:
    """Store a job for the usable rows of `batch` (InputError when it cannot start); with `reuse`,
    the latest job made from the same input instead, when there is one. Returns (job, reused)."""
    get_kind(kind)
    rows = batch.usable_rows(skip_bad)
    options: dict[str, Any] = {}
    if kind == "analyze":
        question = (question or "").strip() or None
        missing = [row.row for row in rows if not row.question and not question]
        if missing:
            raise InputError(
                f"{_rows(missing)} {'have' if len(missing) > 1 else 'has'} no question, and no question for "
                "every row was given.",
                "Type a question for the rows without one, or fill the CSV's question column.",
            )
        for row in rows:  # a question over the length limit, before anything runs
            try:
                AnalysisRequest(question=row.question or question or "")
            except InputError as exc:
                raise InputError(f"row {row.row}: {exc.one_line()}") from None
        options["question"] = question
    elif kind == "labels":
        options["schema"] = LabelSchema.from_json(schema or "").to_json()
    template = request.model_dump(mode="json", exclude={"question", "context"})
    input_key = stable_hash(
        {
            "csv": batch.sha256,
            "kind": kind,
            "model": model,
            "model_path": model_path,
            "request": template,
            "options": options,
            "skip_bad": skip_bad,
        }
    )
    store = JobStore(settings)
    if reuse and (found := store.find_job(input_key)) is not None:
        return found, True
    usable = {row.row for row in rows}
    skipped = {str(p.row): p.message for p in batch.problems if p.row is not None and p.row not in usable}
    job = Job(
        id=new_job_id(),
        created_at=time.time(),
        kind=kind,
        name=batch.name,
        model=model,
        model_label=model_label,
        model_path=model_path,
        request=template,
        options=options,
        columns=batch.columns,
        input_key=input_key,
        delimiter=batch.delimiter,
        skipped=skipped,
        submitted_by=submitted_by,
    )
    items = [
        Item(
            job_id=job.id,
            idx=number,
            row_number=row.row,
            url=row.url,
            question=row.question,
            label=row.label,
            item_id=row.id,
            cells=row.cells,
        )
        for number, row in enumerate(rows)
    ]
    return store.create_job(job, items, original), False


def _rows(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:10]) + (" ..." if len(numbers) > 10 else "")
    return f"Row{'s' if len(numbers) > 1 else ''} {shown}"
