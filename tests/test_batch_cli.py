"""`python -m core batch` and `evaluate`, run as a user runs them, on the Gemini stand-in: the output
file, one clear error for a bad CSV, and a batch that survives SIGKILL at random points."""

from __future__ import annotations

import io
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.batch_support import batch_clips, cli_env, put_clips  # noqa: F401 (a fixture)
from tests.gemini_fake import FakeGemini, SlowGemini

pytestmark = pytest.mark.timeout(180)


def core(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    return subprocess.run([sys.executable, "-m", "core", *args], env=env, cwd=cwd, capture_output=True, timeout=120)


@pytest.fixture
def fake() -> FakeGemini:
    server = FakeGemini().start()
    yield server  # type: ignore[misc]
    server.stop()


def test_batch_writes_the_results_csv_and_evaluate_scores_it(tmp_path: Path, fake: FakeGemini, batch_clips):  # noqa: F811
    names = put_clips(batch_clips, tmp_path / "videos", 3)
    rows = "\n".join(f"{name};{label};=cmd" for name, label in zip(names, "AAB", strict=True))
    (tmp_path / "list.csv").write_bytes(b"\xef\xbb\xbfurl;label;note\n" + rows.encode() + b"\n")
    env = cli_env(tmp_path, fake)
    args = ["batch", "list.csv", "--model", "gemini", "-Q", "Which option?", "--out", "out.csv"]
    proc = core(args, env, tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    assert "done: 3 of 3 rows answered" in proc.stderr.decode()
    frame = pd.read_csv(tmp_path / "out.csv", dtype=str, keep_default_na=False)
    assert frame["url"].tolist() == names and frame["note"].tolist() == ["'=cmd"] * 3
    assert frame["answer"].tolist() == ["A test pattern"] * 3 and frame["status"].tolist() == ["done"] * 3

    # run again on the same CSV: the same job, nothing asked again, the whole output written
    again = core([*args[:-1], "again.csv", "--format", "appended", "--excel"], env, tmp_path)
    assert again.returncode == 0, again.stderr.decode()
    assert "continuing job" in again.stderr.decode()
    assert len(fake.generate_requests()) == 3
    data = (tmp_path / "again.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    appended = pd.read_csv(io.BytesIO(data), sep=";", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert list(appended.columns)[:3] == ["url", "label", "note"] and "answer" in appended.columns

    scored = core(["evaluate", "out.csv"], env, tmp_path)
    assert scored.returncode == 0, scored.stderr.decode()
    text = scored.stdout.decode()
    assert "3 of 3 rows have a label; compared as multiple choice (ABCD)." in text
    assert "accuracy 0.667" in text and "confusion matrix" in text


def test_a_bad_csv_exits_2_with_its_rows(tmp_path: Path, fake: FakeGemini):
    (tmp_path / "bad.csv").write_text("url,question\n,what\nftp://example.org/x.mp4,what\n")
    proc = core(["batch", "bad.csv", "--model", "gemini", "--out", "out.csv"], cli_env(tmp_path, fake), tmp_path)
    assert proc.returncode == 2
    err = proc.stderr.decode()
    assert "Traceback" not in err
    [error] = [line for line in err.splitlines() if line.startswith("error:")]
    assert error.startswith("error: The CSV has 2 problem(s), listed above.") and "--skip-bad" in error
    assert "problem: row 2: the url cell is empty." in err
    assert "problem: row 3: 'ftp://example.org/x.mp4' has the scheme 'ftp:'" in err
    assert not (tmp_path / "out.csv").exists()

    missing = core(["batch", "nothing.csv", "--model", "gemini"], cli_env(tmp_path, fake), tmp_path)
    assert missing.returncode == 2 and "No such CSV file: nothing.csv" in missing.stderr.decode()
    (tmp_path / "nourl.csv").write_text("link\nx\n")
    nourl = core(["batch", "nourl.csv", "--model", "gemini"], cli_env(tmp_path, fake), tmp_path)
    assert nourl.returncode == 2 and "There is no 'url' column" in nourl.stderr.decode()


def rows_done(path: Path) -> int:
    try:
        return sqlite3.connect(path).execute("SELECT COUNT(*) FROM items WHERE state = 'done'").fetchone()[0]
    except sqlite3.OperationalError:  # killed before the job store was made
        return 0


def test_sigkill_ten_times_then_the_batch_finishes_each_row_once(tmp_path: Path, batch_clips):  # noqa: F811
    slow = SlowGemini(delay_s=0.8).start()
    try:
        names = put_clips(batch_clips, tmp_path / "videos", 8)
        (tmp_path / "list.csv").write_text("url,id\n" + "\n".join(f"{n},{i}" for i, n in enumerate(names)) + "\n")
        env = cli_env(tmp_path, slow, VCHAT_BATCH_CONCURRENCY="1")
        args = [sys.executable, "-m", "core", "batch", "list.csv", "--model", "gemini", "-Q", "What?"]
        args += ["--out", "out.csv"]
        rng = random.Random(15)
        kills = 0
        progress: list[int] = []
        for _ in range(10):
            proc = subprocess.Popen(args, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    start_new_session=True)  # fmt: skip
            time.sleep(rng.uniform(0.5, 2.5))
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                kills += 1
            proc.wait(timeout=30)
            progress.append(rows_done(tmp_path / "data" / "jobs.sqlite"))
        print("rows done after each kill:", progress)
        assert kills >= 5 and progress[0] < 8
        final = subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, timeout=120)
        assert final.returncode == 0, final.stderr.decode()
    finally:
        slow.stop()
    frame = pd.read_csv(tmp_path / "out.csv", dtype=str, keep_default_na=False)
    assert frame["url"].tolist() == names  # every row once, in input order
    assert frame["status"].tolist() == ["done"] * 8
    assert frame["result_key"].nunique() == 8
    assert len(list((tmp_path / "data" / "results").rglob("*.json"))) == 8  # no result written twice
    db = sqlite3.connect(tmp_path / "data" / "jobs.sqlite")
    assert db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 1
    done = db.execute("SELECT idx, COUNT(*) FROM attempts WHERE outcome = 'done' GROUP BY idx").fetchall()
    assert sorted(done) == [(n, 1) for n in range(8)]
    assert db.execute("SELECT COUNT(*) FROM attempts WHERE outcome IS NULL").fetchone()[0] == 0


def test_the_cli_leaves_the_job_to_a_running_app_worker(
    tmp_path: Path,
    fake: FakeGemini,
    batch_clips,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
):
    """The app's worker holds the batch lease (and would hold the model): the CLI queues its job there
    and follows it, instead of loading a second copy of the model."""
    from pydantic import SecretStr

    from core.config import Settings
    from core.jobs.worker import ensure_background_worker, stop_background_workers
    from tests.gemini_fake import VALID_KEY

    names = put_clips(batch_clips, tmp_path / "videos", 2)
    (tmp_path / "list.csv").write_text("url\n" + "\n".join(names) + "\n")
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.base_url)
    app_settings = Settings(
        data_dir=tmp_path / "data", media_dir=tmp_path / "videos", gemini_api_key=SecretStr(VALID_KEY)
    )
    worker = ensure_background_worker(app_settings)
    try:
        deadline = time.monotonic() + 10
        while worker.store.lease().owner != worker.owner and time.monotonic() < deadline:
            time.sleep(0.05)
        proc = core(
            ["batch", "list.csv", "--model", "gemini", "-Q", "What?", "--out", "out.csv"],
            cli_env(tmp_path, fake),
            tmp_path,
        )
    finally:
        stop_background_workers(30)
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    assert "note: the app (pid " in err and "the job is queued there, following its progress" in err
    frame = pd.read_csv(tmp_path / "out.csv", dtype=str, keep_default_na=False)
    assert frame["status"].tolist() == ["done", "done"]
    db = sqlite3.connect(tmp_path / "data" / "jobs.sqlite")
    owners = {row[0].split(":")[0] for row in db.execute("SELECT owner FROM attempts")}
    assert owners == {"app"}


def test_skip_bad_runs_the_good_rows_and_says_why_the_others_were_left_out(
    tmp_path: Path,
    fake: FakeGemini,
    batch_clips,  # noqa: F811
):
    [name] = put_clips(batch_clips, tmp_path / "videos", 1)
    (tmp_path / "list.csv").write_text(f"url;note\n{name};kept\nfile:///etc/passwd;left out\n")
    args = ["batch", "list.csv", "--model", "gemini", "-Q", "What?", "--skip-bad", "--format", "appended"]
    proc = core([*args, "--out", "out.csv"], cli_env(tmp_path, fake), tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    frame = pd.read_csv(tmp_path / "out.csv", sep=";", dtype=str, keep_default_na=False)
    assert frame["note"].tolist() == ["kept", "left out"]
    assert frame["status"].tolist() == ["done", "skipped"]
    assert "has the scheme 'file:'" in frame["error"].tolist()[1]
