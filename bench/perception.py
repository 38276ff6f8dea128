"""Perception benchmark: our 3-round loop (each frame decoded once across rounds) vs the official
loop's video handling (the video decoded again every round), on the same model, in the same run.

    python bench/perception.py                 # tiny random Qwen2.5-VL on the CPU, 60 s 720p clip
    python bench/perception.py --quick         # 20 s clip
    python bench/perception.py --arch 7b       # GPU only: the real 7B architecture, random weights

Both loops run 3 rounds of N frames chosen by the official sampler (core/media/sampling.py: round
1 uniform, rounds 2-3 at 1.5x density inside the previous round's glue), so both show the model
exactly the same frames, and call the same `generate_text` on the same model. The random model
answers nonsense, so rounds 1 and 2 of BOTH loops get the same fixed glue appended to the
model's text ([(10, 20), (40, 45)] seconds on the 60 s clip, the same fractions of the 20 s one:
GLUE_FRACTIONS), read as video seconds as the official loop reads it. Every generate call
produces exactly --max-new-tokens tokens (min_new_tokens set on the model's generation
config), so model time does not depend on when a random model happens to stop.

Ours: `prepare_media` then `run_perception(FrameSource(sanitized), ...)`, a fresh FrameSource
per measured run (its frame index is read from the file stored beside the video): each round
decodes only the frames no earlier round decoded. Official style: every round opens the video
with PyAV and decodes from the start up to the round's last wanted frame (a generous baseline:
decord reads the whole file every round), converting the chosen frames to RGB at the same size.
"decode s" is the loop's seconds minus the model's seconds (decoding, RGB conversion, picking
frames, prompts and parsing).
Figures are wall seconds of one run; ratios compare figures of this run. Targets are
reported (PASS/MISS), not asserted: the script exits 0 either way.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import av  # noqa: E402
import numpy as np  # noqa: E402

from bench.media import ClipSpec, ensure_clip  # noqa: E402
from core.analysis.perception import parse_output, round_prompt, run_perception  # noqa: E402
from core.config import Settings  # noqa: E402
from core.media.frames import FrameSample, FrameSource, smart_resize  # noqa: E402
from core.media.pipeline import prepare_media  # noqa: E402
from core.media.sampling import plan_frames  # noqa: E402
from core.models.base import AnalysisRequest, GenerationSettings  # noqa: E402
from core.models.engine import Generation  # noqa: E402
from core.models.local.engine import generate_text  # noqa: E402
from core.models.local.loading import LoadedModel, load_model, resolve_source  # noqa: E402
from core.models.local.tiny import write_tiny_model  # noqa: E402

ROUNDS = 3
GLUE_FRACTIONS = ((1 / 6, 1 / 3), (2 / 3, 3 / 4))  # of the clip: [(10, 20), (40, 45)] s on 60 s
QUESTION = "What happens in the video?"


# --- the model -----------------------------------------------------------------------------------


class ModelCalls:
    """`generate_text` on one model, timed; the fixed glue appended to rounds before the last."""

    def __init__(self, loaded: LoadedModel, settings: GenerationSettings, glue: str) -> None:
        self.loaded = loaded
        self.settings = settings
        self.glue = glue
        self.seconds = 0.0
        self.tokens_in: list[int] = []

    def __call__(self, sample: FrameSample, prompt: str, number: int) -> Generation:
        started = time.perf_counter()
        out = generate_text(self.loaded, sample, prompt, self.settings)
        self.seconds += time.perf_counter() - started
        self.tokens_in.append(out.tokens_in)
        if number < ROUNDS:
            out.text += self.glue
        return out


def fixed_glue(duration: float) -> str:
    spans = ", ".join(f"({round(duration * a, 1):g}, {round(duration * b, 1):g})" for a, b in GLUE_FRACTIONS)
    return f"<glue>[{spans}]</glue>"


@contextmanager
def min_new_tokens(loaded: LoadedModel, count: int | None) -> Iterator[None]:
    config = loaded.model.generation_config
    before = config.min_new_tokens
    config.min_new_tokens = count
    try:
        yield
    finally:
        config.min_new_tokens = before


def prefill_seconds(loaded: LoadedModel, sample: FrameSample, prompt: str) -> float:
    """A generate call of one new token: the prefill (vision tower + prompt), as a proxy."""
    with min_new_tokens(loaded, None):
        started = time.perf_counter()
        generate_text(loaded, sample, prompt, GenerationSettings(max_new_tokens=1))
        return time.perf_counter() - started


SEVEN_B_TEXT = {
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "vocab_size": 152064,
    "max_position_embeddings": 128000,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]},
}
SEVEN_B_VISION = {
    "depth": 32,
    "hidden_size": 1280,
    "intermediate_size": 3420,
    "num_heads": 16,
    "in_channels": 3,
    "out_hidden_size": 3584,
    "patch_size": 14,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
    "tokens_per_second": 2,
    "window_size": 112,
    "fullatt_block_indexes": [7, 15, 23, 31],
    "hidden_act": "silu",
}


def seven_b_config(tiny: LoadedModel):  # type: ignore[no-untyped-def]
    """Qwen2.5-VL-7B-Instruct's architecture, with the tiny checkpoint's special token ids
    (its tokenizer and processor are reused; their ids fit inside the 7B vocabulary)."""
    from transformers import Qwen2_5_VLConfig

    ids = tiny.model.config
    return Qwen2_5_VLConfig(
        text_config=SEVEN_B_TEXT,
        vision_config=SEVEN_B_VISION,
        image_token_id=ids.image_token_id,
        video_token_id=ids.video_token_id,
        vision_start_token_id=ids.vision_start_token_id,
        vision_end_token_id=ids.vision_end_token_id,
        tie_word_embeddings=False,
    )


def build_model(arch: str, workdir: Path, settings: Settings) -> tuple[LoadedModel, Callable[[], str]]:
    tiny_dir = write_tiny_model(workdir / "tiny")
    loaded = load_model(settings, resolve_source(settings, tiny_dir))
    loaded.info.name = "tiny random Qwen2.5-VL"
    if arch == "tiny":
        return loaded, peak_memory_reader()
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    with torch.device("cuda"):
        model = Qwen2_5_VLForConditionalGeneration._from_config(
            seven_b_config(loaded), dtype=torch.bfloat16, attn_implementation=loaded.model.config._attn_implementation
        ).eval()
    model.generation_config = loaded.model.generation_config
    params = sum(p.numel() for p in model.parameters()) / 1e9
    loaded.model = model
    loaded.info.name = f"random Qwen2.5-VL-7B architecture ({params:.2f} B parameters)"
    loaded.info.device, loaded.info.dtype = "cuda", "bfloat16"
    torch.cuda.reset_peak_memory_stats()
    return loaded, peak_memory_reader()


def peak_memory_reader() -> Callable[[], str]:
    import torch

    if not torch.cuda.is_available():
        return lambda: "n/a (CPU)"
    return lambda: f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB (torch.cuda.max_memory_allocated)"


# --- the two loops -------------------------------------------------------------------------------


@dataclass
class LoopRun:
    decoded: int = 0  # frames the decoder produced (to reach the wanted ones, too)
    wanted_decoded: int = 0  # wanted frames converted to pictures, over all rounds
    union: int = 0  # distinct frames the rounds showed
    decode_s: float = 0.0
    model_s: float = 0.0
    total_s: float = 0.0
    round_decoded: list[int] = field(default_factory=list)
    round_s: list[float] = field(default_factory=list)
    indices: list[list[int]] = field(default_factory=list)  # per round
    segments: list[list[tuple[float, float]]] = field(default_factory=list)  # glue each round produced
    tokens_in: list[int] = field(default_factory=list)


def ours(path: Path, loaded: LoadedModel, request: AnalysisRequest, glue: str) -> LoopRun:
    calls = ModelCalls(loaded, request.generation, glue)
    started = time.perf_counter()
    source = FrameSource(path)  # fresh: nothing decoded yet (the frame index is read from beside the video)
    records = run_perception(source, request, calls)
    total = time.perf_counter() - started
    samplings = [r.sampling for r in records]
    assert samplings[1:] == ["weighted"] * (ROUNDS - 1), f"the fixed glue did not steer sampling: {samplings}"
    return LoopRun(
        decoded=source.frames_decoded_total,
        wanted_decoded=sum(source.decode_counts.values()),
        union=len(set().union(*(r.frame_indices for r in records))),
        decode_s=total - calls.seconds,
        model_s=calls.seconds,
        total_s=total,
        round_decoded=[r.decoded_frames for r in records],
        round_s=[r.seconds for r in records],
        indices=[list(r.frame_indices) for r in records],
        segments=[[(s.start_s, s.end_s) for s in r.segments] for r in records],
        tokens_in=calls.tokens_in,
    )


def decode_again(path: Path, indices: list[int], max_pixels: int) -> tuple[FrameSample, int]:
    """The official loop's way: open the video and decode it from the start for this round."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate)
        total = stream.frames
        height, width = smart_resize(stream.codec_context.height, stream.codec_context.width, max_pixels=max_pixels)
        wanted = set(indices)
        picked: dict[int, np.ndarray] = {}
        decoded = 0
        for i, frame in enumerate(container.decode(stream)):
            decoded += 1
            if i in wanted:
                picked[i] = frame.to_ndarray(format="rgb24", width=width, height=height)
            if i >= max(indices):
                break
    sample = FrameSample(
        frames=np.stack([picked[i] for i in indices]),
        timestamps=[i / fps for i in indices],
        indices=list(indices),
        video_fps=fps,
        total_frames=total,
        duration_s=total / fps,
        sampling="official",
        decoded_frames=decoded,
    )
    return sample, decoded


