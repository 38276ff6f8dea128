"""Frames: sample a video into frames that carry their true presentation time.

A `FrameSource` wraps one (sanitized) video. It builds a frame index once (every
frame's presentation timestamp and keyframe flag, read by demuxing packets, no decoding)
and keeps the frames it has decoded, so later requests (the next perception round, the
same request again) are served from memory and only frames never seen are decoded.
For the frames it must decode it picks the cheaper plan: one sequential pass from the
start, or a seek to the keyframe before each wanted frame, counting frames to decode.

Sampling: uniform (N frames at the centres of N equal spans of time), by fps with
min/max counts, and the R1.5 weighted sampling (1.5x frame density inside given time
segments, same total count). Frames are resized to a pixel budget in multiples of 28
(the Qwen2.5-VL patch grid).
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from core.errors import InputError
from core.media.storage import atomic_write_json, read_json

PATCH_FACTOR = 28
DEFAULT_MAX_PIXELS = 256 * 28 * 28
DEFAULT_MIN_PIXELS = 4 * 28 * 28
SEGMENT_DENSITY = 1.5
# A seek costs about as much as decoding this many frames (demuxer flush and re-sync).
SEEK_COST_FRAMES = 8
MAX_FRAMES = 1024


def smart_resize(
    height: int,
    width: int,
    factor: int = PATCH_FACTOR,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> tuple[int, int]:
    """(height, width) in multiples of `factor`, close to the input's aspect ratio, with
    an area within [min_pixels, max_pixels] (the Qwen2.5-VL resizing rule)."""
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


# --- choosing times ------------------------------------------------------------------------


def merge_segments(segments: Sequence[tuple[float, float]], duration: float) -> list[tuple[float, float]]:
    """Clip segments to [0, duration], drop empty ones and merge overlaps."""
    clipped = sorted((max(0.0, float(s)), min(duration, float(e))) for s, e in segments)
    merged: list[tuple[float, float]] = []
    for start, end in clipped:
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def uniform_times(n: int, duration: float) -> list[float]:
    """Centres of `n` equal spans of [0, duration]."""
    return [(i + 0.5) * duration / n for i in range(n)]


def weighted_times(
    n: int, duration: float, segments: Sequence[tuple[float, float]], density: float = SEGMENT_DENSITY
) -> list[float]:
    """`n` times whose density inside `segments` is `density` times that outside.

    Inverse-CDF sampling of a piecewise-constant density at the quantiles (i + 0.5) / n.
    """
    spans = merge_segments(segments, duration)
    if not spans:
        return uniform_times(n, duration)
    pieces: list[tuple[float, float, float]] = []  # (start, end, weight per second)
    cursor = 0.0
    for start, end in spans:
        if start > cursor:
            pieces.append((cursor, start, 1.0))
        pieces.append((start, end, density))
        cursor = end
    if cursor < duration:
        pieces.append((cursor, duration, 1.0))
    total = sum((e - s) * w for s, e, w in pieces)
    times = []
    piece_index, mass_before = 0, 0.0
    for i in range(n):
        target = (i + 0.5) / n * total
        while piece_index < len(pieces) - 1:
            s, e, w = pieces[piece_index]
            if mass_before + (e - s) * w >= target:
                break
            mass_before += (e - s) * w
            piece_index += 1
        s, e, w = pieces[piece_index]
        times.append(min(e, s + (target - mass_before) / w))
    return times


def expected_share_inside(
    duration: float, segments: Sequence[tuple[float, float]], density: float = SEGMENT_DENSITY
) -> float:
    inside = sum(e - s for s, e in merge_segments(segments, duration))
    return density * inside / (density * inside + (duration - inside))


# --- the frame index -------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameIndex:
    """Every frame's presentation time (stream ticks and seconds) and keyframe flag."""

    pts: list[int]
    keyframe: list[bool]
    time_base: float
    start_s: float
    width: int
    height: int

    @property
    def count(self) -> int:
        return len(self.pts)

    def seconds(self, i: int) -> float:
        return self.pts[i] * self.time_base - self.start_s

    @property
    def duration_s(self) -> float:
        if not self.pts:
            return 0.0
        step = (self.pts[-1] - self.pts[0]) / max(1, self.count - 1) * self.time_base
        return self.seconds(self.count - 1) + step

    @property
    def fps(self) -> float:
        return self.count / self.duration_s if self.duration_s > 0 else 0.0

    def nearest(self, seconds: float) -> int:
        ticks = (seconds + self.start_s) / self.time_base
        i = bisect.bisect_left(self.pts, ticks)
        if i == 0:
            return 0
        if i >= self.count:
            return self.count - 1
        return i if self.pts[i] - ticks < ticks - self.pts[i - 1] else i - 1

    def keyframe_before(self, i: int) -> int:
        while i > 0 and not self.keyframe[i]:
            i -= 1
        return i


