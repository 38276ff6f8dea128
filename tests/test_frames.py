"""Frames carry their true timestamps; exactly the planned frames are decoded, each once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core.config import Settings
from core.errors import InputError
from core.media.frames import FrameSource, frame_source, smart_resize
from core.media.pipeline import prepare_media
from core.media.sampling import uniform_indices
from tests.media_factory import read_frame_number

FPS = 25


@pytest.fixture
def numbered(settings: Settings, clips) -> FrameSource:
    """The sanitized numbered clip (250 frames at 25 fps, frame k shows k in binary)."""
    shutil.copyfile(clips["numbered"], settings.media_dir / "numbered.mp4")
    asset = prepare_media("numbered.mp4", settings)
    return FrameSource(Path(asset.sanitized.path))


def _check_true_time(sample) -> None:
    for frame, index, seconds in zip(sample.frames, sample.indices, sample.timestamps, strict=True):
        assert read_frame_number(frame) == index, "the picture must be the frame the index names"
        assert seconds == pytest.approx(index / FPS, abs=1e-6), "timestamp = frame number / fps"


def test_uniform_sample_frames_show_the_frames_their_timestamps_name(numbered: FrameSource):
    sample = numbered.sample_uniform(10)
    assert sample.indices == uniform_indices(250, 10) and sample.indices[0] == 0 and sample.indices[-1] == 249
    _check_true_time(sample)
    assert sample.total_frames == 250 and sample.video_fps == pytest.approx(FPS)
    assert sample.duration_s == pytest.approx(10.0)


@pytest.mark.parametrize("n", [4, 40, 248])
def test_seek_and_sequential_plans_give_the_same_true_frames(settings: Settings, clips, n):
    shutil.copyfile(clips["numbered"], settings.media_dir / "numbered.mp4")
    source = FrameSource(Path(prepare_media("numbered.mp4", settings).sanitized.path))
    sample = source.sample_uniform(n)
    _check_true_time(sample)
    sequential, seek = source.plan_costs(sample.indices)
    assert sample.plan == ("sequential" if sequential <= seek else "seek")
    assert sample.decoded_frames <= min(sequential, seek), "the decoder does no more work than the plan costed"


def test_both_plans_are_exercised(numbered: FrameSource):
    few = numbered.plan_costs(uniform_indices(250, 4))
    many = numbered.plan_costs(uniform_indices(250, 200))
    assert few[1] < few[0], "4 frames from 250: seeking costs less"
    assert many[0] < many[1], "200 frames from 250: one sequential pass costs less"


def test_the_same_request_twice_decodes_once(numbered: FrameSource):
    first = numbered.sample_uniform(12)
    decoded = numbered.frames_decoded_total
    second = numbered.sample_uniform(12)
    assert first.new_frames == 12 and first.decoded_frames >= 12
    assert second.decoded_frames == 0 and second.new_frames == 0
    assert numbered.frames_decoded_total == decoded
    assert second.plan == "memory" and (second.frames == first.frames).all()


def test_a_later_round_decodes_only_frames_not_seen_before(numbered: FrameSource):
    first = numbered.sample_uniform(16)
    second = numbered.sample(numbered.plan(frames=16, key_time=[(2.0, 5.0)]))
    new = set(second.indices) - set(first.indices)
    assert second.sampling == "weighted" and new
    assert second.new_frames == len(new)
    assert max(numbered.decode_counts.values()) == 1, "no frame came out of the decoder twice"
    _check_true_time(second)


def test_the_shared_source_keeps_frames_across_callers(settings: Settings, clips):
    shutil.copyfile(clips["numbered"], settings.media_dir / "numbered.mp4")
    asset = prepare_media("numbered.mp4", settings)
    asset.frames(settings).sample_uniform(8)
    again = frame_source(Path(asset.sanitized.path)).sample_uniform(8)
    assert again.decoded_frames == 0


def test_frames_fit_the_pixel_budget_in_multiples_of_28(numbered: FrameSource):
    sample = numbered.sample_uniform(4, max_pixels=128 * 28 * 28)
    _, height, width, channels = sample.frames.shape
    assert height % 28 == 0 and width % 28 == 0 and channels == 3
    assert height * width <= 128 * 28 * 28
    assert sample.frames.dtype.name == "uint8"


@pytest.mark.parametrize(("h", "w"), [(720, 1280), (1280, 720), (2750, 1834), (100, 60), (4000, 30)])
def test_smart_resize(h, w):
    nh, nw = smart_resize(h, w, max_pixels=256 * 28 * 28)
    assert nh % 28 == 0 and nw % 28 == 0
    assert 4 * 28 * 28 <= nh * nw <= 256 * 28 * 28
    if max(h, w) / min(h, w) < 20:
        assert nw / nh == pytest.approx(w / h, rel=0.25)


def test_fps_sampling_follows_the_official_count(numbered: FrameSource):
    assert len(numbered.sample(numbered.plan(frames=256, fps=2.0)).indices) == 20
    assert len(numbered.sample(numbered.plan(frames=256, fps=0.1)).indices) == 4, "at least 4 frames"
    assert len(numbered.sample(numbered.plan(frames=32, fps=10.0)).indices) == 32, "at most the frame budget"


def test_asking_for_more_frames_than_the_video_has_gives_each_once_and_says_so(numbered: FrameSource):
    sample = numbered.sample_uniform(256)  # the most a round may show; the video has 250
    assert sample.indices == list(range(250))
    assert any("the video has 250" in note for note in sample.notes)


def test_bad_counts_are_refused(numbered: FrameSource):
    with pytest.raises(InputError, match="between 1 and"):
        numbered.sample_uniform(0)


def test_video_metadata_for_the_processor(numbered: FrameSource):
    sample = numbered.sample_uniform(8)
    meta = sample.video_metadata()
    assert meta["total_num_frames"] == 250 and meta["frames_indices"] == sample.indices
    assert sample.sampled_fps == pytest.approx(8 / 250 * FPS), "the official n / T * video fps"
    processor_rate = len(meta["frames_indices"]) / meta["total_num_frames"] * meta["fps"]
    assert processor_rate == pytest.approx(sample.sampled_fps)


def test_seeking_decodes_on_within_a_keyframe_span_instead_of_seeking_again(numbered: FrameSource):
    wanted = [60, 70, 80, 160, 170]  # keyframes every 50 frames: two spans, one seek each
    sequential, seek = numbered.plan_costs(wanted)
    assert seek < sequential
    sample = numbered.sample_indices(wanted)
    assert sample.decoded_frames <= (80 - 50 + 1) + (170 - 150 + 1)
    assert sample.indices == wanted
    _check_true_time(sample)
    assert numbered.sample_indices(wanted).decoded_frames == 0
