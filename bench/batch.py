"""Batch benchmark: items a minute through the real worker and job store.

Run from the repository root:

    python bench/batch.py            # 16 rows on a 1 s Gemini stand-in; 8 rows on the tiny local model
    python bench/batch.py --quick    # fewer rows, a smoke run

1. Remote engines: the Gemini stand-in (tests/gemini_fake.py, the real SDK against a local server)
   answers every request after `--latency` seconds; the same rows run at VCHAT_BATCH_CONCURRENCY 1
   (sequential) and 8. Target: 8 at once at least 6x faster.
2. The local model: the tiny random checkpoint (`python -m core tiny-model`) on the one model host,
   rows run one at a time on the model, with the next rows' media fetched, sanitized and decoded
   ahead (VCHAT_BATCH_PREFETCH 2) and without (0). Reported, no target: a real model's seconds a row
   dwarf the media's, the tiny one's do not.
Each run gets a fresh data dir (no stored result is reused); both figures of a ratio are taken in
this run. Targets are reported (PASS/MISS), not asserted: the script exits 0 either way.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from pydantic import SecretStr  # noqa: E402

from core.config import Settings  # noqa: E402
from core.jobs.csv_input import read_batch_csv  # noqa: E402
from core.jobs.store import JobStore  # noqa: E402
from core.jobs.submit import submit_job  # noqa: E402
from core.jobs.worker import BatchWorker  # noqa: E402
from core.models.base import AnalysisRequest, GenerationSettings  # noqa: E402
from tests.gemini_fake import VALID_KEY, SlowGemini, rate_limited  # noqa: E402
from tests.media_factory import make_clip  # noqa: E402


def clips(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for n in range(count):
        path = folder / f"bench{n}.mp4"
        if not path.exists():
            make_clip(path, duration=4, size=f"{320 + 16 * n}x240", rate=25)
        made.append(path)
    return made


def run_batch(
    root: Path, sources: list[Path], settings_update: dict, model: str, request: AnalysisRequest
) -> tuple[float, int]:
    """Seconds to run the rows to done in a fresh data dir, and how many attempts were retried."""
    media = root / "videos"
    media.mkdir(parents=True)
    for source in sources:
        (media / source.name).write_bytes(source.read_bytes())
    settings = Settings(data_dir=root / "data", media_dir=media, **settings_update)
    data = ("url\n" + "".join(f"{s.name}\n" for s in sources)).encode()
    batch = read_batch_csv(data, settings, name="bench.csv")
    job, _ = submit_job(batch, settings, kind="analyze", model=model, model_label=model, request=request,
                        question="What is shown?")  # fmt: skip
    started = time.perf_counter()
    BatchWorker(settings, role="cli").run_job(job.id)
    seconds = time.perf_counter() - started
    store = JobStore(settings)
    states = {item.state for item in store.items(job.id)}
    if states != {"done"}:
        raise SystemExit(f"the bench batch did not finish: {states}")
    return seconds, sum(1 for a in store.attempts(job.id) if a["outcome"] == "retry")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rows")
    parser.add_argument("--latency", type=float, default=1.0, help="the Gemini stand-in's seconds an answer")
    parser.add_argument("--workdir", type=Path, default=REPO_ROOT / "bench" / ".cache", help="clips, tiny model")
    args = parser.parse_args(argv)
    remote_rows, local_rows = (8, 4) if args.quick else (16, 8)
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.platform()}")
    sources = clips(args.workdir / "batch_clips", max(remote_rows, local_rows))
    ratios: list[tuple[str, float, float | None]] = []

    fake = SlowGemini(args.latency).start()
    os.environ["GOOGLE_GEMINI_BASE_URL"] = fake.base_url
    gemini = {"gemini_api_key": SecretStr(VALID_KEY)}
    request = AnalysisRequest(question="x")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            timed = {}
            for concurrency in (1, 8):
                seconds, _ = run_batch(Path(tmp) / f"c{concurrency}", sources[:remote_rows],
                                       {**gemini, "batch_concurrency": concurrency}, "gemini", request)  # fmt: skip
                timed[concurrency] = seconds
                per_minute = remote_rows / seconds * 60
                print(f"gemini stand-in ({args.latency:g} s), {remote_rows} rows, concurrency {concurrency}: "
                      f"{seconds:.1f} s ({per_minute:.0f} rows/min)", flush=True)  # fmt: skip
            ratios.append(("concurrency 8 vs 1 (Gemini stand-in)", timed[1] / timed[8], 6.0))
            # 429s the engine does not retry past (its own retries off): the worker backs off and retries
            fake.script(*[rate_limited() for _ in range(4)])
            limited = {**gemini, "batch_concurrency": 8, "gemini_retries": 0, "batch_backoff_s": 0.5}
            seconds, retried = run_batch(Path(tmp) / "r429", sources[:remote_rows], limited, "gemini", request)
            print(f"gemini stand-in, {remote_rows} rows, concurrency 8, the first 4 answers 429: every row done in "
                  f"{seconds:.1f} s, {retried} attempts retried after a backoff", flush=True)  # fmt: skip
    finally:
        fake.stop()

    tiny = args.workdir / "tiny-model"
    if not (tiny / "config.json").exists():
        subprocess.run([sys.executable, "-m", "core", "tiny-model", str(tiny)], check=True, cwd=REPO_ROOT)
    local_request = AnalysisRequest(question="x", rounds=1, frames=8, generation=GenerationSettings(max_new_tokens=16))
    with tempfile.TemporaryDirectory() as tmp:
        # load the model once first: both timed runs then find it loaded on the one model host
        run_batch(Path(tmp) / "warm", sources[:1], {"model_path": tiny}, "local", local_request)
        timed = {}
        for prefetch in (0, 2):
            options = {"model_path": tiny, "batch_prefetch": prefetch}
            seconds, _ = run_batch(Path(tmp) / f"p{prefetch}", sources[:local_rows], options, "local", local_request)
            timed[prefetch] = seconds
            print(f"tiny local model, {local_rows} rows, prefetch {prefetch}: {seconds:.1f} s "
                  f"({local_rows / seconds * 60:.0f} rows/min)", flush=True)  # fmt: skip
        ratios.append(("prefetch 2 vs 0 (tiny local model)", timed[0] / timed[2], None))

    print("\nratios (higher is better):")
    for name, value, target in ratios:
        verdict = "" if target is None else f"  target >= {target:g}x: {'PASS' if value >= target else 'MISS'}"
        print(f"  {name}: {value:.2f}x{verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
