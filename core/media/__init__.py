"""The media pipeline: fetch (URL guard, yt-dlp, uploads, local paths), probe, sanitize,
provenance, frames. `prepare_media` runs it; `MediaAsset` is what it returns."""

from core.media.frames import FrameSample, FrameSource, frame_source
from core.media.pipeline import MediaAsset, prepare_media

__all__ = ["FrameSample", "FrameSource", "MediaAsset", "frame_source", "prepare_media"]
