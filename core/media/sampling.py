"""Which frames a VideoChat-R1.5 round shows: the authors' sampler, index for index.

Read from OpenGVLab/VideoChat-R1 at commit 67d2d75 (`Videochat-R1.5/src_eval/my_vision_process.py`:
`smart_nframes`, `_read_video_decord`, `sample_frames`; the loop in `src_eval/eval_*.py` and the
model card's README). With T the video's frame count and `video_fps` its average rate:

- **How many** (`smart_nframes`): a given count is rounded to an even number (`round(n / 2) * 2`,
  Python's half-to-even); with a sampling rate instead, `T / video_fps * fps` frames (default 2 fps),
  clamped to [ceil-even(min_frames=4), floor-even(max_frames)] (max_frames defaults to
  min(512, T)), then to T, then floored to even. A count outside [2, T] raises.
- **Uniform** (no glue): `torch.linspace(0, T - 1, n).round()`: first and last frame included,
  evenly spaced, rounded half to even in float32 as torch computes it.
- **Weighted** (glue of the previous round, `sample_frames(key_time, T - 1, n, 1.5, video_fps)`):
  note the total passed is T - 1. Each (start, end) in seconds becomes the frame range
  (int(start * fps), min(int(end * fps), T - 2)), kept when start <= end (reversed and
  past-the-end segments drop out). K = the summed lengths of the ranges (overlaps count twice);
  key frames = round(n * 1.5K / (1.5K + (T - 1 - K))); each range gets
  max(1, round(key * len / K)) frames by `np.linspace(a, b, m, dtype=int)` (truncating); the other
  n - key frames are spread by `np.linspace` over the frames 0..T-2 outside every range; the
  result is `sorted(set(...))`, so its count can differ from n. Any error -> uniform.
- **The processor's rate**: `n / T * video_fps`, with n the count asked for (even when the set
  above holds fewer frames).

Deliberate differences, each recorded in the plan's notes when it applies:
- A negative start is clipped to 0 (the official int(start * fps) is negative, and a negative
  frame index wraps to the end of the video there).
- Where the official code raises (more frames asked than the video has, or fewer than 2), all
  frames are given, an odd count made even by repeating the last frame (the processor would pad
  it the same way; here it is on the record). A video of one frame shows it twice.
- The uniform rule uses numpy in float32 when torch is not installed (it is wherever the local
  model runs); in rare half-way cases that can move a frame by one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from core.errors import InputError

FRAME_FACTOR = 2
MAX_FRAMES = 256  # frames one round may show, for every entry point (analysis, `vchat frames`, jobs)
DEFAULT_MAX_PIXELS = 256 * 28 * 28
DEFAULT_MIN_PIXELS = 4 * 28 * 28
DEFAULT_FPS = 2.0
FPS_MIN_FRAMES = 4
FPS_MAX_FRAMES = 512
KEY_RATIO = 1.5


def check_frame_count(n: int) -> int:
    """`n` when a round may show that many frames, else InputError (the one limit, said one way)."""
    if not 1 <= n <= MAX_FRAMES:
        raise InputError(f"Frames must be between 1 and {MAX_FRAMES}; got {n}.")
    return int(n)


@dataclass(frozen=True)
class FramePlan:
    """The frames one round shows, and how they were chosen."""

    indices: list[int]  # in presentation order; the last may repeat to make an even count
    nframes: int  # the count the official rule asked for
    total_frames: int  # T
    video_fps: float
    sampling: str  # "uniform", "fps=2", "weighted"
    key_ranges: list[tuple[int, int]] = field(default_factory=list)  # frame ranges the glue named
    notes: list[str] = field(default_factory=list)

    @property
    def sample_fps(self) -> float:
        """The rate the processor is given (official: n / T * video_fps)."""
        return self.nframes / max(self.total_frames, 1e-6) * self.video_fps


def _round_even(value: float) -> int:
    return round(value / FRAME_FACTOR) * FRAME_FACTOR


def _ceil_even(value: float) -> int:
    return math.ceil(value / FRAME_FACTOR) * FRAME_FACTOR


def _floor_even(value: float) -> int:
    return math.floor(value / FRAME_FACTOR) * FRAME_FACTOR


def official_nframes(
    total_frames: int,
    video_fps: float,
    frames: int | None = None,
    fps: float | None = None,
    max_frames: int | None = None,
) -> int:
    """`smart_nframes`: the count asked for, before the [2, T] check (which the caller handles)."""
    if fps is None and frames is not None:
        return _round_even(frames)
    rate = fps if fps is not None else DEFAULT_FPS
    low = _ceil_even(FPS_MIN_FRAMES)
    high = _floor_even(max_frames if max_frames is not None else min(FPS_MAX_FRAMES, total_frames))
    wanted = total_frames / video_fps * rate if video_fps > 0 else low
    return _floor_even(min(min(max(wanted, low), high), total_frames))


def uniform_indices(total_frames: int, count: int) -> list[int]:
    """`torch.linspace(0, T - 1, n).round()` as a list of ints."""
    if count <= 1:
        return [0] * count
    try:
        import torch
    except ImportError:
        return _linspace_float32(total_frames - 1, count)
    return [int(i) for i in torch.linspace(0, total_frames - 1, count).round().long().tolist()]


def _linspace_float32(end: int, count: int) -> list[int]:
    """torch's float32 linspace (start + step * i up to the middle, end - step * (n - 1 - i) after),
    rounded half to even."""
    start, stop = np.float32(0), np.float32(end)
    step = np.float32((stop - start) / np.float32(count - 1))
    half = count // 2
    values = [
        start + step * np.float32(i) if i < half else stop - step * np.float32(count - 1 - i) for i in range(count)
    ]
    return [int(np.round(np.float32(v))) for v in values]


def key_frame_ranges(key_time: Sequence[tuple[float, float]], last: int, fps: float) -> list[tuple[int, int]]:
    """Each (start, end) in seconds as a frame range (start frame, end frame), as `sample_frames` makes
    them with total_frames = `last` (= T - 1): the end capped at last - 1, reversed ones dropped.
    Negative starts are clipped to 0 (a deliberate difference)."""
    ranges = []
    for start_s, end_s in key_time:
        start = max(0, int(start_s * fps))
        end = min(int(end_s * fps), last - 1)
        if start <= end:
            ranges.append((start, end))
    return ranges


def key_time_indices(ranges: list[tuple[int, int]], last: int, count: int) -> list[int]:
    """`sample_frames`' choice of frames for key ranges (`last` = T - 1, the total it is given)."""
    key_count = sum(end - start + 1 for start, end in ranges)
    other_count = last - key_count
    weighted = key_count * KEY_RATIO + other_count
    key_samples_total = round(count * (key_count * KEY_RATIO) / weighted)
    rest = count - key_samples_total
    chosen: list[int] = []
    for start, end in ranges:
        per_range = max(1, round(key_samples_total * (end - start + 1) / key_count))
        chosen.extend(int(i) for i in np.linspace(start, end, num=per_range, dtype=int))
    inside: set[int] = set()
    for start, end in ranges:
        inside.update(range(start, end + 1))
    outside = [i for i in range(last) if i not in inside]
    if rest > 0 and outside:
        picks = np.linspace(0, len(outside) - 1, num=rest, dtype=int)
        chosen.extend(outside[int(i)] for i in picks)
    return sorted(set(chosen))


