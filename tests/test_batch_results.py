"""What a batch gives back, without running one: spreadsheet-safe CSV cells, the evaluation against
scikit-learn, lmms-eval-style option letters, label schemas."""

from __future__ import annotations

import io
import random

import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from core.errors import InputError
from core.jobs.evaluate import evaluate_table, extract_option, read_table, reduce, report_lines
from core.jobs.export import neutralise, write_csv
from core.jobs.labels import LabelSchema


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ('=HYPERLINK("http://evil")', '\'=HYPERLINK("http://evil")'),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("-3", "-3"),
        ("+1.5", "+1.5"),
        ("a = b", "a = b"),
        ("", ""),
    ],
)
def test_formula_cells_are_neutralised(cell: str, written: str):
    assert neutralise(cell) == written


def test_a_neutralised_csv_round_trips_through_pandas():
    header = ["url", "note", "answer"]
    rows = [["a.mp4", "=1+1", 'line one\nline two, with "quotes"'], ["b.mp4", "@x", "-3"]]
    for excel in (False, True):
        data = write_csv(header, rows, excel=excel)
        assert data.startswith(b"\xef\xbb\xbf") == excel
        frame = pd.read_csv(io.BytesIO(data), encoding="utf-8-sig", dtype=str, keep_default_na=False)
        assert list(frame.columns) == header
        assert frame["note"].tolist() == ["'=1+1", "'@x"]
        assert frame["answer"].tolist() == ['line one\nline two, with "quotes"', "-3"]


# -- option letters, the lmms-eval way ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("answer", "letter"),
    [
        ("The answer is (B).", "B"),
        ("B) a dog running", "B"),
        ("<think>A looks likely, but the man leaves.</think><answer>C</answer>", "C"),
        ("<think>Option A? no.</think> The best answer is D.", "D"),
        ("Best option: (A)", "A"),
        ("b", "B"),
        ("(c) the red car", "C"),
        ("Answer: D. The woman.", "D"),
        ("I cannot tell from these frames what happens to the people in the video at the end", None),
        ("", None),
    ],
)
def test_option_letters(answer: str, letter: str | None):
    assert extract_option(answer) == letter


def test_yes_no_and_numbers_are_normalised():
    assert reduce("<think>hmm</think>Yes, there is.", "yesno") == "yes"
    assert reduce("No.", "yesno") == "no"
    assert reduce("There are 3 people.", "number") == "3"
    assert reduce("3.0", "number") == "3"
    assert reduce("  The Kitchen. ", "text") == "the kitchen"


def test_metrics_equal_scikit_learns():
    rng = random.Random(7)
    classes = "ABCD"
    labels = [rng.choice(classes) for _ in range(60)]
    predicted = [label if rng.random() < 0.6 else rng.choice(classes) for label in labels]
    wordings = ["{}", "The answer is ({}).", "{}) something", "<think>hmm</think><answer>{}</answer>"]
    rows = [[label, rng.choice(wordings).format(p), "done"] for label, p in zip(labels, predicted, strict=True)]
    rows += [
        ["A", "", "failed"],
        ["B", "I really cannot say anything at all about what this video shows, sorry", "done"],
    ]
    evaluation = evaluate_table(["label", "answer", "status"], rows)
    [engine] = evaluation.engines
    assert (evaluation.mode, evaluation.labelled) == ("letter", 62)
    assert (engine.scored, engine.failed, engine.abstained) == (60, 1, 1)
    found = sorted(set(labels) | set(predicted))
    assert engine.classes == found
    assert engine.accuracy == pytest.approx(accuracy_score(labels, predicted))
    assert engine.accuracy_all == pytest.approx(accuracy_score(labels, predicted) * 60 / 62)
    assert engine.macro_f1 == pytest.approx(f1_score(labels, predicted, average="macro"))
    precision, recall, _, support = precision_recall_fscore_support(labels, predicted, labels=found)
    assert [c.precision for c in engine.per_class] == pytest.approx(list(precision))
    assert [c.recall for c in engine.per_class] == pytest.approx(list(recall))
    assert [c.support for c in engine.per_class] == list(support)
    assert engine.confusion == confusion_matrix(labels, predicted, labels=found).tolist()
    text = "\n".join(report_lines(evaluation))
    assert "scored 60, abstained 1, failed 1" in text and "macro-F1" in text


def test_a_hand_made_example():
    header = ["url", "label", "answer", "status"]
    rows = [
        ["a", "cat", "Cat.", "done"],
        ["b", "cat", "dog", "done"],
        ["c", "dog", "dog", "done"],
        ["d", "bird", "bird", "done"],
        ["e", "bird", "", "failed"],
    ]
    engine = evaluate_table(header, rows).engines[0]
    assert engine.accuracy == pytest.approx(3 / 4) and engine.failed == 1
    assert engine.classes == ["bird", "cat", "dog"]
    assert engine.confusion == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
    cat = next(c for c in engine.per_class if c.label == "cat")
    assert (cat.precision, cat.recall) == (1.0, 0.5)


def test_linked_answers_are_scored_each_with_their_agreement():
    header = ["label", "answer_local", "answer_gemini"]
    rows = [["yes", "Yes", "yes"], ["no", "yes", "no"], ["no", "No.", "no"], ["yes", "no", "Yes"]]
    evaluation = evaluate_table(header, rows)
    assert [e.column for e in evaluation.engines] == ["answer_local", "answer_gemini"]
    assert [e.accuracy for e in evaluation.engines] == [0.5, 1.0]
    assert evaluation.agreement == 0.5


def test_a_results_csv_reads_back_for_evaluation():
    data = write_csv(["label", "answer", "status"], [["-1", "-1", "done"], ["=2", "=2", "done"]], excel=True)
    header, rows = read_table(data)
    engine = evaluate_table(header, rows).engines[0]
    assert engine.accuracy == 1.0
    with pytest.raises(InputError, match="no 'label' column"):
        evaluate_table(["answer"], [["x"]])


# -- labels -------------------------------------------------------------------------------------------
def test_a_label_schema_asks_and_reads():
    schema = LabelSchema.from_json(
        '{"properties": {"topic": {"type": "string", "enum": ["news", "sports"]},'
        ' "people": {"type": "boolean"}, "count": {"type": "integer", "description": "people seen"}}}'
    )
    question = schema.question()
    assert '"topic": one of "news", "sports"' in question and "people seen" in question
    reading = schema.read('<think>x</think>```json\n{"topic": "Sports", "people": "yes", "count": 2.5}\n```')
    assert reading.values == {"topic": "sports", "people": "true", "count": ""}
    assert reading.problems == ["count: 2.5 is not a whole number"]
    assert schema.read("no json here").problems == ["the answer holds no JSON object"]
    for bad in ("{", "[]", '{"properties": {}}', '{"properties": {"1x": {"type": "string"}}}'):
        with pytest.raises(InputError):
            LabelSchema.from_json(bad)
