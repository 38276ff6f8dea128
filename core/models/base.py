"""What pages, jobs and the CLI give a model and get back: the request, the result, its rounds.

Pages and jobs never name a model family: they build an `AnalysisRequest`, hand it with a model's
name to `core.analysis.runner.run_analysis` and receive an `AnalysisResult`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from core.errors import InputError
from core.media.sampling import DEFAULT_MAX_PIXELS, MAX_FRAMES, check_frame_count

MAX_QUESTION_CHARS = 4000
MAX_ROUNDS = 5
MAX_REQUEST_FRAMES = MAX_FRAMES

# Called with (round number, text of that round so far) while a model generates.
StreamFn = Callable[[int, str], None]


class GenerationSettings(BaseModel):
    max_new_tokens: int = Field(2048, ge=1, le=8192)  # the official loop's budget
    temperature: float = Field(0.0, ge=0.0, le=2.0)  # 0 = greedy
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    repetition_penalty: float = Field(1.05, ge=0.5, le=2.0)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


class AnalysisRequest(BaseModel):
    """A question about one video and every setting its answer depends on."""

    question: str
    rounds: int = 3
    frames: int = 32
    fps: float | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    generation: GenerationSettings = Field(default_factory=GenerationSettings)
    adapter: str | None = None  # a LoRA adapter's name in the adapters folder; None = the base model
    context: str | None = None  # e.g. the Gemini digest in linked mode
    gemini_model: str | None = None  # None = settings.gemini_model (gemini-flash-latest)

    @field_validator("question")
    @classmethod
    def _question(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise InputError("The question is empty.", "Type what you want to know about the video.")
        if len(value) > MAX_QUESTION_CHARS:
            raise InputError(
                f"The question is {len(value)} characters long; the limit is {MAX_QUESTION_CHARS}.",
                "Ask a shorter question.",
            )
        return value

    @field_validator("rounds")
    @classmethod
    def _rounds(cls, value: int) -> int:
        if not 1 <= value <= MAX_ROUNDS:
            raise InputError(f"Rounds must be between 1 and {MAX_ROUNDS}; got {value}.")
        return value

    @field_validator("frames")
    @classmethod
    def _frames(cls, value: int) -> int:
        return check_frame_count(value)

    @field_validator("fps")
    @classmethod
    def _fps(cls, value: float | None) -> float | None:
        if value is not None and not 0 < value <= 30:
            raise InputError(f"fps must be above 0 and at most 30; got {value}.")
        return value

    @field_validator("max_pixels")
    @classmethod
    def _pixels(cls, value: int) -> int:
        low, high = 4 * 28 * 28, 16384 * 28 * 28
        if not low <= value <= high:
            raise InputError(f"Max pixels per frame must be between {low} and {high}; got {value}.")
        return value


class Segment(BaseModel):
    """A time span of the video, in the video's seconds."""

    start_s: float
    end_s: float
    model_start_s: float | None = None  # the numbers as the model wrote them (its glue)
    model_end_s: float | None = None


class DroppedSegment(BaseModel):
    text: str
    reason: str


class RoundRecord(BaseModel):
    """One look at the video: what the model was shown and asked, and what it said."""

    round: int
    prompt: str
    raw_output: str
    reasoning: str | None = None
    answer: str | None = None
    glue: str | None = None  # the first <glue> as the model wrote it
    glue_time: Literal["video", "model-axis"] = "video"  # how the glue's numbers were read
    segments: list[Segment] = Field(default_factory=list)  # the glue's periods, video seconds (next round)
    dropped_segments: list[DroppedSegment] = Field(default_factory=list)
    parse_notes: list[str] = Field(default_factory=list)
    next_round: str | None = None  # what the next round does with this round's glue
    truncated: bool = False  # cut off by max_new_tokens before its tags closed
    sampling: str
    sampled_segments: list[Segment] = Field(default_factory=list)  # periods this round's frames favour
    frame_timestamps: list[float]
    frame_indices: list[int]
    nframes: int = 0  # the frame count the official sampler asked for
    sampled_fps: float
    second_per_grid_t: float | None = None
    uniformity_departure_s: float = 0.0  # largest distance of a frame from the uniform grid
    decoded_frames: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    seconds: float = 0.0


class ServiceCall(BaseModel):
    """How one request to a remote model went: kept in results so costs and delays can be traced."""

    what: str
    attempts: int = 0
    seconds: float = 0.0
    waited_s: float = 0.0  # time spent in backoff between attempts


class GeminiUsage(BaseModel):
    """What the Gemini calls behind a result cost and which way the video went."""

    model: str
    path_taken: Literal["inline", "upload", "youtube"] | None = None
    file_name: str | None = None
    reused_upload: bool = False
    calls: list[ServiceCall] = Field(default_factory=list)
    prompt_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0

    @property
    def attempts(self) -> int:
        return sum(call.attempts for call in self.calls)


class LinkedComparison(BaseModel):
    """Linked mode: the local model's and Gemini's answers side by side. Never averaged."""

    local_answer: str
    gemini_answer: str
    agreement: Literal["agree", "disagree", "partly", "unclear"]
    method: str  # how agreement was judged (exact short answers, or Gemini as judge)
    explanation: str = ""
    local_segments: list[Segment] = Field(default_factory=list)
    gemini_segments: list[Segment] = Field(default_factory=list)
    shared_seconds: float = 0.0  # time cited by both


class ModelInfo(BaseModel):
    backend: str
    name: str
    source: str | None = None
    adapter: str | None = None
    adapter_config_hash: str | None = None
    device: str | None = None
    dtype: str | None = None
    load_seconds: float | None = None


class AnalysisResult(BaseModel):
    question: str
    answer: str
    model: ModelInfo
    request: AnalysisRequest
    media_sha256: str | None = None
    rounds: list[RoundRecord] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    seconds: float = 0.0
    gemini: GeminiUsage | None = None  # the Gemini calls behind this result, if any
    gemini_rounds: list[RoundRecord] = Field(default_factory=list)  # linked mode: Gemini's own answer
    linked: LinkedComparison | None = None
