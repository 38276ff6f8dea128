"""Perception benchmark: our 3-round loop (one decoded pool) vs the official loop's video
handling (the video decoded again every round), on the same model, in the same run.

    python bench/perception.py                 # tiny random Qwen2.5-VL on the CPU, 60 s 720p clip
    python bench/perception.py --quick         # 20 s clip
    python bench/perception.py --arch 7b       # GPU only: the real 7B architecture, random weights

The tiny model answers nonsense, so rounds 1 and 2 of BOTH loops get the same fixed glue
appended to the model's text ([(10, 20), (40, 45)] seconds): both loops then sample the
same segments and do comparable work. Figures are wall seconds of one run; ratios compare
figures of this run. Targets are reported, not asserted.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import av  # noqa: E402
import numpy as np  # noqa: E402

from bench.media import ClipSpec, ensure_clip  # noqa: E402
from core.analysis import perception  # noqa: E402
from core.analysis.perception import Generation, parse_output, round_prompt  # noqa: E402
from core.config import Settings  # noqa: E402
from core.media.frames import FrameSample, FrameSource, smart_resize, uniform_times, weighted_times  # noqa: E402
from core.media.pipeline import prepare_media  # noqa: E402
from core.models.base import AnalysisRequest, GenerationSettings  # noqa: E402
from core.models.local.backend import generate_text  # noqa: E402
from core.models.local.loading import LoadedModel, ModelSource, load_model  # noqa: E402
from core.models.local.tiny import write_tiny_model  # noqa: E402

FIXED_GLUE = "<glue>[(10, 20), (40, 45)]</glue>"
ROUNDS = 3


class Timer:
    """Adds up the seconds spent in model calls."""

    def __init__(self) -> None:
        self.model_s = 0.0

    def generate(
        self, loaded: LoadedModel, sample: FrameSample, prompt: str, settings: GenerationSettings, number: int
    ) -> Generation:
        started = time.perf_counter()
        out = generate_text(loaded, sample, prompt, settings)
        self.model_s += time.perf_counter() - started
        if number < ROUNDS:
            out.text += FIXED_GLUE
        return out


def ours(path: Path, loaded: LoadedModel, request: AnalysisRequest) -> dict[str, float]:
    source = FrameSource(path)
    timer = Timer()
    started = time.perf_counter()
    records = perception.run_perception(
        source, request, lambda s, p, n: timer.generate(loaded, s, p, request.generation, n)
    )
    total = time.perf_counter() - started
    assert [r.sampling for r in records][1:] == ["weighted", "weighted"]
    return {
        "decoded": source.frames_decoded_total,
        "decode_s": total - timer.model_s,
        "model_s": timer.model_s,
        "total_s": total,
        "round1_decoded": records[0].decoded_frames,
    }


def decode_again(path: Path, times: list[float], max_pixels: int) -> tuple[FrameSample, int]:
    """The official loop's way: open the video and decode it from the start for this round."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate)
        total = stream.frames
        height, width = smart_resize(stream.codec_context.height, stream.codec_context.width, max_pixels=max_pixels)
        wanted = sorted({min(total - 1, round(t * fps)) for t in times})
        picked, decoded = {}, 0
        for i, frame in enumerate(container.decode(stream)):
            decoded += 1
            if i in wanted:
                picked[i] = frame.to_ndarray(format="rgb24", width=width, height=height)
            if i >= wanted[-1]:
                break
    indices = sorted(picked)
    sample = FrameSample(
        frames=np.stack([picked[i] for i in indices]),
        timestamps=[i / fps for i in indices],
        indices=indices,
        video_fps=fps,
        total_frames=total,
        duration_s=total / fps,
        sampling="official",
    )
    return sample, decoded


def official(path: Path, loaded: LoadedModel, request: AnalysisRequest, duration: float) -> dict[str, float]:
    timer = Timer()
    decoded = 0
    round1 = 0
    segments: list[tuple[float, float]] = []
    started = time.perf_counter()
    for number in range(1, ROUNDS + 1):
        times = (
            weighted_times(request.frames, duration, segments) if segments else uniform_times(request.frames, duration)
        )
        sample, count = decode_again(path, times, request.max_pixels)
        decoded += count
        round1 = round1 or count
        prompt = round_prompt(request.question, number, ROUNDS)
        out = timer.generate(loaded, sample, prompt, request.generation, number)
        parsed = parse_output(out.text, duration, expect_glue=number < ROUNDS)
        segments = [(s.start_s, s.end_s) for s in parsed.segments]
    total = time.perf_counter() - started
    return {
        "decoded": decoded,
        "decode_s": total - timer.model_s,
        "model_s": timer.model_s,
        "total_s": total,
        "round1_decoded": round1,
    }


