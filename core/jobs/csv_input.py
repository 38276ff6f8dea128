"""A batch CSV, read and checked before anything starts.

Columns: `url` (required: an http(s) URL or a file in the media folder), and optionally `question`
(this row's question), `label` (the expected answer, for evaluation) and `id`; names are matched
without regard to case or surrounding spaces. Every column, these included, is passed through to the
output as it was read (cells are text: "007" stays "007").

Read with the `csv` module: a UTF-8 byte order mark is dropped, `,` `;` or tab is taken as the
delimiter (whichever the header line holds most of), quoted cells may hold newlines and delimiters.
A file that is not UTF-8 is read as Windows-1252, with a note. Rows are numbered as a spreadsheet
shows them: the header is row 1, the first data row row 2 (a cell with a newline does not shift
the numbers; blank rows count, and are skipped).

The report lists problems by row (an empty or unusable url, an unsupported scheme, a missing file,
a duplicate of an earlier row, too many cells, rows over VCHAT_BATCH_MAX_ROWS). Nothing starts while
there is one, unless the person chooses to skip the rows that have them. A problem of the whole file
(no `url` column, no data rows, unreadable) cannot be skipped.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from core.config import Settings
from core.errors import InputError
from core.media.fetch import looks_like_url, resolve_local_path

SPECIAL = ("url", "question", "label", "id")
DELIMITERS = (",", ";", "\t")
SHOWN_CHARS = 80


class Problem(BaseModel):
    row: int | None = None  # spreadsheet row (header = 1); None: the file as a whole
    message: str
    fatal: bool = False  # nothing can start, even skipping rows

    def line(self) -> str:
        return f"row {self.row}: {self.message}" if self.row is not None else self.message


class BatchRow(BaseModel):
    row: int  # spreadsheet row number (header = 1)
    url: str
    question: str | None = None
    label: str | None = None
    id: str | None = None
    cells: dict[str, str] = Field(default_factory=dict)  # every column, by its name in the header


class BatchInput(BaseModel):
    name: str
    columns: list[str]  # as in the header, in order (a repeated name gets " (2)")
    delimiter: str = ","
    encoding: str = "utf-8"
    rows: list[BatchRow] = Field(default_factory=list)  # every non-blank data row
    problems: list[Problem] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    sha256: str = ""  # of the file's bytes

    @property
    def fatal(self) -> bool:
        return any(p.fatal for p in self.problems)

    @property
    def clean(self) -> bool:
        return not self.problems

    @property
    def bad_rows(self) -> set[int]:
        return {p.row for p in self.problems if p.row is not None}

    def usable_rows(self, skip_bad: bool = False) -> list[BatchRow]:
        """The rows a job gets: all of them when the report is clean, else (skipping) the good ones;
        InputError when it cannot start."""
        if self.fatal:
            raise InputError(f"The CSV cannot be used: {self.problems[0].line()}")
        if self.problems and not skip_bad:
            raise InputError(
                f"The CSV has {_count(len(self.problems), 'problem')} (first: {self.problems[0].line()}).",
                "Fix them, or skip the rows that have them.",
            )
        bad = self.bad_rows
        rows = [row for row in self.rows if row.row not in bad]
        if not rows:
            raise InputError("No row of the CSV is usable.", "Fix the rows listed in the report.")
        return rows

    def has_column(self, name: str) -> bool:
        return any(_key(column) == name for column in self.columns)


def read_batch_csv(data: bytes, settings: Settings, name: str = "batch.csv") -> BatchInput:
    """Read and check a batch CSV (bytes as uploaded or read from disk)."""
    sha = hashlib.sha256(data).hexdigest()
    text, encoding, notes = decode_csv(data)
    delimiter = detect_delimiter(text)
    try:
        records = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True))
    except csv.Error as exc:
        problem = Problem(message=f"The file cannot be read as CSV ({exc}).", fatal=True)
        return BatchInput(name=name, columns=[], problems=[problem], notes=notes, sha256=sha)
    header_at = next((i for i, record in enumerate(records) if any(cell.strip() for cell in record)), None)
    if header_at is None:
        problem = Problem(message="The file is empty: no header row, no data.", fatal=True)
        return BatchInput(name=name, columns=[], problems=[problem], notes=notes, sha256=sha)
    columns = _columns(records[header_at], notes)
    batch = BatchInput(name=name, columns=columns, delimiter=delimiter, encoding=encoding, notes=notes, sha256=sha)
    keys = {_key(column): column for column in reversed(columns)}  # the first column of each name
    if "url" not in keys:
        listed = ", ".join(f"'{c}'" for c in columns[:12]) + (" ..." if len(columns) > 12 else "")
        batch.problems.append(Problem(message=f"There is no 'url' column (the header has {listed}).", fatal=True))
        return batch
    for number, record in enumerate(records[header_at + 1 :], start=header_at + 2):
        if not any(cell.strip() for cell in record):
            continue
        if len(record) > len(columns):
            extra = len(record) - len(columns)
            batch.problems.append(
                Problem(row=number, message=f"{_count(extra, 'cell')} more than the header has columns.")
            )
        cells = {column: (record[i] if i < len(record) else "") for i, column in enumerate(columns)}

        def special(name: str, cells: dict[str, str] = cells) -> str | None:
            value = cells.get(keys[name], "").strip() if name in keys else ""
            return value or None

        batch.rows.append(
            BatchRow(
                row=number,
                url=cells[keys["url"]].strip(),
                question=special("question"),
                label=special("label"),
                id=special("id"),
                cells=cells,
            )
        )
    if not batch.rows:
        batch.problems.append(Problem(message="The CSV has a header but no data rows.", fatal=True))
        return batch
    _check_rows(batch, settings)
    batch.problems.sort(key=lambda p: (p.row is not None, p.row or 0))
    return batch


def _check_rows(batch: BatchInput, settings: Settings) -> None:
    seen: dict[tuple[str, str], int] = {}
    seen_ids: dict[str, int] = {}
    for row in batch.rows:
        problem = source_problem(row.url, settings)
        if problem:
            batch.problems.append(Problem(row=row.row, message=problem))
        pair = (row.url, row.question or "")
        if row.url and pair in seen:
            what = "url and question" if row.question else "url"
            batch.problems.append(Problem(row=row.row, message=f"repeats row {seen[pair]} (the same {what})."))
        else:
            seen.setdefault(pair, row.row)
        if row.id is not None:
            if row.id in seen_ids:
                batch.problems.append(Problem(row=row.row, message=f"has the same id as row {seen_ids[row.id]}."))
            else:
                seen_ids[row.id] = row.row
    limit = settings.batch_max_rows
    if len(batch.rows) > limit:
        first_over = batch.rows[limit].row
        batch.problems.append(
            Problem(
                row=first_over,
                message=(
                    f"the CSV has {len(batch.rows)} data rows; at most {limit} are allowed "
                    f"(VCHAT_BATCH_MAX_ROWS): this row and the {len(batch.rows) - limit - 1} after it are over it."
                ),
            )
        )
        batch.problems.extend(Problem(row=row.row, message="over the row limit.") for row in batch.rows[limit + 1 :])


def source_problem(cell: str, settings: Settings) -> str | None:
    """Why a url cell cannot be fetched (None: it can be tried): checked without any network call."""
    text = cell.strip()
    shown = text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."
    if not text:
        return "the url cell is empty."
    if looks_like_url(text):
        scheme = text.split(":", 1)[0].lower()
        if scheme not in ("http", "https"):
            return f"'{shown}' has the scheme '{scheme}:'; give an http(s) URL or a file in the media folder."
        try:
            parts = urlsplit(text)
            host = parts.hostname
        except ValueError:
            host = None
        if not host or not text.lower().startswith(f"{scheme}://"):
            return f"'{shown}' is not a usable URL (no host)."
        if re.search(r"\s", text):
            return f"'{shown}' is not a usable URL (it holds spaces)."
        return None
    try:
        resolve_local_path(text, settings)
    except InputError as exc:
        return exc.one_line()
    return None


def decode_csv(data: bytes) -> tuple[str, str, list[str]]:
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace"), "utf-8-sig", []
    try:
        return data.decode("utf-8"), "utf-8", []
    except UnicodeDecodeError:
        note = "The file is not UTF-8; it was read as Windows-1252 (save it as UTF-8 CSV to be sure of accents)."
        return data.decode("cp1252", errors="replace"), "cp1252", [note]


def detect_delimiter(text: str) -> str:
    """The delimiter the header line holds most of (quoted parts not counted); `,` on a tie."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    unquoted = re.sub(r'"[^"]*"', "", first)
    counts = {d: unquoted.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: (counts[d], d == ","))
    return best if counts[best] else ","


def _columns(header: list[str], notes: list[str]) -> list[str]:
    columns: list[str] = []
    for i, raw in enumerate(header):
        name = raw.strip() or f"column {i + 1}"
        base, n = name, 2
        while name in columns:
            name = f"{base} ({n})"
            n += 1
        if name != (raw.strip() or name):
            notes.append(f"The column name '{base}' appears more than once; the repeat is called '{name}'.")
        columns.append(name)
    return columns


def _key(column: str) -> str:
    return column.strip().lower()


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"