def build_frame_index(path: Path) -> FrameIndex:
    """Demux (without decoding) the first video stream and list its frames in time order."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        entries = [(p.pts, p.is_keyframe) for p in container.demux(stream) if p.pts is not None and p.size]
        time_base = float(stream.time_base)
        width, height = stream.codec_context.width, stream.codec_context.height
        start = stream.start_time if stream.start_time is not None else (min(e[0] for e in entries) if entries else 0)
    entries.sort()
    return FrameIndex(
        pts=[pts for pts, _ in entries],
        keyframe=[key for _, key in entries] if entries else [],
        time_base=time_base,
        start_s=start * time_base,
        width=width,
        height=height,
    )


def load_frame_index(path: Path) -> FrameIndex:
    """The frame index of `path`, read from `<path>.frames.json` when present."""
    cache = path.with_name(path.name + ".frames.json")
    stat = path.stat()
    stored = read_json(cache)
    fields = ("pts", "keyframe", "time_base", "start_s", "width", "height")
    if (
        stored
        and stored.get("size") == stat.st_size
        and stored.get("mtime_ns") == stat.st_mtime_ns
        and all(f in stored for f in fields)
    ):
        return FrameIndex(*(stored[f] for f in fields))
    index = build_frame_index(path)
    atomic_write_json(
        cache,
        {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, **{f: getattr(index, f) for f in fields}},
        indent=None,
    )
    return index


# --- the sample ------------------------------------------------------------------------------


@dataclass
class FrameSample:
    """Frames (N, H, W, 3 uint8 RGB) with the true time and index of each."""

    frames: np.ndarray
    timestamps: list[float]
    indices: list[int]
    video_fps: float
    total_frames: int
    duration_s: float
    sampling: str
    segments: list[tuple[float, float]] = field(default_factory=list)
    # Frames the decoder produced for this request (0 when all came from memory), and how
    # many of the returned frames were not in memory before.
    decoded_frames: int = 0
    new_frames: int = 0
    plan: str = "memory"
    seconds: float = 0.0

    @property
    def sampled_fps(self) -> float:
        """Frames per second of video time, as sampled (for the model's time positions)."""
        return len(self.indices) / self.duration_s if self.duration_s > 0 else 0.0

    def video_metadata(self) -> dict[str, object]:
        """The sampled frames' real fps and indices, in the form transformers' processors take."""
        return {
            "fps": self.video_fps,
            "total_num_frames": self.total_frames,
            "duration": self.duration_s,
            "frames_indices": list(self.indices),
        }

    def describe(self) -> dict[str, object]:
        return {
            "sampling": self.sampling,
            "count": len(self.indices),
            "timestamps": [round(t, 3) for t in self.timestamps],
            "indices": self.indices,
            "segments": self.segments,
            "size": list(self.frames.shape[1:3]) if self.frames.size else [],
            "video_fps": round(self.video_fps, 3),
            "duration_s": round(self.duration_s, 3),
            "decoded_frames": self.decoded_frames,
            "new_frames": self.new_frames,
            "plan": self.plan,
            "seconds": round(self.seconds, 3),
        }


class FrameSource:
    """Decoded frames of one video, decoded at most once per size while kept in memory."""

    def __init__(self, path: Path, cache_bytes: int = 1024 * 1024 * 1024) -> None:
        self.path = Path(path)
        self.index = load_frame_index(self.path)
        if self.index.count == 0:
            raise InputError(f"'{self.path.name}' has no video frames to sample.")
        self._cache: OrderedDict[tuple[int, int, int], np.ndarray] = OrderedDict()
        self._cache_bytes = 0
        self._cache_limit = cache_bytes
        self._lock = threading.Lock()
        self.frames_decoded_total = 0  # frames the decoder has produced over this source's life

    # -- public sampling -----------------------------------------------------------------
    def sample_uniform(
        self,
        n: int,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        min_pixels: int = DEFAULT_MIN_PIXELS,
        pool: Sequence[int] | None = None,
    ) -> FrameSample:
        n = _check_count(n)
        times = uniform_times(n, self.index.duration_s)
        return self._sample(times, "uniform", [], max_pixels, min_pixels, pool)

    def count_for_fps(self, fps: float, min_frames: int = 4, max_frames: int = 256) -> int:
        if fps <= 0:
            raise InputError("fps must be above 0.")
        return _check_count(min(max_frames, max(min_frames, round(self.index.duration_s * fps))))

    def sample_fps(
        self,
        fps: float,
        min_frames: int = 4,
        max_frames: int = 256,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        min_pixels: int = DEFAULT_MIN_PIXELS,
        pool: Sequence[int] | None = None,
    ) -> FrameSample:
        n = self.count_for_fps(fps, min_frames, max_frames)
        times = uniform_times(n, self.index.duration_s)
        return self._sample(times, f"fps={fps:g}", [], max_pixels, min_pixels, pool)

    def sample_weighted(
        self,
        n: int,
        segments: Sequence[tuple[float, float]],
        max_pixels: int = DEFAULT_MAX_PIXELS,
        min_pixels: int = DEFAULT_MIN_PIXELS,
        pool: Sequence[int] | None = None,
    ) -> FrameSample:
        n = _check_count(n)
        spans = merge_segments(segments, self.index.duration_s)
        times = weighted_times(n, self.index.duration_s, spans)
        return self._sample(times, "weighted" if spans else "uniform", spans, max_pixels, min_pixels, pool)

    def pool_indices(self, n: int) -> list[int]:
        """A uniform pool of `n` frames to decode once and serve several rounds from."""
        return self._pick_indices(uniform_times(min(n, self.index.count), self.index.duration_s))

    def prefetch(
        self, indices: Sequence[int], max_pixels: int = DEFAULT_MAX_PIXELS, min_pixels: int = DEFAULT_MIN_PIXELS
    ) -> int:
        """Decode `indices` (those not in memory) at the size a sample would use; return
        how many frames the decoder produced."""
        height, width = smart_resize(self.index.height, self.index.width, min_pixels=min_pixels, max_pixels=max_pixels)
        with self._lock:
            missing = sorted(i for i in set(indices) if (i, height, width) not in self._cache)
            before = self.frames_decoded_total
            if missing:
                self._decode(missing, width, height)
            return self.frames_decoded_total - before

    # -- internals -----------------------------------------------------------------------
    def _pick_indices(self, times: list[float], pool: Sequence[int] | None = None) -> list[int]:
        """Nearest distinct frames to `times`, in time order (all frames if too few).

        With a `pool`, frames are chosen among the pool's frames only."""
        candidates = sorted(set(pool)) if pool is not None else list(range(self.index.count))
        if len(times) >= len(candidates):
            return candidates
        chosen: list[int] = []
        taken: set[int] = set()
        for t in times:
            target = self.index.nearest(t)
            j = bisect.bisect_left(candidates, target)
            options = sorted(
                (c for c in candidates[max(0, j - len(times)) : j + len(times) + 1] if c not in taken),
                key=lambda c: (abs(self.index.seconds(c) - t), c),
            )
            pick = options[0] if options else next(c for c in candidates if c not in taken)
            taken.add(pick)
            chosen.append(pick)
        return sorted(chosen)

    def _sample(
        self,
        times: list[float],
        sampling: str,
        segments: list[tuple[float, float]],
        max_pixels: int,
        min_pixels: int,
        pool: Sequence[int] | None = None,
    ) -> FrameSample:
        started = time.perf_counter()
        indices = self._pick_indices(times, pool)
        height, width = smart_resize(self.index.height, self.index.width, min_pixels=min_pixels, max_pixels=max_pixels)
        with self._lock:
            missing = [i for i in indices if (i, height, width) not in self._cache]
            decoded_before = self.frames_decoded_total
            plan = self._decode(missing, width, height) if missing else "memory"
            decoded = self.frames_decoded_total - decoded_before
            frames = np.stack([self._cache[(i, height, width)] for i in indices])
            for i in indices:
                self._cache.move_to_end((i, height, width))
        return FrameSample(
            frames=frames,
            timestamps=[self.index.seconds(i) for i in indices],
            indices=indices,
            video_fps=self.index.fps,
            total_frames=self.index.count,
            duration_s=self.index.duration_s,
            sampling=sampling,
            segments=segments,
            decoded_frames=decoded,
            new_frames=len(missing),
            plan=plan,
            seconds=time.perf_counter() - started,
        )

    def plan_costs(self, wanted: list[int]) -> tuple[int, int]:
        """(frames to decode sequentially, frame-equivalents to decode by seeking)."""
        sequential = wanted[-1] + 1
        seek_cost, position = 0, -1
        for i in wanted:
            key = self.index.keyframe_before(i)
            if position >= key and position < i:
                seek_cost += i - position
            else:
                seek_cost += SEEK_COST_FRAMES + (i - key + 1)
            position = i
        return sequential, seek_cost

    def _seek_runs(self, wanted: list[int]) -> list[tuple[int, int]]:
        """(first, last) runs of wanted frames decoded after one seek: a frame whose keyframe
        is at or before the previous wanted frame is reached by decoding on (as in plan_costs)."""
        runs: list[tuple[int, int]] = []
        for i in wanted:
            if runs and self.index.keyframe_before(i) <= runs[-1][1]:
                runs[-1] = (runs[-1][0], i)
            else:
                runs.append((i, i))
        return runs

    def _decode(self, wanted: list[int], width: int, height: int) -> str:
        sequential, seek_cost = self.plan_costs(wanted)
        plan = "sequential" if sequential <= seek_cost else "seek"
        wanted_by_pts = {self.index.pts[i]: i for i in wanted}
        remaining = set(wanted)
        with av.open(str(self.path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if plan == "sequential":
                self._collect(container.decode(stream), wanted_by_pts, remaining, width, height, max(wanted))
            else:
                for first, last in self._seek_runs(wanted):
                    key = self.index.keyframe_before(first)
                    container.seek(self.index.pts[key], stream=stream, backward=True, any_frame=False)
                    self._collect(container.decode(stream), wanted_by_pts, remaining, width, height, last)
        for i in sorted(remaining):  # a frame the decoder never produced: serve its nearest neighbour
            self._store((i, height, width), self._nearest_cached(i, width, height))
        return plan

    def _collect(
        self,
        frames: Iterable[av.VideoFrame],
        wanted_by_pts: dict[int, int],
        remaining: set[int],
        width: int,
        height: int,
        stop_at: int,
    ) -> None:
        """Convert the wanted frames among `frames` until frame `stop_at` has gone by."""
        last_pts = self.index.pts[stop_at]
        for frame in frames:
            self.frames_decoded_total += 1
            index = wanted_by_pts.get(frame.pts)
            if index is not None and index in remaining:
                self._store((index, height, width), frame.to_ndarray(format="rgb24", width=width, height=height))
                remaining.discard(index)
            if (frame.pts is not None and frame.pts >= last_pts) or not remaining:
                break

    def _nearest_cached(self, index: int, width: int, height: int) -> np.ndarray:
        same_size = [i for (i, h, w) in self._cache if (h, w) == (height, width)]
        if not same_size:
            raise InputError(f"'{self.path.name}': frame {index} could not be decoded.")
        return self._cache[(min(same_size, key=lambda i: abs(i - index)), height, width)]

    def _store(self, key: tuple[int, int, int], array: np.ndarray) -> None:
        if key in self._cache:
            return
        self._cache[key] = array
        self._cache_bytes += array.nbytes
        while self._cache_bytes > self._cache_limit and len(self._cache) > 1:
            _, evicted = self._cache.popitem(last=False)
            self._cache_bytes -= evicted.nbytes


def _check_count(n: int) -> int:
    if not 1 <= n <= MAX_FRAMES:
        raise InputError(f"The number of frames must be between 1 and {MAX_FRAMES}; got {n}.")
    return int(n)


_sources: OrderedDict[str, FrameSource] = OrderedDict()
_sources_lock = threading.Lock()


def frame_source(path: Path, cache_bytes: int = 1024 * 1024 * 1024, keep: int = 4) -> FrameSource:
    """The shared FrameSource of a video file (a few videos are kept in memory)."""
    resolved = Path(path).resolve()
    stat = resolved.stat()
    key = f"{resolved}:{stat.st_size}:{stat.st_mtime_ns}"
    with _sources_lock:
        source = _sources.get(key)
        if source is None:
            source = FrameSource(resolved, cache_bytes)
            _sources[key] = source
            while len(_sources) > keep:
                _sources.popitem(last=False)
        _sources.move_to_end(key)
        return source
