"""Audio signals of the ORIGINAL's audio stream (the sanitized copy's silent track is never measured).

Two reads of the one original file, both with the probe's demuxer and the `file` protocol only:
ffmpeg's ebur128 and silencedetect filters (loudness and silences), and a PyAV decode of the same
stream into 100 ms windows (peak, clipping, level jumps, the audio's true length).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from core.config import Settings
from core.errors import MediaError
from core.media.forensics.models import AudioEvidence, Event, Signal
from core.media.forensics.runner import filter_pass, numbers, stretches
from core.media.probe import ProbeInfo
from core.media.sniff import open_media

if TYPE_CHECKING:
    import av

SILENCE_DB = -50.0
SILENCE_MIN_S = 0.5
WINDOW_S = 0.1
CLIP_LEVEL = 0.999  # |sample| at or above this (of full scale) counts as clipped
CLIP_MIN_SAMPLES = 3  # clipped samples a window needs to count
JUMP_DB = 15.0
JUMP_CONTEXT = 5  # windows (0.5 s) each side whose median level is compared
MISMATCH_S = 0.5
MAX_PAD_S = 60.0  # audio gaps up to this long are filled with silence on the window axis
MAX_EVENTS = 50
NO_AUDIO = "the original has no audio track"


@dataclass
class AudioWindows:
    """The decoded stream in 100 ms windows: mean square level and clipped samples of each. A gap in
    the audio's timestamps (up to MAX_PAD_S) is filled with silent windows, so window k stays at
    start_s + k * WINDOW_S."""

    sample_rate: int = 0
    start_s: float = 0.0  # where the first sample is on the video's axis
    end_s: float = 0.0  # where the last sample ends
    samples: int = 0  # decoded samples (per channel)
    peak: float = 0.0
    power: list[float] = field(default_factory=list)
    clipped: list[int] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return max(self.end_s - self.start_s, self.samples / self.sample_rate if self.sample_rate else 0.0)

    def level_db(self, k: int) -> float:
        return 10 * math.log10(self.power[k]) if self.power[k] > 1e-12 else -120.0

    def time(self, k: int) -> float:
        return self.start_s + k * WINDOW_S


def _stream_start(stream: object) -> float | None:
    start, base = getattr(stream, "start_time", None), getattr(stream, "time_base", None)
    return float(start * base) if start is not None and base is not None else None


def _audio_frames(
    container: av.container.InputContainer, stream: av.audio.stream.AudioStream
) -> Iterator[av.AudioFrame]:
    """Decoded frames of `stream`: a packet that does not decode is skipped, and reading stops at
    the first point the file cannot be read past (a damaged tail)."""
    import av

    try:
        for packet in container.demux(stream):
            try:
                yield from packet.decode()
            except av.error.FFmpegError:
                continue
    except av.error.FFmpegError:
        return


def decode_windows(path: Path, info: ProbeInfo) -> AudioWindows:
    """Decode the probe's audio stream of `path` into 100 ms windows (damaged packets are skipped)."""
    import av
    import numpy as np

    result = AudioWindows()
    with open_media(path, info.demuxer) as container:
        streams = {stream.index: stream for stream in container.streams}
        audio = streams[info.audio_stream] if info.audio_stream in streams else container.streams.audio[0]
        video = streams.get(info.video_stream)
        video_start = _stream_start(video) or 0.0
        resampler: av.AudioResampler | None = None
        power, clipped = np.zeros(0, np.float32), np.zeros(0, bool)
        window, placed = 0, 0  # samples per window; samples on the window axis (padding included)
        first: float | None = None
        end = 0.0

        def take(data: np.ndarray | None, pad: int = 0) -> None:
            nonlocal power, clipped, placed
            if pad:
                power, clipped = (
                    np.concatenate([power, np.zeros(pad, np.float32)]),
                    np.concatenate([clipped, np.zeros(pad, bool)]),
                )
                placed += pad
            if data is not None and data.size:
                magnitude = np.abs(data)
                result.peak = max(result.peak, float(magnitude.max()))
                result.samples += data.shape[1]
                placed += data.shape[1]
                power = np.concatenate([power, (data * data).mean(axis=0)])
                clipped = np.concatenate([clipped, (magnitude >= CLIP_LEVEL).any(axis=0)])
            whole = len(power) // window * window
            if whole:
                result.power.extend(power[:whole].reshape(-1, window).mean(axis=1).tolist())
                result.clipped.extend(clipped[:whole].reshape(-1, window).sum(axis=1).tolist())
                power, clipped = power[whole:], clipped[whole:]

        for frame in _audio_frames(container, audio):
            if resampler is None:
                result.sample_rate = frame.sample_rate
                window = max(1, round(frame.sample_rate * WINDOW_S))
                resampler = av.AudioResampler(format="fltp", layout=frame.layout.name, rate=frame.sample_rate)
            pad = 0
            if frame.time is not None:
                if first is None:
                    first = float(frame.time)
                late = float(frame.time) - (first + placed / result.sample_rate)
                if WINDOW_S < late <= MAX_PAD_S:
                    pad = round(late * result.sample_rate)
                end = max(end, float(frame.time) + frame.samples / frame.sample_rate)
            converted = resampler.resample(frame)
            take(None, pad)
            for part in converted:
                take(part.to_ndarray().astype(np.float32, copy=False))
        if resampler is not None:
            for part in resampler.resample(None):
                take(part.to_ndarray().astype(np.float32, copy=False))
        if len(power):
            result.power.append(float(power.mean()))
            result.clipped.append(int(clipped.sum()))
        start = first if first is not None else _stream_start(audio)
        result.start_s = (start or 0.0) - video_start
        result.end_s = (
            (end - video_start) if first is not None else result.start_s + result.samples / max(result.sample_rate, 1)
        )
    return result