def official(path: Path, loaded: LoadedModel, request: AnalysisRequest, glue: str) -> LoopRun:
    calls = ModelCalls(loaded, request.generation, glue)
    run = LoopRun()
    key_time: list[tuple[float, float]] | None = None
    index = FrameSource(path).index  # the same T and fps the official reader would see
    started = time.perf_counter()
    for number in range(1, ROUNDS + 1):
        round_started = time.perf_counter()
        plan = plan_frames(index.count, index.fps, frames=request.frames, key_time=key_time)
        sample, count = decode_again(path, plan.indices, request.max_pixels)
        run.round_decoded.append(count)
        run.wanted_decoded += len(set(plan.indices))
        run.indices.append(list(plan.indices))
        out = calls(sample, round_prompt(request.question, number, ROUNDS), number)
        parsed = parse_output(out.text, sample.duration_s, expect_glue=number < ROUNDS)
        key_time = [(s.start_s, s.end_s) for s in parsed.segments] if parsed.glue_read else None
        run.segments.append(key_time or [])
        run.round_s.append(time.perf_counter() - round_started)
    run.total_s = time.perf_counter() - started
    run.model_s = calls.seconds
    run.decode_s = run.total_s - calls.seconds
    run.decoded = sum(run.round_decoded)
    run.union = len(set().union(*run.indices))
    run.tokens_in = calls.tokens_in
    return run


