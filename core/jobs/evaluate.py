"""Scores a batch's answers against its `label` column: accuracy, macro-F1, per-class precision and
recall, the confusion matrix, with abstentions and failures counted apart (never dropped silently).

Answers are reduced before they are compared, the way lmms-eval scores video benchmarks:
- multiple choice (every label is one letter): reasoning tags are dropped (`<think>...</think>`, and
  the `<answer>` is taken when there is one), the usual prefixes ("The answer is", "Best option:")
  are removed, and the first standalone option letter is the prediction ("(B)", "B) a dog", "B.");
  a lowercase letter counts when it stands alone or in brackets ("b", "(c) the dog"); an answer of
  more than ten words with no option letter is an abstention, as in lmms-eval;
- yes/no labels: the first standalone "yes" or "no";
- numeric labels: the first number (3, 3.0 and "3 people" are all 3);
- anything else: the text, lowercased, with outer punctuation and extra spaces removed.
An answer that reduces to nothing is an *abstention*; a row whose item failed (or never ran) is a
*failure*. Accuracy, macro-F1, precision, recall and the confusion matrix are scikit-learn's, over
the rows that have a label and a prediction; `accuracy_all` counts abstentions and failures as wrong.
Linked mode's two answers (answer_local, answer_gemini) are scored each, with how often they agree.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Literal

from pydantic import BaseModel, Field

from core.errors import InputError

Mode = Literal["letter", "yesno", "number", "text"]
PREFIXES = (
    "the best answer is",
    "the correct answer is",
    "the answer is",
    "the answer",
    "the best option is",
    "the correct option is",
    "best answer:",
    "best option:",
    "answer:",
)
FAILED = {"failed", "cancelled", "queued", "preparing", "running", "skipped"}
_NUMBER = re.compile(r"[-+]?\d+(?:[.,]\d+)?")


def strip_reasoning(text: str) -> str:
    """The answer part of a model's output: no <think> block; the <answer> block when there is one."""
    cleaned = re.sub(r"<think>.*?(</think>|$)", " ", text or "", flags=re.S | re.I)
    inner = re.search(r"<answer>(.*?)(</answer>|$)", cleaned, flags=re.S | re.I)
    return (inner.group(1) if inner else cleaned).strip()


def extract_option(text: str, letters: str = "ABCD") -> str | None:
    """The option letter an answer gives (lmms-eval's rule, standalone letters only), or None."""
    s = strip_reasoning(text)
    for prefix in PREFIXES:
        s = re.sub(re.escape(prefix), " ", s, flags=re.I)
    s = s.strip()
    upper = re.compile(rf"(?<![A-Za-z0-9])[{letters}](?![A-Za-z0-9])")
    found = upper.search(s)
    if len(s.split()) > 10 and not found:
        return None
    if found:
        return found.group(0)
    lower = letters.lower()
    alone = re.match(rf"^[\s:]*\(?([{lower}])\)?[.):]?(\s|$)", s) or re.search(rf"\(([{lower}])\)", s)
    return alone.group(1).upper() if alone else None


def extract_yes_no(text: str) -> str | None:
    found = re.search(r"(?<![a-z])(yes|no)(?![a-z])", strip_reasoning(text).lower())
    return found.group(1) if found else None


def extract_number(text: str) -> str | None:
    found = _NUMBER.search(strip_reasoning(text))
    return _number(found.group(0)) if found else None


def normalise_text(text: str) -> str | None:
    cleaned = " ".join(strip_reasoning(text).lower().split()).strip(" .,;:!?\"'()[]")
    return cleaned or None


def _number(text: str) -> str:
    value = float(text.replace(",", "."))
    return str(int(value)) if value == int(value) else f"{value:g}"


