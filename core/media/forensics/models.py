"""What `gather_evidence` returns: the deterministic evidence about one video, as data.

Every time is in seconds of the video: 0 is its first frame (the sanitized file's first frame for
shots and picture signals, the original's first video frame for audio and stream signals; the two
agree unless the sanitized copy had to be re-timed or cut to the duration cap, which `notes` says).
Everything a report, a page or an export shows is here (keyframes as JPEG paths in the media store),
so nothing needs the video file again.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from core.media.provenance import C2paInfo

Severity = Literal["info", "warning"]


class Flag(BaseModel):
    """A provenance inconsistency or fact a checker looks for, as one plain sentence."""

    code: str  # stable id: "creation-after-upload", "camera-with-editor", "editor", "re-encoded", "c2pa-invalid", ...
    severity: Severity
    message: str


class Fact(BaseModel):
    """One line of the provenance panel (label, value), for display only."""

    label: str
    value: str


class ProvenanceEvidence(BaseModel):
    """The original's metadata and C2PA state, with the inconsistencies called out. Computed afresh on
    every call (cheap, no file read): it depends on where the bytes came from, not only on the bytes."""

    c2pa: C2paInfo
    flags: list[Flag] = Field(default_factory=list)
    facts: list[Fact] = Field(default_factory=list)

    @property
    def warnings(self) -> list[Flag]:
        return [flag for flag in self.flags if flag.severity == "warning"]


class Event(BaseModel):
    """One finding of a signal: a stretch [start_s, end_s] of the video (start_s == end_s for a moment,
    such as a level jump or a frame-rate change), a plain sentence, and the figure measured."""

    start_s: float
    end_s: float
    what: str
    value: float | None = None  # in the signal's `unit`


class Signal(BaseModel):
    """One deterministic check: what it found (events with times), or why it could not run."""

    kind: str  # "silence", "clipping", "level_jump", "duration_mismatch", "frozen", "black",
    # "picture_change", "frame_rate_change", "timestamp_gap"
    title: str  # e.g. "Silences"
    applicable: bool = True
    reason: str | None = None  # why not applicable, e.g. "the original has no audio track"
    method: str = ""  # how it was measured, thresholds included
    unit: str = ""  # the unit of each event's value ("dB", "s", "samples", ...)
    summary: str = ""  # one plain sentence: "2 silences, 4.0 s in all" / "none found" / the reason
    events: list[Event] = Field(default_factory=list)
    total: int = 0  # events found; more than len(events) when capped
    capped: bool = False

    @property
    def found(self) -> bool:
        return self.applicable and self.total > 0


class Keyframe(BaseModel):
    """One shot's keyframe: a JPEG in the media store, with its true presentation time."""

    shot: int  # 1-based shot number
    frame_index: int  # the frame's index in the sanitized video (FrameIndex order)
    time_s: float  # its presentation time (from the frame index, not frame number / fps)
    path: str  # absolute path of the JPEG
    filename: str  # the name it has in downloads and in the zip, e.g. "shot-003_12.345s.jpg"
    width: int
    height: int


class Shot(BaseModel):
    """A stretch between two cuts: [start_s, end_s), frames first_frame..last_frame (inclusive)."""

    index: int  # 1-based
    start_s: float
    end_s: float
    first_frame: int
    last_frame: int
    cut_strength: float | None = None  # mean change of luma at the cut (0-255); None for the first shot
    keyframe: Keyframe | None = None


class SearchLink(BaseModel):
    engine: str  # "Google Lens", "Bing", "Yandex", "TinEye"
    url: str


class Thumbnail(BaseModel):
    """A picture the platform publishes for the video (public URL), with reverse-image-search links."""

    url: str
    search_links: list[SearchLink] = Field(default_factory=list)


class ShotEvidence(BaseModel):
    applicable: bool = True
    reason: str | None = None
    method: str = ""
    keyframe_rule: str = ""
    summary: str = ""
    shots: list[Shot] = Field(default_factory=list)
    cuts_found: int = 0  # cuts the detector found (more than len(shots) - 1 when capped)
    capped: bool = False
    max_shots: int = 0
    keyframes_dir: str = ""  # the folder of the JPEGs in the media store
    thumbnails: list[Thumbnail] = Field(default_factory=list)  # URL sources only
    search_note: str = ""  # how to reverse-search the local keyframes (vChat uploads nothing)

    @property
    def keyframes(self) -> list[Keyframe]:
        return [shot.keyframe for shot in self.shots if shot.keyframe is not None]


class AudioEvidence(BaseModel):
    """Signals of the ORIGINAL's audio (the sanitized copy's silent track is never measured)."""

    applicable: bool
    reason: str | None = None  # "the original has no audio track" when there is none
    stream_index: int | None = None
    codec: str | None = None
    channels: int | None = None
    sample_rate: int | None = None
    start_s: float | None = None  # where the audio starts on the video's time axis
    duration_s: float | None = None  # measured from the decoded samples
    integrated_lufs: float | None = None  # EBU R128 integrated loudness (ffmpeg ebur128)
    loudness_range_lu: float | None = None  # EBU R128 loudness range (LRA)
    peak_dbfs: float | None = None  # the highest sample, in dB below full scale
    loudness_method: str = ""
    silence: Signal
    clipping: Signal
    level_jumps: Signal
    duration_mismatch: Signal

    @property
    def signals(self) -> list[Signal]:
        return [self.silence, self.clipping, self.level_jumps, self.duration_mismatch]


class VisualEvidence(BaseModel):
    """Cheap picture and stream signals: frozen and black stretches (sanitized frames), and changes of
    picture size, aspect or frame rate and gaps in the timestamps (the original's packets and keyframes)."""

    frozen: Signal
    black: Signal
    picture_changes: Signal
    frame_rate_changes: Signal
    timestamp_gaps: Signal

    @property
    def signals(self) -> list[Signal]:
        return [self.frozen, self.black, self.picture_changes, self.frame_rate_changes, self.timestamp_gaps]


class Evidence(BaseModel):
    """The deterministic evidence about one video (no model, no network)."""

    version: int
    sha256: str
    key: str  # the stored part's key: forensics version + the sanitized file's settings
    duration_s: float  # the sanitized video's length (the axis of shots and picture signals)
    frames: int  # frames in the sanitized video
    fps: float
    width: int  # the sanitized picture (square pixels)
    height: int
    provenance: ProvenanceEvidence
    shots: ShotEvidence
    audio: AudioEvidence
    visual: VisualEvidence
    notes: list[str] = Field(default_factory=list)  # what the reader should know about the axes and coverage
    stage_seconds: dict[str, float] = Field(default_factory=dict)  # when it was computed
    seconds: float = 0.0
    computed_at: str = ""
    reused: bool = False  # read back from the media store rather than computed by this call

    @property
    def signals(self) -> list[Signal]:
        """Every audio and visual signal, in a fixed order (for a timeline or a table)."""
        return [*self.audio.signals, *self.visual.signals]