def _capped(events: list[Event]) -> tuple[list[Event], int, bool]:
    return events[:MAX_EVENTS], len(events), len(events) > MAX_EVENTS


def _not_applicable(kind: str, title: str, reason: str) -> Signal:
    return Signal(kind=kind, title=title, applicable=False, reason=reason, summary=f"Not applicable: {reason}.")


def silence_signal(log: str, video_start: float, windows: AudioWindows) -> Signal:
    end_of_stream = windows.end_s + video_start
    pairs = stretches(log, "silence_start", "silence_end", "silencedetect", end_of_stream)
    events = [
        Event(start_s=round(max(0.0, a - video_start), 3), end_s=round(max(0.0, b - video_start), 3),
              what=f"silence for {b - a:.2f} s", value=round(b - a, 3))
        for a, b in pairs
    ]  # fmt: skip
    shown, total, capped = _capped(events)
    seconds = sum(event.value or 0 for event in events)
    summary = f"{total} silence(s), {seconds:.1f} s in all." if total else "No silence found."
    return Signal(
        kind="silence", title="Silences", unit="s", events=shown, total=total, capped=capped, summary=summary,
        method=f"ffmpeg silencedetect: below {SILENCE_DB:g} dBFS for at least {SILENCE_MIN_S:g} s.",
    )  # fmt: skip