def label_mode(labels: list[str]) -> tuple[Mode, str]:
    """How a label set is compared, and the option letters (for multiple choice)."""
    cleaned = [label.strip() for label in labels if label and label.strip()]
    if cleaned and all(re.fullmatch(r"\(?[A-Za-z]\)?\.?", label) for label in cleaned):
        top = max(max(re.sub(r"[^A-Za-z]", "", label).upper() for label in cleaned), "D")
        return "letter", "".join(chr(c) for c in range(ord("A"), ord(top) + 1))
    if cleaned and all(label.lower().strip(".") in ("yes", "no") for label in cleaned):
        return "yesno", ""
    if cleaned and all(_NUMBER.fullmatch(label) for label in cleaned):
        return "number", ""
    return "text", ""


def reduce(text: str, mode: Mode, letters: str = "ABCD") -> str | None:
    """An answer or a label, reduced to what is compared (None: nothing there to compare)."""
    if not text or not text.strip():
        return None
    if mode == "letter":
        return extract_option(text, letters)
    if mode == "yesno":
        return extract_yes_no(text)
    if mode == "number":
        return extract_number(text)
    return normalise_text(text)


class ClassScore(BaseModel):
    label: str
    precision: float
    recall: float
    f1: float
    support: int


class EngineScore(BaseModel):
    column: str
    scored: int = 0  # rows with a label and a prediction
    abstained: int = 0  # answered, but no prediction could be read from the answer
    failed: int = 0  # the item failed or never ran
    accuracy: float | None = None  # over the scored rows
    accuracy_all: float | None = None  # over every labelled row: abstentions and failures count as wrong
    macro_f1: float | None = None
    classes: list[str] = Field(default_factory=list)
    per_class: list[ClassScore] = Field(default_factory=list)
    confusion: list[list[int]] = Field(default_factory=list)  # rows: label, columns: prediction (classes order)
    predictions: list[str | None] = Field(default_factory=list)  # per labelled row, in order


class Evaluation(BaseModel):
    mode: Mode
    letters: str = ""
    rows: int
    labelled: int
    engines: list[EngineScore]
    agreement: float | None = None  # linked mode: how often the two engines' predictions are the same
    agreement_rows: int = 0  # rows where both gave a prediction


def score(
    labels: list[str], answers: list[str], failed: list[bool], mode: Mode, letters: str, column: str
) -> EngineScore:
    """One answer column scored against the labels (all three lists: one entry per labelled row)."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    result = EngineScore(column=column)
    truth, predicted = [], []
    for label, answer, broken in zip(labels, answers, failed, strict=True):
        expected = reduce(label, mode, letters)
        guess = None if broken else reduce(answer, mode, letters)
        result.predictions.append(guess)
        if broken:
            result.failed += 1
        elif guess is None:
            result.abstained += 1
        elif expected is not None:
            truth.append(expected)
            predicted.append(guess)
    result.scored = len(truth)
    if truth:
        classes = sorted(set(truth) | set(predicted))
        result.classes = classes
        result.accuracy = float(accuracy_score(truth, predicted))
        result.accuracy_all = sum(t == p for t, p in zip(truth, predicted, strict=True)) / len(labels)
        result.macro_f1 = float(f1_score(truth, predicted, average="macro", labels=classes, zero_division=0))
        precision, recall, f1, support = precision_recall_fscore_support(
            truth, predicted, labels=classes, zero_division=0
        )
        result.per_class = [
            ClassScore(label=c, precision=float(p), recall=float(r), f1=float(f), support=int(s))
            for c, p, r, f, s in zip(classes, precision, recall, f1, support, strict=True)
        ]
        result.confusion = confusion_matrix(truth, predicted, labels=classes).tolist()
    elif labels:
        result.accuracy_all = 0.0
    return result


def evaluate_table(
    header: list[str],
    rows: list[list[str]],
    label_column: str = "label",
    answer_columns: list[str] | None = None,
    status_column: str = "status",
) -> Evaluation:
    """Score a results table (a batch's results CSV, or any table with a label and an answer column)."""
    index = {name.strip().lower(): i for i, name in reversed(list(enumerate(header)))}

    def column(name: str) -> int:
        if name.strip().lower() not in index:
            raise InputError(f"The table has no '{name}' column (it has {', '.join(header[:12])}).")
        return index[name.strip().lower()]

    label_at = column(label_column)
    if answer_columns:
        chosen = answer_columns
    elif "answer_local" in index and "answer_gemini" in index:
        chosen = ["answer_local", "answer_gemini"]
    else:
        chosen = ["answer (vchat)"] if "answer (vchat)" in index else ["answer"]
    answer_at = [column(name) for name in chosen]
    status_at = index.get(status_column.lower())

    def cell(row: list[str], i: int) -> str:
        return _unneutralise(row[i]) if i < len(row) else ""

    labelled = [row for row in rows if cell(row, label_at).strip()]
    labels = [cell(row, label_at) for row in labelled]
    mode, letters = label_mode(labels)
    failed = [status_at is not None and cell(row, status_at).strip().lower() in FAILED for row in labelled]
    engines = [
        score(labels, [cell(row, i) for row in labelled], failed, mode, letters, name)
        for name, i in zip(chosen, answer_at, strict=True)
    ]
    evaluation = Evaluation(mode=mode, letters=letters, rows=len(rows), labelled=len(labelled), engines=engines)
    if len(engines) == 2:
        pairs = [(a, b) for a, b in zip(engines[0].predictions, engines[1].predictions, strict=True) if a and b]
        evaluation.agreement_rows = len(pairs)
        evaluation.agreement = sum(a == b for a, b in pairs) / len(pairs) if pairs else None
    return evaluation


def read_table(data: bytes) -> tuple[list[str], list[list[str]]]:
    """A CSV's header and rows (BOM, `,` `;` or tab, quoted newlines: as batch CSVs are read)."""
    from core.jobs.csv_input import decode_csv, detect_delimiter

    text, _, _ = decode_csv(data)
    records = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=detect_delimiter(text)) if any(r)]
    if not records:
        raise InputError("The results file is empty.")
    return records[0], records[1:]


