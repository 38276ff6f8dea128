"""The perception loop's parsing and round logic, on scripted model outputs.

The stand-in below replaces only `generate` (the model's text); sampling, parsing and the
round-to-round logic are the real code.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core.analysis.perception import (
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
from core.models.engine import Generation


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
    segments, dropped, notes = parse_glue("[(5, 3), (12, 15), (-1, 2), ('a', 'b'), (1, 2, 3), (2, 4)]", 10.0)
    assert [(s.start_s, s.end_s) for s in segments] == [(0.0, 2.0), (2.0, 4.0)], "a negative start is clipped to 0"
    assert any("starts before 0 s" in note for note in notes)
    reasons = [d.reason for d in dropped]
    assert reasons == [
        "end is not after start",
        "outside the video (0-10.0 s)",
        "not numbers",
        "not a (start, end) pair",
    ]


def test_glue_that_is_not_a_literal_keeps_only_well_formed_pairs_never_prose():
    segments, _, notes = parse_glue("[(10, 20)] (the jump itself lasts 3-4 s)", 120.0)
    assert [(s.start_s, s.end_s) for s in segments] == [(10.0, 20.0)]
    assert "not a literal list" in notes[0]
    segments, _, notes = parse_glue("from 2.5 to 4 and (7-9), then 12 s", 100.0)
    assert segments == [] and notes == ["the glue could not be read"]
    segments, _, notes = parse_glue("__import__('os').system('echo pwned')", 10.0)
    assert segments == [] and notes == ["the glue could not be read"]


def test_glue_of_500_segments_is_capped():
    text = "[" + ", ".join(f"({i * 0.01:.2f}, {i * 0.01 + 0.005:.3f})" for i in range(500)) + "]"
    segments, dropped, notes = parse_glue(text, 10.0)
    assert len(segments) == 16
    assert len(dropped) == 50 and all("more than 16" in d.reason for d in dropped)
    assert any("more dropped segments" in n or "characters" in n for n in notes)


def test_output_with_no_tags_nested_tags_and_unclosed_tags():
    plain = parse_output("The cat jumps.", 10, expect_glue=True)
    assert plain.answer == "The cat jumps." and plain.segments == [] and not plain.complete
    assert any("no <answer> tag" in n for n in plain.notes) and any("no closed <glue> tag" in n for n in plain.notes)
    nested = parse_output(
        "<think>a<think>b</think></think><answer><answer>yes</answer></answer><glue>[(1,2)]", 10, True
    )
    assert nested.answer == "yes" and nested.reasoning == "ab"
    assert nested.segments == [], "the official loop reads only a closed <glue> tag"
    unclosed = parse_output("<think>looking<answer>a red car", 10, False)
    assert unclosed.answer == "a red car" and not unclosed.complete


def test_the_first_glue_counts_as_in_the_official_loop():
    parsed = parse_output("<answer>x</answer><glue>[(1, 2)]</glue> later <glue>[(5, 6)]</glue>", 10, True)
    assert parsed.glue == "[(1, 2)]" and [(s.start_s, s.end_s) for s in parsed.segments] == [(1.0, 2.0)]


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


def test_no_glue_means_the_next_round_is_uniform_and_the_record_says_so(numbered: FrameSource):
    seen: list = []
    request = AnalysisRequest(question="Q?", rounds=2, frames=10)
    records = run_perception(numbered, request, scripted(["<answer>x</answer>", "<answer>y</answer>"], seen))
    assert [r.sampling for r in records] == ["uniform", "uniform"]
    assert seen[0][1].indices == seen[1][1].indices
    assert records[0].next_round == "no usable glue: round 2 samples uniformly" and records[1].next_round is None


def test_rounds_decode_each_frame_once(numbered: FrameSource):
    outputs = [
        "<answer>a</answer><glue>[(2, 4)]</glue>",
        "<answer>b</answer><glue>[(2, 4)]</glue>",
        "<answer>c</answer>",
    ]
    records = run_perception(numbered, AnalysisRequest(question="Q?", frames=32), scripted(outputs, []))
    union = set().union(*(set(r.frame_indices) for r in records))
    assert records[1].sampling == "weighted" and set(records[1].frame_indices) != set(records[0].frame_indices)
    assert max(numbered.decode_counts.values()) == 1, "no frame index came out of the decoder twice"
    assert sum(numbered.decode_counts.values()) == len(union), "the rounds decoded the union of their frames"
    assert records[2].decoded_frames == 0, "round 3 asks for round 2's frames again: all in memory"


@pytest.mark.parametrize("fps", [1.0, 2.0, 4.0])
def test_model_time_maps_to_video_time_for_fps_sampling(numbered: FrameSource, fps: float):
    sample = numbered.sample(numbered.plan(frames=256, fps=fps))
    assert sample.sampled_fps == pytest.approx(fps)
    for i, true_time in enumerate(sample.timestamps):
        mapped = model_time_to_video(i / fps, sample.timestamps, sample.sampled_fps, sample.duration_s)
        assert mapped == pytest.approx(true_time, abs=1e-6)
    assert uniformity_departure(sample) == 0


def test_model_time_maps_to_video_time_for_weighted_sampling(numbered: FrameSource):
    sample = numbered.sample(numbered.plan(frames=20, key_time=[(2.0, 4.0)]))
    for i, true_time in enumerate(sample.timestamps):
        mapped = model_time_to_video(i / sample.sampled_fps, sample.timestamps, sample.sampled_fps, sample.duration_s)
        assert mapped == pytest.approx(true_time, abs=1e-6)
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