def clipping_signal(windows: AudioWindows) -> Signal:
    events: list[Event] = []
    for k, count in enumerate(windows.clipped):
        if count < CLIP_MIN_SAMPLES:
            continue
        start, end = windows.time(k), windows.time(k) + WINDOW_S
        if events and abs(events[-1].end_s - start) < 1e-6:
            previous = events[-1]
            previous.end_s, previous.value = round(end, 3), (previous.value or 0) + count
            previous.what = f"{previous.value:.0f} samples at full scale"
        else:
            events.append(Event(start_s=round(start, 3), end_s=round(end, 3), what=f"{count} samples at full scale",
                                value=count))  # fmt: skip
    shown, total, capped = _capped(events)
    samples = sum(event.value or 0 for event in events)
    summary = (f"{total} clipped stretch(es), {samples:.0f} samples at full scale." if total
               else f"No clipping (peak {20 * math.log10(max(windows.peak, 1e-6)):.1f} dBFS).")  # fmt: skip
    return Signal(
        kind="clipping", title="Clipping", unit="samples", events=shown, total=total, capped=capped, summary=summary,
        method=(f"samples decoded from the original; a sample is clipped at {CLIP_LEVEL:g} of full scale or above "
                f"(any channel); a {WINDOW_S * 1000:.0f} ms window with {CLIP_MIN_SAMPLES}+ such samples counts, "
                "neighbouring windows make one stretch."),
    )  # fmt: skip


def level_jump_signal(windows: AudioWindows) -> Signal:
    import numpy as np

    levels = np.array([windows.level_db(k) for k in range(len(windows.power))])
    events: list[Event] = []
    for k in range(JUMP_CONTEXT, len(levels) - JUMP_CONTEXT + 1):
        before = float(np.median(levels[k - JUMP_CONTEXT : k]))
        after = float(np.median(levels[k : k + JUMP_CONTEXT]))
        step = float(levels[k] - levels[k - 1])
        change = after - before
        if (min(before, after) <= SILENCE_DB or abs(change) < JUMP_DB or abs(step) < JUMP_DB / 2
                or step * change < 0):  # fmt: skip
            continue
        moment = round(windows.time(k), 3)
        if events and moment - events[-1].start_s < JUMP_CONTEXT * WINDOW_S:
            if abs(change) > abs(events[-1].value or 0):
                events[-1] = Event(start_s=moment, end_s=moment, what=events[-1].what, value=round(change, 1))
            continue
        way = "up" if change > 0 else "down"
        events.append(Event(start_s=moment, end_s=moment, what=f"level jumps {way} {abs(change):.0f} dB "
                            f"({before:.0f} to {after:.0f} dBFS)", value=round(change, 1)))  # fmt: skip
    shown, total, capped = _capped(events)
    summary = f"{total} abrupt level jump(s)." if total else "No abrupt level jump."
    return Signal(
        kind="level_jump", title="Abrupt level jumps", unit="dB", events=shown, total=total, capped=capped,
        summary=summary,
        method=(f"RMS level per {WINDOW_S * 1000:.0f} ms window; a jump where the median level of the "
                f"{JUMP_CONTEXT * WINDOW_S:g} s after a window boundary differs from the {JUMP_CONTEXT * WINDOW_S:g} s "
                f"before by {JUMP_DB:g} dB or more, with a step of {JUMP_DB / 2:g} dB at the boundary itself, both "
                f"sides above {SILENCE_DB:g} dBFS (outside silence); jumps within 0.5 s count once."),
    )  # fmt: skip


def duration_signal(windows: AudioWindows, video_s: float) -> Signal:
    audio_end = windows.end_s
    events: list[Event] = []
    if abs(windows.start_s) > MISMATCH_S:
        late = windows.start_s > 0
        events.append(Event(
            start_s=round(min(0.0, windows.start_s), 3), end_s=round(max(0.0, windows.start_s), 3),
            what=f"the audio starts {abs(windows.start_s):.2f} s {'after' if late else 'before'} the video",
            value=round(windows.start_s, 3)))  # fmt: skip
    if abs(audio_end - video_s) > MISMATCH_S:
        longer = "audio" if audio_end > video_s else "video"
        events.append(
            Event(
                start_s=round(min(audio_end, video_s), 3),
                end_s=round(max(audio_end, video_s), 3),
                what=f"the {longer} goes on {abs(audio_end - video_s):.2f} s longer",
                value=round(audio_end - video_s, 3),
            )
        )
    summary = (
        f"The audio ({windows.duration_s:.2f} s) and the video ({video_s:.2f} s) do not line up."
        if events
        else f"The audio ({windows.duration_s:.2f} s) and the video ({video_s:.2f} s) line up."
    )
    return Signal(
        kind="duration_mismatch", title="Audio/video duration", unit="s", events=events, total=len(events),
        summary=summary,
        method=(f"the audio's length from its decoded samples and its start, against the video's length from "
                f"its packets; a mismatch above {MISMATCH_S:g} s at either end counts."),
    )  # fmt: skip