def _unneutralise(cell: str) -> str:
    """A cell as it was before the results CSV's formula guard (a leading ' before = + - @)."""
    return cell[1:] if cell.startswith("'") and cell[1:2] in ("=", "+", "-", "@", "\t", "\r") else cell


def report_lines(evaluation: Evaluation) -> list[str]:
    """The evaluation as text lines (the CLI's output)."""
    kind = {"letter": f"multiple choice ({evaluation.letters})", "yesno": "yes/no", "number": "numbers",
            "text": "exact text"}[evaluation.mode]  # fmt: skip
    lines = [f"{evaluation.labelled} of {evaluation.rows} rows have a label; compared as {kind}."]
    for engine in evaluation.engines:
        lines.append("")
        lines.append(f"{engine.column}:")
        lines.append(f"  scored {engine.scored}, abstained {engine.abstained}, failed {engine.failed}")
        if engine.accuracy is None:
            lines.append("  no row could be scored")
            continue
        lines.append(f"  accuracy {engine.accuracy:.3f} (of scored rows), {engine.accuracy_all:.3f} (of labelled rows)")
        lines.append(f"  macro-F1 {engine.macro_f1:.3f}")
        width = max(len(c.label) for c in engine.per_class)
        lines.append(f"  {'class'.ljust(width)}  precision  recall  f1     support")
        for c in engine.per_class:
            lines.append(f"  {c.label.ljust(width)}  {c.precision:9.3f}  {c.recall:6.3f}  {c.f1:.3f}  {c.support:7d}")
        lines.append("  confusion matrix (rows: label, columns: prediction):")
        lines.append("  " + " " * width + "  " + "  ".join(c.rjust(5) for c in engine.classes))
        for c, counts in zip(engine.classes, engine.confusion, strict=True):
            lines.append(f"  {c.ljust(width)}  " + "  ".join(str(n).rjust(5) for n in counts))
    if evaluation.agreement is not None:
        lines.append("")
        lines.append(
            f"agreement between {evaluation.engines[0].column} and {evaluation.engines[1].column}: "
            f"{evaluation.agreement:.3f} over {evaluation.agreement_rows} rows where both answered"
        )
    return lines
