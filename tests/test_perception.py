"""The perception loop's parsing and round logic, on scripted model outputs.

The stand-in below replaces only `generate` (the model's text); sampling, parsing and the
round-to-round logic are the real code.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core.analysis.perception import (
    Generation,
    model_time_to_video,
    parse_glue,
    parse_output,
    run_perception,
    uniformity_departure,
)
from core.config import Settings
from core.errors import InputError
from core.media.frames import FrameSource
from core.media.pipeline import prepare_media
from core.models.base import AnalysisRequest


@pytest.fixture
def numbered(settings: Settings, clips) -> FrameSource:
    shutil.copyfile(clips["numbered"], settings.media_dir / "numbered.mp4")
    return FrameSource(Path(prepare_media("numbered.mp4", settings).sanitized.path))


def test_glue_literal_list_of_pairs():
    segments, dropped, notes = parse_glue("[(1.5, 3.0), (6, 8.25)]", 10.0)
    assert [(s.start_s, s.end_s) for s in segments] == [(1.5, 3.0), (6.0, 8.25)]
    assert dropped == [] and notes == []


def test_glue_single_pair_and_json_style():
    assert [(s.start_s, s.end_s) for s in parse_glue("(2, 4)", 10)[0]] == [(2.0, 4.0)]
    assert [(s.start_s, s.end_s) for s in parse_glue("[[2, 4], [5, 6]]", 10)[0]] == [(2.0, 4.0), (5.0, 6.0)]


def test_glue_drops_inverted_out_of_range_and_malformed_with_reasons():
    segments, dropped, _ = parse_glue("[(5, 3), (12, 15), (-1, 2), ('a', 'b'), (1, 2, 3), (2, 4)]", 10.0)
    assert [(s.start_s, s.end_s) for s in segments] == [(2.0, 4.0)]
    reasons = [d.reason for d in dropped]
    assert reasons == [
        "end is not after start",
        "outside the video (0-10.0 s)",
        "outside the video (0-10.0 s)",
        "not numbers",
        "not a (start, end) pair",
    ]


def test_glue_that_is_not_a_literal_is_read_as_number_pairs_never_evaluated():
    segments, _, notes = parse_glue("from 2.5 to 4 and (7-9)", 10.0)
    assert [(s.start_s, s.end_s) for s in segments] == [(2.5, 4.0), (7.0, 9.0)]
    assert "not a literal list" in notes[0]
    segments, _, notes = parse_glue("__import__('os').system('echo pwned')", 10.0)
    assert segments == [] and notes == ["glue unreadable"]


def test_glue_of_500_segments_is_capped():
    text = "[" + ", ".join(f"({i * 0.01:.2f}, {i * 0.01 + 0.005:.3f})" for i in range(500)) + "]"
    segments, dropped, notes = parse_glue(text, 10.0)
    assert len(segments) == 16
    assert len(dropped) == 50 and all("more than 16" in d.reason for d in dropped)
    assert any("more dropped segments" in n or "characters" in n for n in notes)


def test_output_with_no_tags_nested_tags_and_unclosed_tags():
    plain = parse_output("The cat jumps.", 10, expect_glue=True)
    assert plain.answer == "The cat jumps." and plain.segments == []
    assert any("no <answer> tag" in n for n in plain.notes) and any("no <glue> tag" in n for n in plain.notes)
    nested = parse_output(
        "<think>a<think>b</think></think><answer><answer>yes</answer></answer><glue>[(1,2)]", 10, True
    )
    assert (nested.answer == "yes" and nested.reasoning == "b") or nested.reasoning.endswith("b")
    assert [(s.start_s, s.end_s) for s in nested.segments] == [(1.0, 2.0)]
    unclosed = parse_output("<think>looking<answer>a red car", 10, False)
    assert unclosed.answer == "a red car"


def scripted(outputs: list[str], seen: list) -> callable:
    def generate(sample, prompt, number):
        seen.append((number, sample, prompt))
        return Generation(outputs[number - 1], tokens_in=100, tokens_out=10)

    return generate


def test_three_rounds_follow_the_glue(numbered: FrameSource):
    outputs = [
        "<think>dog near the start</think><answer>a dog</answer><glue>[(2.0, 4.0)]</glue>",
        "<think>closer</think><answer>a brown dog</answer><glue>[(2.5, 3.5)]</glue>",
        "<think>sure</think><answer>A brown dog runs.</answer>",
    ]
    seen: list = []
    request = AnalysisRequest(question="What animal?", rounds=3, frames=20)
    records = run_perception(numbered, request, scripted(outputs, seen))
    assert [r.round for r in records] == [1, 2, 3]
    assert records[-1].answer == "A brown dog runs."
    assert [r.sampling for r in records] == ["uniform", "weighted", "weighted"]
    assert "<glue>" in seen[0][2] and "<glue>" in seen[1][2] and "<glue>" not in seen[2][2]
    round2 = seen[1][1]
    inside = [t for t in round2.timestamps if 2.0 <= t <= 4.0]
    assert len(inside) > sum(2.0 <= t <= 4.0 for t in seen[0][1].timestamps)
    assert records[0].segments[0].model_start_s == 2.0
    assert records[1].uniformity_departure_s > records[0].uniformity_departure_s


def test_no_glue_means_the_next_round_is_uniform(numbered: FrameSource):
    seen: list = []
    request = AnalysisRequest(question="Q?", rounds=2, frames=10)
    records = run_perception(numbered, request, scripted(["<answer>x</answer>", "<answer>y</answer>"], seen))
    assert [r.sampling for r in records] == ["uniform", "uniform"]
    assert seen[0][1].indices == seen[1][1].indices


def test_three_rounds_decode_little_more_than_one(numbered: FrameSource):
    outputs = [
        "<answer>a</answer><glue>[(2, 4)]</glue>",
        "<answer>b</answer><glue>[(2, 4)]</glue>",
        "<answer>c</answer>",
    ]
    records = run_perception(numbered, AnalysisRequest(question="Q?", frames=32), scripted(outputs, []))
    first = records[0].decoded_frames
    assert first > 0 and records[1].decoded_frames == 0 and records[2].decoded_frames == 0
    assert sum(r.decoded_frames for r in records) <= 1.2 * first
    assert records[1].sampling == "weighted" and set(records[1].frame_indices) != set(records[0].frame_indices)


@pytest.mark.parametrize("fps", [1.0, 2.0, 4.0])
def test_model_time_maps_to_video_time_for_fps_sampling(numbered: FrameSource, fps: float):
    sample = numbered.sample_fps(fps, min_frames=1, max_frames=256)
    assert sample.sampled_fps == pytest.approx(fps)
    for i, true_time in enumerate(sample.timestamps):
        assert model_time_to_video(i / fps, sample) == pytest.approx(true_time, abs=1e-6)
    assert uniformity_departure(sample) < 1 / 25 + 1e-9


def test_model_time_maps_to_video_time_for_weighted_sampling(numbered: FrameSource):
    sample = numbered.sample_weighted(20, [(2.0, 4.0)])
    for i, true_time in enumerate(sample.timestamps):
        assert model_time_to_video(i / sample.sampled_fps, sample) == pytest.approx(true_time, abs=1e-6)
    assert uniformity_departure(sample) > 0.1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("question", "   ", "The question is empty"),
        ("question", "x" * 10_000, "10000 characters long"),
        ("frames", 0, "Frames must be between 1 and 256"),
        ("frames", 10_000, "Frames must be between 1 and 256"),
        ("rounds", 0, "Rounds must be between 1 and 5"),
    ],
)
def test_bad_requests_are_refused_clearly(field, value, message):
    kwargs = {"question": "What happens?", field: value}
    with pytest.raises(InputError, match=message):
        AnalysisRequest(**kwargs)
