"""Reading a check's answer: the band, the rationale and the claims in the asked-for form, from the
shapes models really give (tags, bold, lowercase, a "none" band, claims with missing parts); an
answer without a band line cannot be read, and says so."""

from __future__ import annotations

import pytest

from core.analysis.factcheck.checks import applicable, question, read_answer


@pytest.mark.parametrize(
    ("text", "band"),
    [
        ("BAND: strong\nRATIONALE: A splice at 3.0 s.", "strong"),
        ("band: Very Strong\nrationale: faces warp at 12 s", "very strong"),
        ("**BAND:** moderate\n**RATIONALE:** lighting changes at 4-5 s.", "moderate"),
        ("<think>hmm</think>\nBAND = none\nRATIONALE: nothing seen.", "no"),
        ("- Band: weak\n- Rationale: maybe a cut at 2 s", "weak"),
        ("BAND: no\nRATIONALE: nothing", "no"),
    ],
)
def test_the_band_is_read_from_the_shapes_models_write(text: str, band: str):
    read = read_answer(text)
    assert read.band == band and read.rationale


@pytest.mark.parametrize(
    "text",
    [
        "",
        "The video looks authentic to me.",
        "BAND: possibly\nRATIONALE: unsure",  # not one of the bands
        "BANDWIDTH: strong",
        "ra9#k2 tokens of a random model",
    ],
)
def test_an_answer_without_a_band_cannot_be_read(text: str):
    read = read_answer(text)
    assert read.band is None and read.notes == ["The answer has no BAND line in the asked-for form."]


def test_claims_are_read_line_by_line_and_a_broken_one_is_said():
    text = """BAND: weak
RATIONALE: The captions match the pictures, except at 8 s.
CLAIM: 2.5 | the narrator | The bridge collapsed on Monday | yes | a bridge standing | bridge collapse Monday
CLAIM: 8 s | on-screen text | 500 people marched | Yes. | a small group of about 30 | march 500 people city
CLAIM: only one part
"""
    read = read_answer(text)
    assert read.band == "weak" and read.rationale == "The captions match the pictures, except at 8 s."
    first, second = read.claims
    assert (first.start_s, first.who, first.claim, first.checkable) == (
        2.5,
        "the narrator",
        "The bridge collapsed on Monday",
        True,
    )
    assert first.video_shows == "a bridge standing" and first.search == "bridge collapse Monday"
    assert (second.start_s, second.checkable, second.video_shows) == (8.0, True, "a small group of about 30")
    assert read.notes == ["A CLAIM line could not be read: only one part"]


def test_the_audio_check_is_not_applicable_where_nothing_can_be_heard():
    assert applicable("audio", hears_audio=False, has_audio=True).reason == (
        "not applicable: the local model has no audio input"
    )
    assert applicable("audio", hears_audio=True, has_audio=False).reason == (
        "not applicable: the original has no audio track"
    )
    assert applicable("audio", hears_audio=True, has_audio=True) is None
    assert applicable("visual", hears_audio=False, has_audio=False) is None


def test_the_credibility_question_says_what_the_engine_can_perceive():
    assert "you cannot hear it" in question("credibility", hears_audio=False)
    assert "speech and on-screen text" in question("credibility", hears_audio=True)
    for check in ("visual", "credibility", "audio"):
        assert "BAND:" in question(check, hears_audio=True)  # type: ignore[arg-type]