def one_round(path: Path, request: AnalysisRequest) -> int:
    source = FrameSource(path)
    source.sample_uniform(request.frames, max_pixels=request.max_pixels)
    return source.frames_decoded_total


def build_model(arch: str, workdir: Path, settings: Settings) -> tuple[LoadedModel, Callable[[], str]]:
    tiny = write_tiny_model(workdir / "tiny")
    loaded = load_model(settings, ModelSource(tiny, "path", "tiny random Qwen2.5-VL"))
    if arch == "tiny":
        return loaded, lambda: "n/a (CPU)"
    import torch
    from transformers import AutoConfig, Qwen2_5_VLForConditionalGeneration

    config = AutoConfig.for_model(
        "qwen2_5_vl",
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        vocab_size=152064,
        max_position_embeddings=128000,
        rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]},
        vision_config={
            "depth": 32,
            "hidden_size": 1280,
            "intermediate_size": 3420,
            "num_heads": 16,
            "out_hidden_size": 3584,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "fullatt_block_indexes": [7, 15, 23, 31],
        },
        image_token_id=loaded.model.config.image_token_id,
        video_token_id=loaded.model.config.video_token_id,
        vision_start_token_id=loaded.model.config.vision_start_token_id,
        vision_end_token_id=loaded.model.config.vision_end_token_id,
    )
    with torch.device("cuda"):
        model = Qwen2_5_VLForConditionalGeneration._from_config(
            config, dtype=torch.bfloat16, attn_implementation="sdpa"
        ).eval()
    model.generation_config = loaded.model.generation_config
    loaded.model = model
    loaded.info.name, loaded.info.device, loaded.info.dtype = "random Qwen2.5-VL-7B", "cuda", "bfloat16"
    torch.cuda.reset_peak_memory_stats()
    return loaded, lambda: f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=["tiny", "7b"], default="tiny")
    parser.add_argument("--frames", default="32,64", help="frames per round, comma-separated")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="a 20 s clip instead of 60 s")
    parser.add_argument("--workdir", type=Path, default=REPO_ROOT / "bench" / ".cache")
    args = parser.parse_args(argv)
    if args.arch == "7b":
        import torch

        if not torch.cuda.is_available():
            print("error: --arch 7b needs an NVIDIA GPU (CUDA); none is available here.", file=sys.stderr)
            return 2
    started = time.perf_counter()
    print(f"machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}")
    spec = ClipSpec(seconds=20 if args.quick else 60)
    clip = ensure_clip(spec, args.workdir)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "data", media_dir=clip.parent)
        asset = prepare_media(clip.name, settings)
        path = Path(asset.sanitized.path)
        loaded, peak = build_model(args.arch, Path(tmp), settings)
        print(
            f"model: {loaded.info.name} on {loaded.info.device} ({loaded.info.dtype}); clip {spec.label}; "
            f"{ROUNDS} rounds; max_new_tokens {args.max_new_tokens}; fixed glue {FIXED_GLUE}"
        )
        rows = []
        for frames in (int(x) for x in args.frames.split(",")):
            request = AnalysisRequest(
                question="What happens in the video?",
                rounds=ROUNDS,
                frames=frames,
                generation=GenerationSettings(max_new_tokens=args.max_new_tokens),
            )
            ours(path, loaded, request)  # warm-up (allocator, kernels); not counted
            ref = one_round(path, request)
            a = ours(path, loaded, request)
            b = official(path, loaded, request, asset.sanitized.probe.duration_s)
            rows.append((frames, ref, a, b))
        print(f"\n{'frames':>6} {'loop':<9} {'decoded':>8} {'decode s':>9} {'model s':>8} {'total s':>8}")
        for frames, _ref, a, b in rows:
            for name, r in (("ours", a), ("official", b)):
                print(
                    f"{frames:>6} {name:<9} {r['decoded']:>8.0f} {r['decode_s']:>9.3f} {r['model_s']:>8.3f} "
                    f"{r['total_s']:>8.3f}"
                )
        print(f"\npeak GPU memory: {peak()}")
        print("\nratios (same run)")
        for frames, ref, a, b in rows:
            print(
                f"  {frames} frames: official/ours decoded frames {b['decoded'] / a['decoded']:.2f}x, "
                f"decode seconds {b['decode_s'] / a['decode_s']:.2f}x, total {b['total_s'] / a['total_s']:.2f}x"
            )
            whole = a["decoded"] / ref
            verdict = "PASS" if whole <= 1.2 else "MISS"
            print(
                f"    target: ours 3 rounds <= 1.2x one round: {a['decoded']:.0f} / {ref} frames = {whole:.2f}x "
                f"{verdict}  (rounds 2-3 decoded {a['decoded'] - a['round1_decoded']:.0f}; "
                f"official 3 rounds = {b['decoded'] / ref:.2f}x one round)"
            )
    print(f"\ntotal wall time: {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
