"""Media benchmark: sanitizing (remux vs re-encode vs moviepy) and frame sampling (vs full decode).

Run from the repository root:

    python bench/media.py              # 60 s and 10 min test clips (several minutes on 2 cores)
    python bench/media.py --quick      # 20 s and 2 min clips, a smoke run
    python bench/media.py --repeats 3  # best of 3 for the slow measurements too

Test clips (ffmpeg testsrc + a sine tone, h264/yuv420p + AAC in mp4, 2 s GOP) are made once
with the ffmpeg that vChat uses and kept in `--workdir` (default bench/.cache/). Every figure
is wall-clock seconds, best of N runs, and every ratio compares figures taken in the same run.
Targets are reported (PASS/MISS), not asserted: the script exits 0 either way.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import av  # noqa: E402

from core.config import Settings  # noqa: E402
from core.media.ffmpeg import ffmpeg_binary, run_ffmpeg  # noqa: E402
from core.media.frames import FrameSource  # noqa: E402
from core.media.probe import ProbeInfo, probe  # noqa: E402
from core.media.sanitize import ffmpeg_args, plan_sanitize, sanitize  # noqa: E402

T = TypeVar("T")
SAMPLE_COUNT = 32
MOVIEPY_PRESET = "medium"  # moviepy 2.x write_videofile's default, left as is


# --- results -----------------------------------------------------------------------------------


@dataclass
class Report:
    """Measured figures and ratios, printed as one table at the end."""

    figures: list[tuple[str, str]] = field(default_factory=list)
    ratios: list[tuple[str, float, float | None]] = field(default_factory=list)  # (name, value, target)

    def figure(self, name: str, value: str) -> None:
        self.figures.append((name, value))
        print(f"  {name}: {value}", flush=True)

    def ratio(self, name: str, value: float, target: float | None) -> None:
        self.ratios.append((name, value, target))
        print(f"  {name}: {value:.2f}x", flush=True)

    def table(self) -> str:
        width = max(len(name) for name, *_ in [*self.figures, *self.ratios])
        lines = [f"{'figure':<{width}}  value", f"{'-' * width}  {'-' * 40}"]
        lines += [f"{name:<{width}}  {value}" for name, value in self.figures]
        lines += ["", f"{'ratio':<{width}}  {'value':>9}  {'target':>8}  result", f"{'-' * width}  {'-' * 36}"]
        for name, value, target in self.ratios:
            goal = f">= {target:g}x" if target is not None else "(info)"
            verdict = ("PASS" if value >= target else "MISS") if target is not None else ""
            lines.append(f"{name:<{width}}  {value:>8.2f}x  {goal:>8}  {verdict}")
        return "\n".join(lines)


def best_of(repeats: int, run: Callable[[], tuple[float, T]]) -> tuple[float, T]:
    """Run `run` (which returns (seconds, result)) `repeats` times; the fastest run and its result."""
    best: tuple[float, T] | None = None
    for _ in range(max(1, repeats)):
        seconds, result = run()
        if best is None or seconds < best[0]:
            best = (seconds, result)
    assert best is not None
    return best


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def mb(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.1f} MB"


# --- test clips --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipSpec:
    seconds: int
    width: int = 1280
    height: int = 720
    fps: int = 30
    gop: int = 60

    @property
    def filename(self) -> str:
        return f"testsrc_{self.width}x{self.height}_{self.fps}fps_{self.seconds}s.mp4"

    @property
    def label(self) -> str:
        length = f"{self.seconds // 60} min" if self.seconds >= 120 else f"{self.seconds} s"
        return f"{length} {self.width}x{self.height} {self.fps} fps"


def generation_args(spec: ClipSpec, target: Path) -> list[str]:
    video = f"testsrc=size={spec.width}x{spec.height}:rate={spec.fps}:duration={spec.seconds}"
    audio = f"sine=frequency=440:sample_rate=48000:duration={spec.seconds}"
    return [
        *("-f", "lavfi", "-i", video, "-f", "lavfi", "-i", audio),
        *("-map", "0:v:0", "-map", "1:a:0"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-g", str(spec.gop), "-pix_fmt", "yuv420p"),
        *("-c:a", "aac", "-b:a", "128k", "-ac", "2", "-shortest"),
        *("-movflags", "+faststart", "-f", "mp4", "-y", str(target)),
    ]


def ensure_clip(spec: ClipSpec, workdir: Path) -> Path:
    """The clip for `spec` in `workdir`, generated (atomically) unless it is already there."""
    path = workdir / spec.filename
    if path.exists() and path.stat().st_size > 0:
        print(f"  reusing {path} ({mb(path)})", flush=True)
        return path
    workdir.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.partial.mp4")
    seconds, run = timed(lambda: run_ffmpeg(generation_args(spec, staging), timeout_s=3600))
    if run.returncode != 0 or not staging.exists():
        staging.unlink(missing_ok=True)
        raise SystemExit(f"ffmpeg could not generate {path.name}: {run.stderr[-500:]}")
    os.replace(staging, path)
    print(f"  generated {path} in {seconds:.1f} s ({mb(path)})", flush=True)
    return path


# --- sanitizing ---------------------------------------------------------------------------------


def remux_once(src: Path, info: ProbeInfo, target: Path, settings: Settings) -> tuple[float, str]:
    seconds, result = timed(lambda: sanitize(src, info, target, settings))
    assert result.path_taken == "remux", f"expected remux, got {result.path_taken}: {result.plan.reasons}"
    return seconds, result.path_taken


def reencode_once(src: Path, info: ProbeInfo, target: Path, settings: Settings) -> tuple[float, str]:
    """Our re-encode recipe, forced: the sanitize plan with video and audio set to encode."""
    plan = plan_sanitize(info, settings).model_copy(update={"video": "encode", "audio": "encode"})
    args = ffmpeg_args(src, info, target, plan, settings)
    seconds, run = timed(lambda: run_ffmpeg(args, settings.sanitize_timeout_s, settings.ffmpeg_path))
    if run.returncode != 0 or not target.exists() or target.stat().st_size == 0:
        raise SystemExit(f"our re-encode failed: {run.stderr[-500:]}")
    return seconds, plan.path_taken


def moviepy_once(src: Path, target: Path, tmp: Path) -> tuple[float, str]:
    """moviepy 2.x, defaults but for the codecs; its temporary audio file goes to `tmp`, not the cwd."""
    from moviepy import VideoFileClip

    def write() -> None:
        with VideoFileClip(str(src)) as clip:
            clip.write_videofile(
                str(target), codec="libx264", audio_codec="aac", logger=None, temp_audiofile_path=str(tmp)
            )

    seconds, _ = timed(write)
    return seconds, "moviepy"


def bench_sanitize(src: Path, label: str, tmp: Path, args: argparse.Namespace, report: Report) -> None:
    settings = Settings(data_dir=tmp, media_dir=tmp)
    info = probe(src, settings)
    print(f"sanitize {label}: plan {plan_sanitize(info, settings).path_taken}", flush=True)
    remux_target, ours_target, moviepy_target = tmp / "remux.mp4", tmp / "reencode.mp4", tmp / "moviepy.mp4"

    remux_s, _ = best_of(args.fast_repeats, lambda: remux_once(src, info, remux_target, settings))
    report.figure(f"sanitize remux, {label}", f"{remux_s:.3f} s ({mb(remux_target)}, best of {args.fast_repeats})")
    ours_s, _ = best_of(args.repeats, lambda: reencode_once(src, info, ours_target, settings))
    report.figure(
        f"sanitize re-encode (ours), {label}",
        f"{ours_s:.2f} s (libx264 {settings.sanitize_preset} crf {settings.sanitize_crf}, {mb(ours_target)})",
    )
    moviepy_s, _ = best_of(args.repeats, lambda: moviepy_once(src, moviepy_target, tmp))
    report.figure(
        f"moviepy write_videofile, {label}", f"{moviepy_s:.2f} s (libx264 {MOVIEPY_PRESET}, {mb(moviepy_target)})"
    )
    report.ratio("re-encode / remux", ours_s / remux_s, 20)
    report.ratio("moviepy / our re-encode", moviepy_s / ours_s, 1)


# --- frame sampling -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleRun:
    index_s: float
    sample_s: float
    plan: str
    decoded_frames: int
    frames_shape: tuple[int, ...]
    costs: tuple[int, int]  # FrameSource.plan_costs: (frames for one sequential pass, seek frame-equivalents)


def sample_once(path: Path, n: int, cold_index: bool) -> tuple[float, SampleRun]:
    """A fresh FrameSource and `n` uniform frames; with `cold_index` the index cache is removed first."""
    if cold_index:
        index_cache(path).unlink(missing_ok=True)
    started = time.perf_counter()
    source = FrameSource(path)
    indexed = time.perf_counter()
    sample = source.sample_uniform(n)
    done = time.perf_counter()
    costs = source.plan_costs(sample.indices)
    run = SampleRun(indexed - started, done - indexed, sample.plan, sample.decoded_frames, sample.frames.shape, costs)
    return done - started, run


def index_cache(path: Path) -> Path:
    return path.with_name(path.name + ".frames.json")


def uniform_picks(total: int, n: int) -> set[int]:
    return {min(total - 1, int((i + 0.5) * total / n)) for i in range(n)}


def decode_everything(path: Path, n: int, convert: bool) -> tuple[float, int]:
    """The naive sampler: decode every frame (converting each to RGB when `convert`), keep `n` of them.

    Only the picked arrays are kept: holding every converted frame of a long clip would not fit in memory."""

    def run() -> int:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            wanted = uniform_picks(stream.frames, n)
            picked, decoded = [], 0
            for i, frame in enumerate(container.decode(stream)):
                decoded += 1
                if convert:
                    array = frame.to_ndarray(format="rgb24")
                    if i in wanted:
                        picked.append(array)
            assert not convert or len(picked) == n, f"picked {len(picked)} of {n}"
            return decoded

    return timed(run)


def bench_sampling(src: Path, label: str, args: argparse.Namespace, report: Report) -> None:
    n = SAMPLE_COUNT
    print(f"sampling {n} frames from {label}", flush=True)
    cold_s, cold = best_of(args.fast_repeats, lambda: sample_once(src, n, cold_index=True))
    index_size = f"{index_cache(src).stat().st_size / 1e6:.1f} MB"
    report.figure(
        f"sample {n} (ours, cold index), {label}",
        f"{cold_s:.3f} s (index {cold.index_s:.3f} s + sample {cold.sample_s:.3f} s; "
        f"plan={cold.plan}, decoded_frames={cold.decoded_frames}, index file {index_size})",
    )
    report.figure(
        f"sample {n} plan costs, {label}",
        f"sequential {cold.costs[0]} frames vs seek {cold.costs[1]} frame-equivalents (FrameSource.plan_costs)",
    )
    warm_s, warm = best_of(args.fast_repeats, lambda: sample_once(src, n, cold_index=False))
    report.figure(
        f"sample {n} (ours, warm index), {label}",
        f"{warm_s:.3f} s (index load {warm.index_s:.3f} s + sample {warm.sample_s:.3f} s; "
        f"plan={warm.plan}, decoded_frames={warm.decoded_frames}, frames {'x'.join(map(str, warm.frames_shape))})",
    )
    rgb_s, total = best_of(args.repeats, lambda: decode_everything(src, n, convert=True))
    report.figure(f"full decode + rgb24 per frame, {label}", f"{rgb_s:.2f} s ({total} frames, full size, AUTO threads)")
    decode_s, _ = best_of(args.repeats, lambda: decode_everything(src, n, convert=False))
    report.figure(f"full decode only, {label}", f"{decode_s:.2f} s ({total} frames, AUTO threads)")
    report.ratio("full decode + rgb / ours (cold)", rgb_s / cold_s, 5)
    report.ratio("full decode + rgb / ours (warm)", rgb_s / warm_s, None)
    report.ratio("full decode only / ours (cold)", decode_s / cold_s, None)
    report.ratio("full decode only / ours (warm)", decode_s / warm_s, None)


# --- main ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=REPO_ROOT / "bench" / ".cache", help="clip cache folder")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each slow measurement (best is kept)")
    parser.add_argument("--fast-repeats", type=int, default=3, help="runs of the fast ones: remux and sampling")
    parser.add_argument("--quick", action="store_true", help="20 s and 2 min clips instead of 60 s and 10 min")
    return parser.parse_args(argv)


def machine_lines() -> list[str]:
    import moviepy

    return [
        f"machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}",
        f"ffmpeg: {ffmpeg_binary()}",
        f"PyAV {av.__version__} (FFmpeg libs {av.library_versions.get('libavcodec')}), moviepy {moviepy.__version__}",
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    short, long = (ClipSpec(20), ClipSpec(120)) if args.quick else (ClipSpec(60), ClipSpec(600))
    for line in machine_lines():
        print(line)
    print("clips:", flush=True)
    short_path, long_path = ensure_clip(short, args.workdir), ensure_clip(long, args.workdir)
    report = Report()
    with tempfile.TemporaryDirectory(prefix="vchat-bench-") as tmp_name:
        tmp = Path(tmp_name)
        bench_sanitize(short_path, short.label, tmp, args, report)
        bench_sampling(long_path, long.label, args, report)
    print()
    for line in machine_lines():
        print(line)
    print(report.table())
    print(f"\ntotal wall time: {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
