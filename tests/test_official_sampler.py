"""The frames each round shows are the official VideoChat-R1.5 sampler's, index for index.

`reference_round` below restates the rules of OpenGVLab/VideoChat-R1's
`Videochat-R1.5/src_eval/my_vision_process.py` (commit 67d2d75: smart_nframes, the decord reader's
torch.linspace, sample_frames called with T - 1) independently of core/media/sampling.py, and the
grid compares the two on durations of 3 s to 1200 s, five frame rates, budgets of 4 to 128 frames
and every kind of glue. The deliberate differences are tested as such at the end.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from core.analysis.perception import cut_off_note, run_perception
from core.config import Settings
from core.media.frames import FrameSource
from core.media.pipeline import prepare_media
from core.media.sampling import plan_frames
from core.models.base import AnalysisRequest, GenerationSettings
from core.models.engine import Generation

DURATIONS = [3.0, 7.3, 29.97, 61.5, 300.0, 1200.0]
RATES = [24.0, 25.0, 30000 / 1001, 30.0, 60.0]
BUDGETS = [4, 6, 16, 32, 64, 100, 128]


# --- the official rules, restated -----------------------------------------------------------------


def reference_nframes(total: int, video_fps: float, nframes: int | None = None, fps: float | None = None) -> int:
    """smart_nframes: a given count rounded to even; else 2 fps clamped to [4, min(512, T)], floored to
    even. Raises outside [2, T], as the official code does."""
    if nframes is not None and fps is None:
        count = round(nframes / 2) * 2
    else:
        rate = fps or 2.0
        low = math.ceil(4 / 2) * 2
        high = math.floor((nframes if nframes is not None else min(512, total)) / 2) * 2
        count = math.floor(min(min(max(total / video_fps * rate, low), high), total) / 2) * 2
    if not 2 <= count <= total:
        raise ValueError(f"nframes should be in [2, {total}], got {count}")
    return count


def reference_sample_frames(key_time, total_frames: int, num_frames: int, key_ratio: float, fps: float) -> list[int]:
    """sample_frames, given total_frames = T - 1 by its caller."""
    ranges = []
    for start_sec, end_sec in key_time:
        start, end = int(start_sec * fps), min(int(end_sec * fps), total_frames - 1)
        if start <= end:
            ranges.append((start, end))
    key_count = sum(end - start + 1 for start, end in ranges)
    total_weighted = key_count * key_ratio + (total_frames - key_count)
    key_samples = round(num_frames * (key_count * key_ratio) / total_weighted)
    samples = []
    for start, end in ranges:
        samples.extend(
            np.linspace(start, end, num=max(1, round(key_samples * (end - start + 1) / key_count)), dtype=int)
        )
    inside = {i for start, end in ranges for i in range(start, end + 1)}
    outside = [i for i in range(total_frames) if i not in inside]
    if num_frames - key_samples > 0 and outside:
        samples.extend(outside[i] for i in np.linspace(0, len(outside) - 1, num=num_frames - key_samples, dtype=int))
    return sorted({int(i) for i in samples})


def reference_round(total: int, video_fps: float, budget: int, key_time=None) -> list[int]:
    count = reference_nframes(total, video_fps, nframes=budget)
    uniform = torch.linspace(0, total - 1, count).round().long().tolist()
    if key_time is None:
        return uniform
    try:
        return reference_sample_frames(key_time, total - 1, count, 1.5, video_fps)
    except Exception:  # the official loop falls back to uniform on any error
        return uniform


def glue_cases(duration: float) -> dict[str, list[tuple[float, float]]]:
    mid = duration / 2
    return {
        "one": [(0.2 * duration, 0.4 * duration)],
        "short": [(mid, mid + 0.5)],
        "moment": [(mid, mid)],
        "two": [(0.1 * duration, 0.2 * duration), (0.7 * duration, 0.75 * duration)],
        "overlapping": [(0.1 * duration, 0.5 * duration), (0.3 * duration, 0.6 * duration)],
        "edge": [(0.0, 0.05 * duration), (0.95 * duration, duration)],
        "past-the-end": [(0.9 * duration, 2 * duration), (1.5 * duration, 3 * duration)],
        "reversed": [(0.6 * duration, 0.2 * duration)],
    }


# --- the grid -------------------------------------------------------------------------------------


@pytest.mark.parametrize("duration", DURATIONS)
def test_every_round_shows_the_official_frames(duration: float):
    checked = 0
    for rate in RATES:
        total = round(duration * rate)
        for budget in BUDGETS:
            if budget > total:
                continue
            assert plan_frames(total, rate, frames=budget).indices == reference_round(total, rate, budget)
            for name, key_time in glue_cases(duration).items():
                plan = plan_frames(total, rate, frames=budget, key_time=key_time)
                assert plan.indices == reference_round(total, rate, budget, key_time), (name, total, rate, budget)
                checked += 1
    assert checked > 100


@pytest.mark.parametrize("duration", DURATIONS)
def test_every_glue_segment_a_frame_long_gets_a_frame_in_the_next_round(duration: float):
    for rate in RATES:
        total = round(duration * rate)
        for budget in BUDGETS:
            if budget > total:
                continue
            for key_time in glue_cases(duration).values():
                indices = set(plan_frames(total, rate, frames=budget, key_time=key_time).indices)
                for start_s, end_s in key_time:
                    first, last = int(start_s * rate), min(int(end_s * rate), total - 2)
                    if first <= last:
                        assert indices & set(range(first, last + 1)), (start_s, end_s, total, budget)


def test_the_processor_rate_is_the_official_one():
    plan = plan_frames(1500, 25.0, frames=32)
    assert plan.sample_fps == pytest.approx(32 / 1500 * 25)
    assert plan_frames(1500, 25.0, frames=31).nframes == 32 and plan_frames(1500, 25.0, frames=33).nframes == 32


@pytest.mark.parametrize(("fps", "budget", "count"), [(2.0, 256, 120), (0.01, 256, 4), (10.0, 32, 32), (1.0, 7, 6)])
def test_sampling_by_rate_follows_the_official_count(fps: float, budget: int, count: int):
    plan = plan_frames(1500, 25.0, frames=budget, fps=fps)
    assert plan.nframes == count and len(plan.indices) == count
    assert plan.nframes == reference_nframes(1500, 25.0, nframes=budget, fps=fps)


# --- deliberate differences ------------------------------------------------------------------------


def test_a_negative_start_is_clipped_to_zero_instead_of_wrapping_to_the_end():
    plan = plan_frames(1500, 25.0, frames=16, key_time=[(-3.0, 2.0)])
    assert min(plan.indices) >= 0 and plan.key_ranges == [(0, 50)]
    assert any("clipped to 0 s" in note for note in plan.notes)
    wrapped = reference_sample_frames([(-3.0, 2.0)], 1499, 16, 1.5, 25.0)
    assert min(wrapped) < 0, "the official code hands the reader negative indices"


def test_more_frames_than_the_video_has_gives_all_of_them_where_the_official_code_raises():
    with pytest.raises(ValueError):
        reference_nframes(9, 25.0, nframes=16)
    plan = plan_frames(9, 25.0, frames=16)
    assert plan.indices == [*range(9), 8], "all 9 frames, the last twice to pair them"
    assert any("the video has 9" in note for note in plan.notes)


def test_a_video_of_one_frame_shows_it_twice_and_says_so():
    plan = plan_frames(1, 25.0, frames=32)
    assert plan.indices == [0, 0]
    assert any("single frame" in note for note in plan.notes)


def test_a_glue_entirely_outside_the_video_spreads_the_frames_as_the_official_code_does():
    plan = plan_frames(250, 25.0, frames=16, key_time=[(50.0, 60.0)])
    assert plan.indices == reference_round(250, 25.0, 16, [(50.0, 60.0)])
    assert plan.indices[-1] < 249, "sample_frames spreads the frames over 0..T-2, unlike the uniform rule"
    assert any("no period of the glue lies inside the video" in note for note in plan.notes)


# --- the loop on a real video ----------------------------------------------------------------------


@pytest.fixture
def numbered(settings: Settings, clips) -> FrameSource:
    shutil.copyfile(clips["numbered"], settings.media_dir / "numbered.mp4")
    return FrameSource(Path(prepare_media("numbered.mp4", settings).sanitized.path))


def scripted(outputs: list[str], tokens_out: int = 10):
    def generate(sample, prompt, number):
        return Generation(outputs[number - 1], tokens_in=100, tokens_out=tokens_out)

    return generate


def test_the_loop_shows_the_official_frames_round_after_round(numbered: FrameSource):
    outputs = [
        "<answer>a</answer><glue>[(2.0, 4.0)]</glue>",
        "<answer>b</answer><glue>[(3.0, 3.2), (8, 9)]</glue>",
        "<answer>c</answer>",
    ]
    records = run_perception(numbered, AnalysisRequest(question="Q?", rounds=3, frames=16), scripted(outputs))
    total, rate = numbered.index.count, numbered.index.fps
    assert records[0].frame_indices == reference_round(total, rate, 16)
    assert records[1].frame_indices == reference_round(total, rate, 16, [(2.0, 4.0)])
    assert records[2].frame_indices == reference_round(total, rate, 16, [(3.0, 3.2), (8.0, 9.0)])
    assert records[1].next_round == "round 3 looks 1.5x more densely at 3.0-3.2 s, 8.0-9.0 s"


def test_round_one_of_three_shows_what_a_single_round_shows(numbered: FrameSource):
    glue = "<answer>a</answer><glue>[(2.0, 4.0)]</glue>"
    three = run_perception(numbered, AnalysisRequest(question="Q?", rounds=3, frames=24), scripted([glue] * 3))
    one = run_perception(numbered, AnalysisRequest(question="Q?", rounds=1, frames=24), scripted([glue]))
    assert three[0].frame_indices == one[0].frame_indices


def test_the_model_axis_reading_maps_the_glue_before_sampling(numbered: FrameSource):
    outputs = ["<answer>a</answer><glue>[(2.0, 4.0)]</glue>", "<answer>b</answer>"]
    request = AnalysisRequest(question="Q?", rounds=2, frames=16)
    video = run_perception(numbered, request, scripted(outputs), glue_time="video")
    mapped = run_perception(numbered, request, scripted(outputs), glue_time="model-axis")
    assert (video[0].segments[0].start_s, video[0].segments[0].end_s) == (2.0, 4.0)
    segment = mapped[0].segments[0]
    assert (segment.model_start_s, segment.model_end_s) == (2.0, 4.0), "the glue as written is kept"
    assert segment.start_s != 2.0 and mapped[0].glue_time == "model-axis"
    assert mapped[1].frame_indices != video[1].frame_indices


def test_a_round_cut_off_by_the_token_budget_says_so(numbered: FrameSource):
    request = AnalysisRequest(question="Q?", rounds=2, frames=8, generation=GenerationSettings(max_new_tokens=30))
    outputs = ["<think>a very long thought that never ends", "<answer>b</answer>"]
    records = run_perception(numbered, request, scripted(outputs, tokens_out=30))
    assert records[0].truncated and not records[1].truncated
    assert cut_off_note(30) in records[0].parse_notes
    assert cut_off_note(30) == "cut off at 30 tokens before its answer was complete: raise Max new tokens"


def test_the_default_generation_budget_is_the_official_2048():
    assert GenerationSettings().max_new_tokens == 2048