def _loudness(log: str) -> tuple[float | None, float | None]:
    integrated = numbers(log, "I", "ebur128")
    spread = numbers(log, "LRA", "ebur128")
    if not integrated:  # the summary block's lines carry no filter name
        summary = log[log.rfind("Summary:") :] if "Summary:" in log else ""
        integrated, spread = numbers(summary, "I"), numbers(summary, "LRA")
    return (integrated[-1] if integrated else None), (spread[-1] if spread else None)


def _none(reason: str, info: ProbeInfo) -> AudioEvidence:
    """Audio evidence that could not be measured, each signal saying why."""
    titles = {"silence": "Silences", "clipping": "Clipping", "level_jump": "Abrupt level jumps",
              "duration_mismatch": "Audio/video duration"}  # fmt: skip
    signals = {"silence": "silence", "clipping": "clipping", "level_jump": "level_jumps",
               "duration_mismatch": "duration_mismatch"}  # fmt: skip
    return AudioEvidence(
        applicable=False, reason=reason, stream_index=info.audio_stream, codec=info.audio_codec,
        **{field_name: _not_applicable(kind, titles[kind], reason) for kind, field_name in signals.items()},
    )  # fmt: skip


def audio_evidence(original: Path, info: ProbeInfo, settings: Settings) -> AudioEvidence:
    """The audio signals of the original (not applicable, with the reason, when it has no audio)."""
    import av

    if not info.has_audio or info.audio_stream is None:
        return _none(NO_AUDIO, info)
    try:
        windows = decode_windows(original, info)
        if windows.samples == 0:
            return _none("the original's audio track holds no samples that decode", info)
        filters = f"ebur128=peak=none:framelog=quiet,silencedetect=noise={SILENCE_DB:g}dB:duration={SILENCE_MIN_S:g}"
        log = filter_pass(original, info.demuxer, f"0:{info.audio_stream}", "-af", filters, settings)
        video_start = _video_start(original, info)
    except (MediaError, av.error.FFmpegError) as exc:  # damaged audio: the rest of the evidence stands
        return _none(f"the original's audio could not be measured ({str(exc)[:200]})", info)
    integrated, spread = _loudness(log)
    return AudioEvidence(
        applicable=True,
        stream_index=info.audio_stream,
        codec=info.audio_codec,
        channels=info.audio_channels,
        sample_rate=windows.sample_rate,
        start_s=round(windows.start_s, 3),
        duration_s=round(windows.duration_s, 3),
        integrated_lufs=integrated,
        loudness_range_lu=spread,
        peak_dbfs=round(20 * math.log10(max(windows.peak, 1e-6)), 2),
        loudness_method="ffmpeg ebur128 (EBU R128: integrated loudness, gated, and loudness range) on the "
        "original's audio; the peak is the highest decoded sample.",
        silence=silence_signal(log, video_start, windows),
        clipping=clipping_signal(windows),
        level_jumps=level_jump_signal(windows),
        duration_mismatch=duration_signal(windows, info.duration_s),
    )


def _video_start(path: Path, info: ProbeInfo) -> float:
    """The original's first video timestamp (s): ffmpeg's times (-copyts) minus this are on the video's axis."""
    with open_media(path, info.demuxer) as container:
        for stream in container.streams:
            if stream.index == info.video_stream:
                return _stream_start(stream) or 0.0
    return 0.0
