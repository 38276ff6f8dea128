"""Picture signals: frozen and black stretches of the sanitized frames (ffmpeg's freezedetect and
blackdetect, run in the one decode of core.media.forensics.scan), and changes of picture size,
aspect or frame rate and gaps in the presentation timestamps of the ORIGINAL's video stream (its
packets, and its keyframes decoded).
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from core.media.forensics.models import Event, Signal
from core.media.forensics.runner import stretches
from core.media.frames import FrameIndex
from core.media.probe import ProbeInfo
from core.media.sniff import open_media

FREEZE_NOISE_DB = -60.0
FREEZE_MIN_S = 0.5
BLACK_MIN_S = 0.5
BLACK_PIXEL = 0.10  # a pixel is black at or below 10% brightness
BLACK_PICTURE = 0.98  # a frame is black when 98% of its pixels are
GAP_FACTOR = 3.0  # a gap: a step between frames above this many typical steps ...
GAP_MIN_S = 0.25  # ... and above this
RATE_BLOCK_S = 1.0  # the frame rate is measured per block of about this length
RATE_CHANGE = 0.1  # and counts as changed when it moves by more than this share, for 2 blocks
MAX_EVENTS = 50


def _signal(kind: str, title: str, unit: str, method: str, events: list[Event], summary: str) -> Signal:
    return Signal(kind=kind, title=title, unit=unit, method=method, events=events[:MAX_EVENTS], total=len(events),
                  capped=len(events) > MAX_EVENTS, summary=summary)  # fmt: skip


FRAME_FILTERS = (
    f"freezedetect=noise={FREEZE_NOISE_DB:g}dB:duration={FREEZE_MIN_S:g},"
    f"blackdetect=d={BLACK_MIN_S:g}:pix_th={BLACK_PIXEL:g}:pic_th={BLACK_PICTURE:g}"
)


def frozen_and_black(log: str, index: FrameIndex) -> tuple[Signal, Signal]:
    """Frozen (duplicated-frame) runs and black stretches of the sanitized video, from the log of the
    ffmpeg pass that ran FRAME_FILTERS over its frames with -copyts (core.media.forensics.scan)."""
    offset = index.start_s
    end = index.duration_s + offset

    def events(pairs: list[tuple[float, float]], what: str) -> list[Event]:
        return [Event(start_s=round(a - offset, 3), end_s=round(b - offset, 3), what=f"{what} for {b - a:.2f} s",
                      value=round(b - a, 3)) for a, b in pairs]  # fmt: skip

    # freezedetect's start is the held frame's own time, its end the time of the first frame that differs.
    frozen = events(stretches(log, "freeze_start", "freeze_end", "freezedetect", end), "the picture is frozen")
    black = events(stretches(log, "black_start", "black_end", "blackdetect", end), "the picture is black")

    def summary(found: list[Event], name: str) -> str:
        if not found:
            return f"No {name} stretch found."
        return f"{len(found)} {name} stretch(es), {sum(e.value or 0 for e in found):.1f} s in all."

    return (
        _signal("frozen", "Frozen or duplicated frames", "s",
                f"ffmpeg freezedetect on the sanitized frames: frames that differ by less than {FREEZE_NOISE_DB:g} dB "
                f"of noise for at least {FREEZE_MIN_S:g} s (a black stretch is also frozen).",
                frozen, summary(frozen, "frozen")),
        _signal("black", "Black frames", "s",
                f"ffmpeg blackdetect on the sanitized frames: at least {BLACK_PICTURE:.0%} of the pixels at or below "
                f"{BLACK_PIXEL:.0%} brightness, for at least {BLACK_MIN_S:g} s.",
                black, summary(black, "black")),
    )  # fmt: skip


@dataclass
class StreamFacts:
    """The original's video stream: every packet's time (s, on the video's axis) and each decoded
    keyframe's (time, width, height, pixel aspect)."""

    times: list[float] = field(default_factory=list)
    pictures: list[tuple[float, int, int, Fraction | None]] = field(default_factory=list)
    timestamped: bool = True
    resets: int = 0  # the timestamps start again this often (joined parts): times cannot be compared across

    @property
    def untimed(self) -> str | None:
        """Why the timing signals cannot be measured, or None."""
        if not self.timestamped:
            return "the original's video has no timestamps to measure"
        if self.resets:
            return f"the original's timestamps start again {self.resets} time(s) (joined parts; see the flags)"
        return None


def read_stream(path: Path, info: ProbeInfo) -> StreamFacts:
    import av

    facts = StreamFacts(resets=info.timestamp_resets)
    with open_media(path, info.demuxer) as container:
        streams = {stream.index: stream for stream in container.streams}
        stream = streams.get(info.video_stream) or container.streams.video[0]
        stream.codec_context.skip_frame = "NONKEY"
        base = float(stream.time_base) if stream.time_base else 0.0
        start: float | None = None
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                if packet.pts is None or not base:
                    facts.timestamped = False
                else:
                    seconds = packet.pts * base
                    start = seconds if start is None else min(start, seconds)
                    facts.times.append(seconds)
                if packet.is_keyframe:
                    try:
                        decoded = packet.decode()
                    except av.error.FFmpegError:
                        continue
                    for frame in decoded:
                        sar = stream.codec_context.sample_aspect_ratio  # the decoder's, as of this frame
                        moment = frame.time if frame.time is not None else (facts.times[-1] if facts.times else 0.0)
                        aspect = Fraction(sar) if sar else None
                        facts.pictures.append((float(moment), frame.width, frame.height, aspect))
        except av.error.FFmpegError:
            pass  # a damaged tail: what was read stands (the probe notes the damage)
    origin = start or 0.0
    facts.times = sorted(t - origin for t in facts.times)
    facts.pictures = [(t - origin, w, h, sar) for t, w, h, sar in facts.pictures]  # in file order
    if not facts.resets:
        facts.pictures.sort()
    return facts


def _shape(width: int, height: int, sar: Fraction | None) -> str:
    aspect = f", pixel aspect {sar.numerator}:{sar.denominator}" if sar and sar != 1 else ""
    return f"{width}x{height}{aspect}"


def picture_signal(facts: StreamFacts) -> Signal:
    events: list[Event] = []
    for (_, *before), (moment, width, height, sar) in zip(facts.pictures, facts.pictures[1:], strict=False):
        shape = (width, height, sar if sar != 1 else None)
        old = (before[0], before[1], before[2] if before[2] != 1 else None)
        if shape != old:
            events.append(Event(start_s=round(moment, 3), end_s=round(moment, 3),
                                what=f"the picture changes from {_shape(*old)} to {_shape(*shape)}"))  # fmt: skip
    first = _shape(*facts.pictures[0][1:]) if facts.pictures else "unknown"
    summary = f"{len(events)} change(s) of picture size or aspect." if events else f"The picture stays {first}."
    return _signal("picture_change", "Picture size or aspect changes", "",
                   "the size and pixel aspect of every keyframe of the original's video stream (keyframes decoded).",
                   events, summary)  # fmt: skip


def _rate(steps: list[float]) -> float:
    """Frames per second from the median step between frames (0 when unknown)."""
    middle = statistics.median(steps)
    return 1 / middle if middle > 0 else 0.0


def frame_rate_signal(facts: StreamFacts) -> Signal:
    method = (f"the median step between the original's frame timestamps per {RATE_BLOCK_S:g} s block; a change "
              f"when the rate moves by more than {RATE_CHANGE:.0%} and holds for two blocks.")  # fmt: skip
    reason = facts.untimed or (None if len(facts.times) >= 4 else "the original's video has too few frames")
    if reason:
        return Signal(kind="frame_rate_change", title="Frame rate changes", applicable=False, reason=reason,
                      method=method, summary=f"Not applicable: {reason}.")  # fmt: skip
    times = facts.times
    steps = [b - a for a, b in itertools.pairwise(times)]
    overall = _rate([step for step in steps if step > 0] or [0.0])
    per_block = max(4, round(RATE_BLOCK_S * overall)) if overall else 25
    blocks = [(k, _rate([s for s in steps[k : k + per_block] if s > 0] or [0.0]))
              for k in range(0, len(steps) - per_block // 2, per_block)]  # fmt: skip
    events: list[Event] = []
    current = blocks[0][1] if blocks else overall
    for (k, rate), (_, following) in itertools.pairwise(blocks[1:] if len(blocks) > 1 else []):
        if not (current and rate and abs(rate - current) / current > RATE_CHANGE):
            continue
        if abs(following - rate) / rate > RATE_CHANGE:
            continue
        new_step = 1 / rate
        while k > 0 and abs(steps[k - 1] - new_step) <= RATE_CHANGE * new_step:  # back to the first such step
            k -= 1
        events.append(Event(start_s=round(times[k], 3), end_s=round(times[k], 3),
                            what=f"the frame rate changes from {current:.3g} to {rate:.3g} fps",
                            value=round(rate, 3)))  # fmt: skip
        current = rate
    summary = (f"{len(events)} frame rate change(s) (variable frame rate)." if events
               else f"A steady {overall:.3g} fps.")  # fmt: skip
    return _signal("frame_rate_change", "Frame rate changes", "fps", method, events, summary)


def gap_signal(facts: StreamFacts) -> Signal:
    method = (f"steps between the original's consecutive frame timestamps longer than {GAP_FACTOR:g} typical "
              f"steps and than {GAP_MIN_S:g} s.")  # fmt: skip
    reason = facts.untimed or (None if len(facts.times) >= 2 else "the original's video has too few frames")
    if reason:
        return Signal(kind="timestamp_gap", title="Gaps in the timestamps", applicable=False, reason=reason,
                      method=method, summary=f"Not applicable: {reason}.")  # fmt: skip
    steps = [b - a for a, b in zip(facts.times, facts.times[1:], strict=False)]
    typical = statistics.median([s for s in steps if s > 0] or [0.0])
    limit = max(GAP_FACTOR * typical, GAP_MIN_S)
    events = [Event(start_s=round(a, 3), end_s=round(b, 3), what=f"no frame for {b - a:.2f} s", value=round(b - a, 3))
              for a, b in zip(facts.times, facts.times[1:], strict=False) if b - a > limit]  # fmt: skip
    summary = f"{len(events)} gap(s) in the timestamps." if events else "No gap in the timestamps."
    return _signal("timestamp_gap", "Gaps in the timestamps", "s", method, events, summary)
