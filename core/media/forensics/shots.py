"""Shots and keyframes of the sanitized video.

Cuts are found by two PySceneDetect detectors fed through their documented frame API
(`process_frame`) with the small frames of the one decode (`core.media.forensics.scan`):
ContentDetector (change of hue, saturation and brightness) and HashDetector (perceptual hash); a
cut is where either fires. Measured on splices at 3.0 s (PySceneDetect 0.7.2, defaults): testsrc2
then SMPTE bars, and testsrc2 then Mandelbrot, were cut at 3.0 s by Content, Adaptive, Histogram
and Hash alike; testsrc2 then testsrc2 17 s later under a slow hue sweep (the same scene, a jump in
time) was cut at 3.0 s only by HashDetector, while AdaptiveDetector added two false cuts and
HistogramDetector one every 0.6 s. Each shot's keyframe is then decoded at full size (a seek to the
keyframe before it, or decoding on) and saved as JPEG with its presentation time from the frame
index (never frame number / fps).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from core.media.forensics.models import Keyframe, Shot, ShotEvidence
from core.media.frames import FrameIndex
from core.media.sniff import open_media
from core.media.storage import atomic_write_bytes

if TYPE_CHECKING:
    import av
    import numpy as np

DETECT_WIDTH = 256  # PySceneDetect's DEFAULT_MIN_WIDTH: its own auto-downscale target
CONTENT_THRESHOLD = 27.0  # ContentDetector's default
HASH_THRESHOLD = 0.35  # HashDetector's default
MIN_SHOT_FRAMES = 15  # PySceneDetect's default min_scene_len
JPEG_QUALITY = 90
MAX_SHOTS = 200
METHOD = (
    "PySceneDetect {version} on every frame of the sanitized video scaled to {width} px wide: a cut where "
    f"ContentDetector (HSV change >= {CONTENT_THRESHOLD:g}) or HashDetector (perceptual-hash distance >= "
    f"{HASH_THRESHOLD:g}) fires, at least {MIN_SHOT_FRAMES} frames after the previous cut."
)
KEYFRAME_RULE = (
    "The sharpest frame of the middle half of each shot (largest variance of the Laplacian of its "
    "downscaled brightness; ties go to the frame nearest the middle), decoded at full size and saved as "
    f"JPEG (quality {JPEG_QUALITY}) with its presentation time."
)


def detection_size(width: int, height: int) -> tuple[int, int]:
    """The small frame size detection runs at: DETECT_WIDTH wide (never upscaled), both even."""
    small_w = min(width, DETECT_WIDTH) // 2 * 2
    return max(2, small_w), max(2, round(height * small_w / width) // 2 * 2)


class CutFinder:
    """Fed the small BGR frames in order: finds cuts, and keeps each frame's sharpness and the mean
    brightness change at each cut."""

    def __init__(self, fps: float) -> None:
        from scenedetect import ContentDetector, HashDetector
        from scenedetect.detector import FlashFilter

        self.fps = fps or 25.0
        # SUPPRESS: each detector decides on the frame itself (no look-back), as the cut list needs.
        self.content = ContentDetector(
            threshold=CONTENT_THRESHOLD, min_scene_len=MIN_SHOT_FRAMES, filter_mode=FlashFilter.Mode.SUPPRESS
        )
        self.hashed = HashDetector(threshold=HASH_THRESHOLD, min_scene_len=MIN_SHOT_FRAMES)
        self.cuts: list[int] = []  # first frame of each shot after the first
        self.strengths: list[float] = []
        self.sharpness: list[float] = []
        self._gray: np.ndarray | None = None

    @property
    def frames(self) -> int:
        return len(self.sharpness)

    def add(self, small: np.ndarray) -> None:
        import cv2
        import numpy as np
        from scenedetect import FrameTimecode

        i = len(self.sharpness)
        gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        timecode = FrameTimecode(i, self.fps)
        found = bool(self.content.process_frame(timecode, small)) | bool(self.hashed.process_frame(timecode, small))
        last = self.cuts[-1] if self.cuts else 0
        if found and i - last >= MIN_SHOT_FRAMES and self._gray is not None:
            self.cuts.append(i)
            self.strengths.append(float(np.abs(gray.astype(np.int16) - self._gray.astype(np.int16)).mean()))
        self.sharpness.append(float(cv2.Laplacian(gray, cv2.CV_32F).var()))
        self._gray = gray


def _keyframe_index(sharpness: list[float], first: int, last: int) -> int:
    quarter = (last - first + 1) // 4
    low, high = first + quarter, last - quarter
    middle = (first + last) / 2
    return max(range(low, high + 1), key=lambda i: (sharpness[i], -abs(i - middle)))


def _decode_at(path: Path, index: FrameIndex, wanted: list[int]) -> Iterator[tuple[int, int, av.VideoFrame]]:
    """(wanted, index, frame) for the frames at `wanted` (sorted), or the next decodable one after
    each: one seek per frame whose keyframe lies past the last frame decoded, else decoding on."""
    import av

    by_pts = {pts: i for i, pts in enumerate(index.pts)}
    with open_media(path, "mov") as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        position = -1
        frames: Iterator[av.VideoFrame] | None = None
        for target in wanted:
            if target <= position:
                continue
            key = index.keyframe_before(target)
            if frames is None or key > position:
                container.seek(index.pts[key], stream=stream, backward=True)
                frames = container.decode(stream)
            try:
                for frame in frames:
                    i = by_pts.get(frame.pts, -1) if frame.pts is not None else -1
                    if i < 0:
                        continue
                    position = i
                    if i >= target:
                        yield target, i, frame
                        break
            except av.error.FFmpegError:
                frames = None  # a damaged stretch: seek afresh for the next one


def build_shots(
    path: Path, index: FrameIndex, finder: CutFinder, folder: Path, max_shots: int = MAX_SHOTS
) -> ShotEvidence:
    """The shots the finder found, the first `max_shots` listed with a keyframe written to `folder`."""
    import cv2
    import scenedetect

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    count = min(finder.frames, index.count)
    width, _ = detection_size(index.width, index.height)
    method = METHOD.format(version=scenedetect.__version__, width=width)
    if count == 0:
        reason = "no frame of the video could be decoded"
        return ShotEvidence(
            applicable=False, reason=reason, method=method, summary=f"Not applicable: {reason}.", max_shots=max_shots
        )
    starts = [0, *(cut for cut in finder.cuts if cut < count)]
    bounds = [(first, (starts[n + 1] if n + 1 < len(starts) else count) - 1) for n, first in enumerate(starts)]
    listed = bounds[:max_shots]
    chosen = {_keyframe_index(finder.sharpness, first, last): n for n, (first, last) in enumerate(listed)}
    keyframes: dict[int, Keyframe] = {}
    for target, i, frame in _decode_at(path, index, sorted(chosen)):
        n = chosen[target]
        if i > listed[n][1]:  # the frame did not decode, nor any after it in this shot
            continue
        image = frame.to_ndarray(format="bgr24")
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:  # pragma: no cover - cv2 encodes any 8-bit BGR image
            continue
        seconds = index.seconds(i)
        filename = f"shot-{n + 1:03d}_{seconds:.3f}s.jpg"
        atomic_write_bytes(folder / filename, data.tobytes())
        keyframes[n] = Keyframe(shot=n + 1, frame_index=i, time_s=round(seconds, 6), path=str(folder / filename),
                                filename=filename, width=image.shape[1], height=image.shape[0])  # fmt: skip
    shots = [
        Shot(
            index=n + 1,
            start_s=round(index.seconds(first), 6),
            end_s=round(index.seconds(last + 1) if last + 1 < index.count else index.duration_s, 6),
            first_frame=first,
            last_frame=last,
            cut_strength=round(finder.strengths[n - 1], 2) if n else None,
            keyframe=keyframes.get(n),
        )
        for n, (first, last) in enumerate(listed)
    ]
    capped = len(bounds) > max_shots
    found = f"{len(shots)} shots" if len(shots) != 1 else "1 shot (no cut found)"
    summary = f"{found}, one keyframe each" + (
        f"; {len(bounds) - 1} cuts in all, only the first {max_shots} shots are listed" if capped else ""
    )
    return ShotEvidence(
        method=method,
        keyframe_rule=KEYFRAME_RULE,
        summary=summary + ".",
        shots=shots,
        cuts_found=len(bounds) - 1,
        capped=capped,
        max_shots=max_shots,
        keyframes_dir=str(folder),
    )
