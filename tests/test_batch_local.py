"""A batch on the local model (the tiny random checkpoint, through the real loading code and the one
model host): one row at a time on the model while the next rows' media is readied ahead."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

from core.config import Settings
from core.jobs.csv_input import read_batch_csv
from core.jobs.export import results_csv
from core.jobs.store import JobStore
from core.jobs.submit import submit_job
from core.jobs.worker import BatchWorker
from core.models.base import AnalysisRequest, GenerationSettings
from tests.batch_support import batch_clips, put_clips  # noqa: F401 (a fixture)
from tests.support import LocalServer

pytestmark = pytest.mark.timeout(300)


def test_a_batch_on_the_tiny_local_model(settings: Settings, tiny_model: Path, server: LocalServer, batch_clips):  # noqa: F811
    """20 rows from the media folder and from the local HTTP server, in input order, passthrough kept."""
    local = settings.model_copy(update={"model_path": tiny_model, "batch_prefetch": 2})
    files = put_clips(batch_clips, local.media_dir, 6)
    remote = [server.serve_file(f"/remote{n}.mp4", batch_clips[6 + n]) for n in range(2)]
    questions = ("What is shown?", "What colour is it?", "Is anything moving?")
    rows = [(url, question) for question in questions for url in [*files, *remote]][:20]
    names = [url for url, _ in rows]
    lines = [f"{n},{url},{q},{'web' if url.startswith('http') else 'folder'}\n" for n, (url, q) in enumerate(rows)]
    data = ("id,url,question,source\n" + "".join(lines)).encode()
    batch = read_batch_csv(data, local, name="local.csv")
    request = AnalysisRequest(question="x", rounds=1, frames=4, generation=GenerationSettings(max_new_tokens=8))
    job, _ = submit_job(batch, local, kind="analyze", model="local", model_label="tiny", request=request)
    assert BatchWorker(local, role="cli").run_job(job.id)
    items = JobStore(local).items(job.id)
    assert [i.state for i in items] == ["done"] * 20, [i.error for i in items]
    assert all(i.stages for i in items)
    frame = pd.read_csv(io.BytesIO(results_csv(job, items, local)), dtype=str, keep_default_na=False)
    assert frame["id"].tolist() == [str(n) for n in range(20)] and frame["url"].tolist() == names
    assert frame["source"].tolist() == ["web" if url.startswith("http") else "folder" for url in names]
    assert frame["status"].tolist() == ["done"] * 20 and frame["result_key"].nunique() == 20
