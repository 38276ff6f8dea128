"""Progress that moves: sanitize reports ffmpeg's progress, frame decoding reports frames decoded of
those needed, each round reports the tokens it generated; fractions only go forward."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from core.analysis.runner import run_analysis
from core.config import Settings
from core.models.base import AnalysisRequest, GenerationSettings

Report = tuple[str, str, float | None]


@pytest.fixture(scope="module")
def chatty_model(tiny_model: Path) -> Path:
    """The shared tiny checkpoint: it generates as many tokens as it is allowed (the streamed line moves)."""
    return tiny_model


def of(reports: list[Report], stage: str) -> list[Report]:
    return [report for report in reports if report[0] == stage]


def test_each_slow_stage_says_how_far_it_is(settings: Settings, chatty_model: Path, clips: dict[str, Path]):
    shutil.copyfile(clips["yuv444"], settings.media_dir / "clip.mp4")  # yuv444: re-encoded, ffmpeg reports
    reports: list[Report] = []
    request = AnalysisRequest(
        question="What is shown?", rounds=2, frames=8, generation=GenerationSettings(max_new_tokens=24)
    )
    run_analysis(
        "clip.mp4",
        settings.model_copy(update={"model_path": chatty_model}),
        "local",
        request,
        on_stage=lambda stage, message, fraction: reports.append((stage, message, fraction)),
    )
    sanitize = [r for r in of(reports, "sanitize") if r[2]]
    assert sanitize and all(re.fullmatch(r"\d+ of 2 s written \(\d+ s\)", m) for _, m, _ in sanitize)
    assert [f for _, _, f in sanitize] == sorted(f for _, _, f in sanitize) and sanitize[-1][2] == 1.0

    decoding = [r for r in of(reports, "frames") if r[1].startswith("round")]
    first = [r for r in decoding if r[1].startswith("round 1 of 2")]
    assert first[-1][1] == "round 1 of 2: decoded 8 of 8 new frames" and first[-1][2] == 1.0
    assert all(0 < f <= 1 for _, _, f in decoding)

    rounds = of(reports, "round")
    done = [m for _, m, _ in rounds if re.fullmatch(r"round \d of 2: \d+ tokens? generated", m)]
    assert [m.split(":")[0] for m in done] == ["round 1 of 2", "round 2 of 2"]
    assert all(int(m.split(": ")[1].split()[0]) > 0 for m in done)
    fractions = [f for _, _, f in rounds if f is not None]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0  # forward only, to the end
