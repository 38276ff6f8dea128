"""A batch's downloads: the results CSV, JSON Lines of full results, the original CSV with columns added.

Results CSV: the input's columns (as read, in order), then the kind's result columns (the answer;
one column per label; a fact-check's rating and bands), then status, error, model, seconds and
result_key, one row per job item in input order. A result column whose name an input column already
has is called "<name> (vchat)".

Spreadsheet safety (OWASP, CSV injection): a cell that starts with `=`, `+`, `-`, `@`, a tab or a
carriage return is written with a leading `'`, so a spreadsheet shows it as text instead of running
it as a formula; plain numbers ("-3", "+1.5") are left as they are. The csv module quotes cells that
hold the delimiter, quotes or newlines, so the file reads back through pandas or csv unchanged.
`excel=True` writes UTF-8 with a byte order mark (Excel then reads accents right).
"""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

from core.config import Settings
from core.jobs.kinds import get_kind
from core.jobs.store import Item, Job

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?")
TAIL = ("status", "error", "model", "seconds", "result_key")


def neutralise(cell: object) -> str:
    """A cell a spreadsheet shows as text, never runs (see the module's docstring)."""
    text = "" if cell is None else str(cell)
    if text.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def result_columns(job: Job) -> list[tuple[str, str]]:
    """(the name in the output, the result's own name) for every column a job adds."""
    taken = set(job.columns)
    names = [*get_kind(job.kind).columns(job), *TAIL]
    return [(f"{name} (vchat)" if name in taken else name, name) for name in names]


def result_values(job: Job, item: Item, settings: Settings) -> dict[str, str]:
    """An item's result columns by their own names (empty ones when it is not done)."""
    values = get_kind(job.kind).values(job, item, settings) if item.state == "done" else {}
    return {
        **values,
        "status": item.state,
        "error": (item.error or "") if item.state != "done" else "",
        "model": values.get("model") or job.model_label,
        "seconds": f"{item.seconds:.2f}" if item.seconds is not None and item.state in ("done", "failed") else "",
        "result_key": item.result_ref.key if item.result_ref and item.state == "done" else "",
    }


def results_table(job: Job, items: list[Item], settings: Settings) -> tuple[list[str], list[list[str]]]:
    """The results CSV's header and rows (not yet neutralised)."""
    added = result_columns(job)
    header = [*job.columns, *(shown for shown, _ in added)]
    rows = []
    for item in sorted(items, key=lambda i: i.idx):
        values = result_values(job, item, settings)
        rows.append([*(item.cells.get(c, "") for c in job.columns), *(values.get(own, "") for _, own in added)])
    return header, rows


def write_csv(header: list[str], rows: list[list[str]], delimiter: str = ",", excel: bool = False) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow([neutralise(cell) for cell in header])
    for row in rows:
        writer.writerow([neutralise(cell) for cell in row])
    text = out.getvalue()
    return ("\ufeff" + text).encode("utf-8") if excel else text.encode("utf-8")


def results_csv(job: Job, items: list[Item], settings: Settings, excel: bool = False) -> bytes:
    header, rows = results_table(job, items, settings)
    return write_csv(header, rows, excel=excel)


def results_jsonl(job: Job, items: list[Item], settings: Settings) -> bytes:
    """One JSON object a line, in input order: the row's cells, its state and its full stored result."""
    kind = get_kind(job.kind)
    lines = []
    for item in sorted(items, key=lambda i: i.idx):
        record: dict[str, Any] = {
            "row": item.row_number,
            "cells": item.cells,
            "status": item.state,
            "error": item.error if item.state != "done" else None,
            "seconds": item.seconds,
            "stages": item.stages,
            "job": {"id": job.id, "kind": job.kind, "model": job.model_label},
            "result_ref": item.result_ref.model_dump() if item.result_ref else None,
            "result": kind.record(job, item, settings) if item.state == "done" else None,
        }
        lines.append(json.dumps(record, ensure_ascii=False, default=str))
    return ("\n".join(lines) + "\n").encode("utf-8") if lines else b""


def appended_csv(job: Job, original: bytes, items: list[Item], settings: Settings, excel: bool = False) -> bytes:
    """The original CSV, every row of it, in its own delimiter, with the result columns added; a row
    that was left out says why (status "skipped")."""
    from core.jobs.csv_input import decode_csv

    text, _, _ = decode_csv(original)
    records = list(csv.reader(io.StringIO(text, newline=""), delimiter=job.delimiter))
    by_row = {item.row_number: item for item in items}
    added = result_columns(job)
    header_at = next((i for i, record in enumerate(records) if any(c.strip() for c in record)), 0)
    width = max((len(r) for r in records), default=0)
    out_header = [*records[header_at], *([""] * (width - len(records[header_at]))), *(s for s, _ in added)]
    rows = []
    for number, record in enumerate(records[header_at + 1 :], start=header_at + 2):
        if not any(cell.strip() for cell in record):
            continue
        padded = [*record, *([""] * (width - len(record)))]
        item = by_row.get(number)
        if item is not None:
            values = result_values(job, item, settings)
        else:
            values = {"status": "skipped", "error": job.skipped.get(str(number), "")}
        rows.append([*padded, *(values.get(own, "") for _, own in added)])
    return write_csv(out_header, rows, delimiter=job.delimiter, excel=excel)
