"""A batch CSV read and checked before anything starts: encodings, delimiters, quoted newlines, and
a report of problems by the row numbers a spreadsheet shows (header = row 1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import Settings
from core.errors import InputError
from core.jobs.csv_input import read_batch_csv


@pytest.fixture
def media(settings: Settings) -> Settings:
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        (settings.media_dir / name).write_bytes(b"not read by the check")
    return settings


def lines(batch) -> list[str]:  # type: ignore[no-untyped-def]
    return [p.line() for p in batch.problems]


def test_a_clean_csv_with_bom_semicolons_and_quoted_newlines(media: Settings):
    text = 'ID;Url;Question;note\n1;a.mp4;"What is\nshown?";"x;y"\n\n2;https://example.org/v.mp4;;=SUM(A1)\n'
    batch = read_batch_csv(b"\xef\xbb\xbf" + text.encode(), media, name="list.csv")
    assert batch.clean and batch.delimiter == ";" and batch.encoding == "utf-8-sig"
    assert batch.columns == ["ID", "Url", "Question", "note"]
    first, second = batch.rows
    assert (first.row, first.url, first.question, first.id) == (2, "a.mp4", "What is\nshown?", "1")
    assert first.cells["note"] == "x;y"
    # the quoted newline does not shift the numbers; the blank line counts as a row, as a spreadsheet shows it
    assert (second.row, second.question, second.cells["note"]) == (4, None, "=SUM(A1)")
    assert [r.row for r in batch.usable_rows()] == [2, 4]


def test_no_url_column_is_fatal(media: Settings):
    batch = read_batch_csv(b"link,question\na.mp4,what\n", media)
    assert batch.fatal
    assert lines(batch) == ["There is no 'url' column (the header has 'link', 'question')."]
    with pytest.raises(InputError, match="no 'url' column"):
        batch.usable_rows(skip_bad=True)


def test_problems_are_listed_by_spreadsheet_row(media: Settings):
    text = (
        "url,question\n"
        "a.mp4,one\n"  # row 2: fine
        ",two\n"  # row 3: empty url
        "ftp://example.org/v.mp4,three\n"  # row 4: scheme
        "file:///etc/passwd,four\n"  # row 5: scheme
        "a.mp4,one\n"  # row 6: repeats row 2
        "missing.mp4,six\n"  # row 7: no such file
        "http://,seven\n"  # row 8: no host
        "b.mp4,eight\n"  # row 9: fine
    )
    batch = read_batch_csv(text.encode(), media)
    assert not batch.fatal and not batch.clean
    found = lines(batch)
    assert found[0] == "row 3: the url cell is empty."
    assert found[1].startswith("row 4: 'ftp://example.org/v.mp4' has the scheme 'ftp:'")
    assert found[2].startswith("row 5: 'file:///etc/passwd' has the scheme 'file:'")
    assert found[3] == "row 6: repeats row 2 (the same url and question)."
    assert found[4].startswith("row 7: No such file in the media folder")
    assert found[5].startswith("row 8: 'http://' is not a usable URL")
    assert len(found) == 6
    with pytest.raises(InputError, match="6 problems"):
        batch.usable_rows()
    assert [r.row for r in batch.usable_rows(skip_bad=True)] == [2, 9]


def test_a_repeated_url_with_another_question_is_not_a_duplicate(media: Settings):
    batch = read_batch_csv(b"url,question\na.mp4,one\na.mp4,two\nb.mp4,\nb.mp4,\n", media)
    assert lines(batch) == ["row 5: repeats row 4 (the same url)."]


def test_the_row_limit(media: Settings):
    settings = media.model_copy(update={"batch_max_rows": 2})
    batch = read_batch_csv(b"url\na.mp4\nb.mp4\nc.mp4\nhttps://example.org/x\n", settings)
    found = lines(batch)
    assert found[0].startswith("row 4: the CSV has 4 data rows; at most 2 are allowed (VCHAT_BATCH_MAX_ROWS)")
    assert found[1] == "row 5: over the row limit."
    assert [r.row for r in batch.usable_rows(skip_bad=True)] == [2, 3]


def test_the_row_limit_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("VCHAT_BATCH_MAX_ROWS", "7")
    assert Settings(data_dir=tmp_path).batch_max_rows == 7


def test_windows_1252_and_extra_cells(media: Settings):
    batch = read_batch_csv("url,note\na.mp4,café\nb.mp4,x,y\n".encode("cp1252"), media)
    assert batch.encoding == "cp1252" and batch.rows[0].cells["note"] == "café"
    assert batch.notes and "Windows-1252" in batch.notes[0]
    assert lines(batch) == ["row 3: 1 cell more than the header has columns."]


@pytest.mark.parametrize("data", [b"", b"\n\n", b"url,question\n"])
def test_empty_files_are_fatal(media: Settings, data: bytes):
    assert read_batch_csv(data, media).fatal
