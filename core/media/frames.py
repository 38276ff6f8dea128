"""Frames: sample a video into frames that carry their true presentation time.

A `FrameSource` wraps one (sanitized) video. It builds a frame index once (every
frame's presentation timestamp and keyframe flag, read by demuxing packets, no decoding)
and keeps the frames it has decoded, so later requests (the next perception round, the
same request again) are served from memory and only frames never seen are decoded.
For the frames it must decode it picks the cheaper plan: one sequential pass from the
start, or a seek to the keyframe before each wanted frame, counting frames to decode.

Which frames to show is decided by `core.media.sampling` (the official VideoChat-R1.5 sampler,
index for index); this module decodes exactly those. Frames are resized to a pixel budget in
multiples of 28 (the Qwen2.5-VL patch grid).
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from core.errors import InputError
from core.media.sampling import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS, FramePlan, check_frame_count, plan_frames
from core.media.sniff import open_media
from core.media.storage import atomic_write_json, read_json

PATCH_FACTOR = 28
# A seek costs about as much as decoding this many frames (demuxer flush and re-sync).
SEEK_COST_FRAMES = 8
DecodedFn = Callable[[int, int], None]  # (frames decoded so far, frames wanted) of one sample


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


# --- the frame index -------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameIndex:
    """Every frame's presentation time (stream ticks and seconds) and keyframe flag."""

    pts: list[int]
    keyframe: list[bool]
    time_base: float
    start_s: float
    width: int  # the picture as it is shown: stored width times the pixel aspect ratio
    height: int
    frame_step_s: float = 0.0  # how long one frame lasts (packet duration, else the nominal rate)

    @property
    def count(self) -> int:
        return len(self.pts)

    def seconds(self, i: int) -> float:
        return self.pts[i] * self.time_base - self.start_s

    @property
    def step_s(self) -> float:
        """One frame's duration: the average spacing of the frames, else the recorded step."""
        if self.count > 1:
            return (self.pts[-1] - self.pts[0]) / (self.count - 1) * self.time_base
        return self.frame_step_s

    @property
    def duration_s(self) -> float:
        if not self.pts:
            return 0.0
        return self.seconds(self.count - 1) + self.step_s

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


DEFAULT_FRAME_STEP_S = 1 / 25  # a single frame with no duration and no rate


def build_frame_index(path: Path, demuxer: str = "mov") -> FrameIndex:
    """Demux (without decoding) the first video stream and list its frames in time order."""
    with open_media(path, demuxer) as container:
        stream = container.streams.video[0]
        entries = []
        durations = []
        for packet in _packets(container, stream):
            if packet.pts is not None and packet.size:
                entries.append((packet.pts, packet.is_keyframe))
                if packet.duration:
                    durations.append(packet.duration)
        time_base = float(stream.time_base)
        width, height = stream.codec_context.width, stream.codec_context.height
        sar = stream.sample_aspect_ratio
        if sar and 0.1 <= float(sar) <= 10 and float(sar) != 1:
            width = round(width * float(sar))
        rate = stream.average_rate or stream.guessed_rate
        start = stream.start_time if stream.start_time is not None else (min(e[0] for e in entries) if entries else 0)
    entries.sort()
    step = durations[-1] * time_base if durations else (1 / float(rate) if rate else DEFAULT_FRAME_STEP_S)
    return FrameIndex(
        pts=[pts for pts, _ in entries],
        keyframe=[key for _, key in entries] if entries else [],
        time_base=time_base,
        start_s=start * time_base,
        width=width,
        height=height,
        frame_step_s=step,
    )