def plan_frames(
    total_frames: int,
    video_fps: float,
    frames: int | None = None,
    fps: float | None = None,
    key_time: Sequence[tuple[float, float]] | None = None,
) -> FramePlan:
    """The frames a round shows: `frames` (a count) or `fps` (a rate, at most `frames`), uniform, or
    weighted 1.5x inside `key_time` (seconds of the video) when the previous round gave glue."""
    notes: list[str] = []
    if total_frames < 1:
        raise ValueError("a video without frames cannot be sampled")
    nframes = official_nframes(total_frames, video_fps, frames, fps, max_frames=frames if fps is not None else None)
    sampling = f"fps={fps:g}" if fps is not None else "uniform"
    outside_official = not FRAME_FACTOR <= nframes <= total_frames  # where the official code raises
    if nframes > total_frames:
        notes.append(
            f"{nframes} frames were asked for but the video has {total_frames}: all of them are shown "
            "(the official sampler refuses this)"
        )
        nframes = total_frames
    if nframes < FRAME_FACTOR:
        nframes = min(FRAME_FACTOR, total_frames)
        if frames is not None and frames < FRAME_FACTOR:
            notes.append(f"{frames} frame asked for: frames go to the model in pairs, so {FRAME_FACTOR} are shown")
    ranges: list[tuple[int, int]] = []
    indices = uniform_indices(total_frames, nframes)
    if key_time is not None:  # a glue was read, even one whose periods all fall outside the video
        ranges = key_frame_ranges(key_time, total_frames - 1, video_fps)
        if any(start_s < 0 for start_s, _ in key_time):
            notes.append("a segment starting before 0 s was clipped to 0 s")
        if not ranges:
            notes.append("no period of the glue lies inside the video: frames are spread over the whole video")
        try:
            indices = key_time_indices(ranges, total_frames - 1, nframes)
            sampling = "weighted" if ranges else sampling
        except (ZeroDivisionError, ValueError) as exc:  # the official code falls back to uniform too
            notes.append(f"weighted sampling failed ({type(exc).__name__}); frames are uniform")
            ranges = []
    if outside_official and len(indices) % FRAME_FACTOR:  # as the processor would pad it, but on the record
        indices = [*indices, indices[-1]]
        notes.append(
            "an odd number of frames: the last one is shown twice (frames go to the model in pairs)"
            if total_frames > 1
            else "the video has a single frame: it is shown twice (frames go to the model in pairs)"
        )
    return FramePlan(indices, nframes, total_frames, video_fps, sampling, ranges, notes)