def one_round(path: Path, request: AnalysisRequest) -> tuple[int, float, FrameSample]:
    """The reference: one uniform round of N frames from a fresh FrameSource."""
    started = time.perf_counter()
    source = FrameSource(path)
    sample = source.sample_uniform(request.frames, max_pixels=request.max_pixels)
    return source.frames_decoded_total, time.perf_counter() - started, sample


def show_segments(segments: list[tuple[float, float]]) -> str:
    return "[" + ", ".join(f"({s:.1f}, {e:.1f})" for s, e in segments) + "]"


# --- main ----------------------------------------------------------------------------------------


def machine_lines(loaded: LoadedModel | None = None) -> list[str]:
    import torch
    import transformers

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    lines = [
        f"machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}",
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), transformers {transformers.__version__}, "
        f"PyAV {av.__version__} (libavcodec {av.library_versions.get('libavcodec')}), GPU: {gpu}",
    ]
    if loaded is not None:
        lines.append(f"model: {loaded.info.name} on {loaded.info.device} ({loaded.info.dtype})")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=["tiny", "7b"], default="tiny", help="7b needs a CUDA GPU")
    parser.add_argument("--frames", default="32,64", help="frames per round, comma-separated")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="a 20 s clip instead of 60 s")
    parser.add_argument("--workdir", type=Path, default=REPO_ROOT / "bench" / ".cache", help="clip cache folder")
    args = parser.parse_args(argv)
    if args.arch == "7b":
        import torch

        if not torch.cuda.is_available():
            print("--arch 7b needs a CUDA GPU and none is available here; run --arch tiny instead.", file=sys.stderr)
            return 2
    frame_counts = [int(x) for x in args.frames.split(",") if x.strip()]
    started = time.perf_counter()
    spec = ClipSpec(seconds=20 if args.quick else 60)
    print("clip:", flush=True)
    clip = ensure_clip(spec, args.workdir)
    rows = []
    with tempfile.TemporaryDirectory(prefix="vchat-bench-") as tmp:
        settings = Settings(data_dir=Path(tmp) / "data", media_dir=clip.parent)
        asset = prepare_media(clip.name, settings)
        path = Path(asset.sanitized.path)
        duration = asset.sanitized.probe.duration_s
        glue = fixed_glue(duration)
        index_started = time.perf_counter()
        FrameSource(path)  # builds the frame index (demux, no decoding) and stores it beside the video
        index_s = time.perf_counter() - index_started
        loaded, peak = build_model(args.arch, Path(tmp), settings)
        for line in machine_lines(loaded):
            print(line)
        print(
            f"clip {spec.label} (h264+aac, sanitized: {asset.sanitized.path_taken}); {ROUNDS} rounds; "
            f"max_new_tokens {args.max_new_tokens} (exactly, min_new_tokens set); frame index built once in "
            f"{index_s:.3f} s (demux only, stored beside the video, not counted below)"
        )
        print(
            f"scripted glue: the model's text + {glue} in rounds 1-{ROUNDS - 1} of BOTH loops "
            "(the random model writes no usable glue)",
            flush=True,
        )
        with min_new_tokens(loaded, args.max_new_tokens):
            for frames in frame_counts:
                request = AnalysisRequest(
                    question=QUESTION,
                    rounds=ROUNDS,
                    frames=frames,
                    generation=GenerationSettings(max_new_tokens=args.max_new_tokens),
                )
                ref_decoded, ref_s, ref_sample = one_round(path, request)
                prompt = round_prompt(QUESTION, 1, ROUNDS)
                ModelCalls(loaded, request.generation, glue)(ref_sample, prompt, 1)  # warm-up: not counted
                prefill_s = prefill_seconds(loaded, ref_sample, prompt)
                print(f"  {frames} frames: one round done, running ours...", flush=True)
                a = ours(path, loaded, request, glue)
                print(f"  {frames} frames: running official...", flush=True)
                b = official(path, loaded, request, glue)
                rows.append((frames, ref_decoded, ref_s, prefill_s, a, b))

    print()
    for line in machine_lines():
        print(line)
    print(f"clip {spec.label}; {ROUNDS} rounds; max_new_tokens {args.max_new_tokens}; glue {glue} (scripted)")
    print(
        f"\n{'frames':>6}  {'loop':<18} {'decoded':>8} {'wanted':>7} {'union':>6} {'decode s':>9} {'generate s':>11}"
        f" {'total s':>8}  {'decoded per round':<18} {'seconds per round':<20} tokens in per round"
    )
    for frames, ref_decoded, ref_s, _prefill, a, b in rows:
        print(f"{frames:>6}  {'one uniform round':<18} {ref_decoded:>8} {'-':>7} {'-':>6} {ref_s:>9.3f}")
        for name, r in (("ours (3 rounds)", a), ("official (3 rds)", b)):
            per_round = "/".join(str(x) for x in r.round_decoded)
            seconds = "/".join(f"{x:.2f}" for x in r.round_s)
            tokens = "/".join(str(x) for x in r.tokens_in)
            print(
                f"{frames:>6}  {name:<18} {r.decoded:>8} {r.wanted_decoded:>7} {r.union:>6} {r.decode_s:>9.3f}"
                f" {r.model_s:>11.3f} {r.total_s:>8.3f}  {per_round:<18} {seconds:<20} {tokens}"
            )
    print(f"\npeak GPU memory: {peak()}")
    print("\nprefill proxy (one generate call with max_new_tokens=1, round-1 frames)")
    for frames, _ref, _ref_s, prefill_s, a, _b in rows:
        per_call = a.model_s / ROUNDS
        print(
            f"  {frames} frames: prefill {prefill_s:.3f} s; a full call {per_call:.3f} s on average, so about "
            f"{max(0.0, per_call - prefill_s):.3f} s for the other {args.max_new_tokens - 1} tokens"
        )
    print("\nsame work? (both loops: the frames of each round, the glue each round produced in video seconds)")
    for frames, _ref, _ref_s, _prefill, a, b in rows:
        same = ", ".join(
            f"round {i + 1} {'same' if x == y else 'DIFFERENT'}"
            for i, (x, y) in enumerate(zip(a.indices, b.indices, strict=True))
        )
        print(f"  {frames} frames: frame indices {same}")
        for i in range(ROUNDS - 1):
            print(
                f"    glue of round {i + 1}: ours {show_segments(a.segments[i])}, "
                f"official {show_segments(b.segments[i])}"
            )
    print("\nratios official / ours (same run)")
    for frames, _ref, _ref_s, _prefill, a, b in rows:
        print(
            f"  {frames} frames: decoded frames {b.decoded / a.decoded:.2f}x, "
            f"decode seconds {b.decode_s / a.decode_s:.2f}x, total seconds {b.total_s / a.total_s:.2f}x"
        )
    print("\nexpected: ours converts each frame once (wanted = union); official decodes every round again")
    for frames, _ref, _ref_s, _prefill, a, b in rows:
        verdict = "PASS" if a.wanted_decoded == a.union else "MISS"
        print(
            f"  {frames} frames: ours wanted {a.wanted_decoded} = union {a.union}  {verdict};"
            f" official converted {b.wanted_decoded} frames for a union of {b.union}"
        )
    print(f"\ntotal wall time: {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