def _packets(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> Iterator[av.Packet]:
    """The stream's packets, up to the first point the container cannot be read past."""
    try:
        yield from container.demux(stream)
    except av.error.FFmpegError:
        return


def load_frame_index(path: Path) -> FrameIndex:
    """The frame index of `path`, read from `<path>.frames.json` when present."""
    cache = path.with_name(path.name + ".frames.json")
    stat = path.stat()
    stored = read_json(cache)
    fields = ("pts", "keyframe", "time_base", "start_s", "width", "height", "frame_step_s")
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
    """Frames (N, H, W, 3 uint8 RGB) with the true time and index of each, and how they were chosen."""

    frames: np.ndarray
    timestamps: list[float]
    indices: list[int]
    video_fps: float
    total_frames: int
    duration_s: float
    sampling: str
    segments: list[tuple[float, float]] = field(default_factory=list)  # the glue's spans, as frames (s)
    nframes: int = 0  # the count the official rule asked for (0: the number of indices)
    # Frames the decoder produced for this request (0 when all came from memory), and how
    # many of the returned frames were not in memory before.
    decoded_frames: int = 0
    new_frames: int = 0
    plan: str = "memory"
    seconds: float = 0.0
    # Indices that could not be decoded (damaged data) and show their nearest decoded neighbour.
    substituted: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the sampler did that the official one would not

    @property
    def sampled_fps(self) -> float:
        """The rate the model's time axis assumes: the official n / T * video fps."""
        count = self.nframes or len(self.indices)
        return count / self.total_frames * self.video_fps if self.total_frames else 0.0

    def video_metadata(self) -> dict[str, object]:
        """The sampled frames' indices and rate, in the form transformers' processors take. The
        processor derives its rate as len(indices) / total * fps; `fps` is set so that this equals
        the official n / T * video fps even when the frames are fewer than n (duplicates merged)."""
        return {
            "fps": self.sampled_fps * self.total_frames / max(len(self.indices), 1),
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
            "sampled_fps": round(self.sampled_fps, 4),
            "duration_s": round(self.duration_s, 3),
            "decoded_frames": self.decoded_frames,
            "new_frames": self.new_frames,
            "plan": self.plan,
            "substituted": self.substituted,
            "notes": self.notes,
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
        self.decode_errors = 0  # packets that did not decode
        self.substituted: set[int] = set()  # frames never decoded, served by their nearest neighbour
        self.decode_counts: Counter[int] = Counter()  # how often each wanted frame came out of the decoder

    # -- public sampling -----------------------------------------------------------------
    def plan(
        self,
        frames: int | None = None,
        fps: float | None = None,
        key_time: Sequence[tuple[float, float]] | None = None,
    ) -> FramePlan:
        """The official sampler's frames for this video (see core.media.sampling)."""
        if frames is not None:
            check_frame_count(frames)
        return plan_frames(self.index.count, self.index.fps, frames=frames, fps=fps, key_time=key_time)

    def sample(
        self,
        plan: FramePlan,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        min_pixels: int = DEFAULT_MIN_PIXELS,
        on_decoded: DecodedFn | None = None,
    ) -> FrameSample:
        """Exactly the plan's frames, decoding only those not in memory at this size."""
        sample = self.sample_indices(
            plan.indices, max_pixels, min_pixels, sampling=plan.sampling, on_decoded=on_decoded
        )
        sample.nframes = plan.nframes
        sample.notes = list(plan.notes)
        sample.segments = [
            (self.index.seconds(start), self.index.seconds(end) + self.index.step_s) for start, end in plan.key_ranges
        ]
        return sample

    def sample_uniform(
        self, n: int, max_pixels: int = DEFAULT_MAX_PIXELS, min_pixels: int = DEFAULT_MIN_PIXELS
    ) -> FrameSample:
        """`n` frames as a first round (no glue) takes them."""
        return self.sample(self.plan(frames=n), max_pixels, min_pixels)

    def sample_indices(
        self,
        indices: Sequence[int],
        max_pixels: int = DEFAULT_MAX_PIXELS,
        min_pixels: int = DEFAULT_MIN_PIXELS,
        sampling: str = "indices",
        on_decoded: DecodedFn | None = None,
    ) -> FrameSample:
        """The frames at `indices` (in this order, repeats allowed), e.g. those a stored round saw.
        `on_decoded(done, wanted)` hears of each frame converted that was not in memory."""
        started = time.perf_counter()
        indices = [int(i) for i in indices]
        if not indices or min(indices) < 0 or max(indices) >= self.index.count:
            raise InputError(f"'{self.path.name}' has no frames at {indices[:8]} (it has {self.index.count}).")
        height, width = smart_resize(self.index.height, self.index.width, min_pixels=min_pixels, max_pixels=max_pixels)
        with self._lock:
            missing = sorted({i for i in indices if (i, height, width) not in self._cache})
            decoded_before = self.frames_decoded_total
            plan = self._decode(missing, width, height, on_decoded) if missing else "memory"
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
            decoded_frames=decoded,
            new_frames=len(missing),
            plan=plan,
            substituted=[i for i in indices if i in self.substituted],
            seconds=time.perf_counter() - started,
        )

    # -- internals -----------------------------------------------------------------------
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

    def _decode(self, wanted: list[int], width: int, height: int, on_decoded: DecodedFn | None = None) -> str:
        sequential, seek_cost = self.plan_costs(wanted)
        plan = "sequential" if sequential <= seek_cost else "seek"
        wanted_by_pts = {self.index.pts[i]: i for i in wanted}
        remaining = set(wanted)
        report = _throttled(on_decoded, len(wanted)) if on_decoded else None
        with open_media(self.path, "mov") as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if plan == "sequential":
                self._collect(
                    self._decoded(container, stream), wanted_by_pts, remaining, width, height, max(wanted), report
                )
            else:
                for first, last in self._seek_runs(wanted):
                    key = self.index.keyframe_before(first)
                    try:
                        container.seek(self.index.pts[key], stream=stream, backward=True, any_frame=False)
                    except av.error.FFmpegError:
                        continue  # the frames of this run are served by their neighbours below
                    frames = self._decoded(container, stream)
                    self._collect(frames, wanted_by_pts, remaining, width, height, last, report)
        for i in sorted(remaining):  # a frame the decoder never produced: serve its nearest neighbour
            self._store((i, height, width), self._nearest_cached(i, width, height))
            self.substituted.add(i)
        return plan

    def _decoded(
        self, container: av.container.InputContainer, stream: av.video.stream.VideoStream
    ) -> Iterator[av.VideoFrame]:
        """Frames of `stream` from the container's position on; a packet that does not decode
        (damaged bytes in the middle of a file) is skipped and counted, not fatal."""
        for packet in _packets(container, stream):
            try:
                yield from packet.decode()
            except av.error.FFmpegError:
                self.decode_errors += 1

    def _collect(
        self,
        frames: Iterable[av.VideoFrame],
        wanted_by_pts: dict[int, int],
        remaining: set[int],
        width: int,
        height: int,
        stop_at: int,
        report: Callable[[int], None] | None = None,
    ) -> None:
        """Convert the wanted frames among `frames` until frame `stop_at` has gone by."""
        last_pts = self.index.pts[stop_at]
        for frame in frames:
            self.frames_decoded_total += 1
            index = wanted_by_pts.get(frame.pts)
            if index is not None and index in remaining:
                self._store((index, height, width), frame.to_ndarray(format="rgb24", width=width, height=height))
                self.decode_counts[index] += 1
                remaining.discard(index)
                if report is not None:
                    report(len(remaining))
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


def _throttled(on_decoded: DecodedFn, wanted: int, interval_s: float = 0.2) -> Callable[[int], None]:
    """Report (done, wanted) at most every `interval_s`, and always when the last frame is done."""
    last = [0.0]

    def report(remaining: int) -> None:
        now = time.monotonic()
        if remaining == 0 or now - last[0] >= interval_s:
            last[0] = now
            on_decoded(wanted - remaining, wanted)

    return report


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
