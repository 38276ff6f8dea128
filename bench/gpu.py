"""GPU benchmark: the 3-round VideoChat-R1.5 analysis on the real 7B architecture, offline (random weights,
nothing downloaded). Run by hand on a machine with an NVIDIA GPU; it is not part of the test suite.

    python bench/gpu.py                                   # transformers; vLLM too when `import vllm` works
    python bench/gpu.py --frames 64 --max-new-tokens 128  # bigger rounds
    python bench/gpu.py --vllm-python /opt/vllm/bin/python  # vLLM from its own environment (it pins its torch)

1. transformers, bf16, SDPA (flash-attention 2 when installed): one 3-round analysis with vChat's loop (each
   frame decoded once across rounds) and with the official-style loop (the video decoded again every round),
   on the same model and the same frames (bench/perception.py's `ours` / `official`, `build_model("7b")`:
   Qwen2.5-VL-7B's configuration with random weights). Seconds per round, total, peak GPU memory.
2. When vLLM can be imported (here or by --vllm-python): `vllm serve` on the same architecture with random
   weights (`--load-format dummy`: a folder holding only the 7B config and the tiny checkpoint's tokenizer and
   processor), vChat's vLLM engine pointed at it (frames as JPEG, the sampled rate in the request), and
   --concurrency analyses at once (threads, as batch jobs run them) against the same number one after the
   other on transformers. The ratio of wall times is what one server buys over one transformers process.

The random model writes no usable glue, so rounds 1-2 of every analysis get the same fixed glue appended
(bench/perception.py's `fixed_glue`), as there. Every transformers call generates exactly --max-new-tokens
tokens (min_new_tokens); vLLM stops where the random model emits an end token, so tokens out are shown.
Prints one table. Without a CUDA GPU it prints one line and exits 2.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

SERVED_NAME = "OpenGVLab/VideoChat-R1_5-7B"
ROUNDS = 3


def no_gpu_reason() -> str | None:
    """Why there is no CUDA GPU to use, checked without importing torch first when the driver is absent."""
    if not Path("/proc/driver/nvidia/version").exists() and shutil.which("nvidia-smi") is None:
        return "no NVIDIA driver on this machine"
    import torch

    if not torch.cuda.is_available():
        return f"torch {torch.__version__} sees no CUDA device"
    return None


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=32, help="frames per round (default 32)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="tokens per round (default 64)")
    parser.add_argument("--concurrency", type=int, default=16, help="analyses at once through vLLM (default 16)")
    parser.add_argument("--vllm-python", help="a Python that can import vllm (default: this one, if it can)")
    parser.add_argument("--vllm-start-timeout", type=float, default=900, help="seconds to wait for vLLM to start")
    parser.add_argument("--skip-vllm", action="store_true", help="transformers only")
    parser.add_argument("--workdir", type=Path, default=REPO_ROOT / "bench" / ".cache", help="clip cache folder")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    reason = no_gpu_reason()
    if reason:
        print(f"bench/gpu.py needs a CUDA GPU and there is none here ({reason}); run it on a GPU machine.",
              file=sys.stderr)  # fmt: skip
        return 2
    return run(args)


# --- with a GPU -----------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    import torch

    from bench.media import ClipSpec, ensure_clip
    from bench.perception import ROUNDS as PERCEPTION_ROUNDS
    from bench.perception import build_model, fixed_glue, machine_lines, min_new_tokens, official, ours
    from core.config import Settings
    from core.media.pipeline import prepare_media
    from core.models.base import AnalysisRequest, GenerationSettings

    assert PERCEPTION_ROUNDS == ROUNDS
    started = time.perf_counter()
    clip = ensure_clip(ClipSpec(seconds=60), args.workdir)
    rows: list[tuple[str, str, str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="vchat-gpu-bench-") as tmp:
        work = Path(tmp)
        settings = Settings(data_dir=work / "data", media_dir=clip.parent)
        asset = prepare_media(clip.name, settings)
        path = Path(asset.sanitized.path)
        glue = fixed_glue(asset.sanitized.probe.duration_s)
        loaded, _peak = build_model("7b", work, settings)
        lines = machine_lines(loaded)
        attention = loaded.model.config._attn_implementation
        request = AnalysisRequest(
            question="What happens in the video?",
            rounds=ROUNDS,
            frames=args.frames,
            generation=GenerationSettings(max_new_tokens=args.max_new_tokens),
        )
        with min_new_tokens(loaded, args.max_new_tokens):
            ours(path, loaded, request, glue)  # warm-up (kernels, allocator), not counted
            for name, loop in (("ours (decode once)", ours), ("official (decode every round)", official)):
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                result = loop(path, loaded, request, glue)
                torch.cuda.synchronize()
                peak = f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB"
                per_round = "/".join(f"{s:.2f}" for s in result.round_s)
                tokens = "/".join(str(t) for t in result.tokens_in) + f" in, {args.max_new_tokens} out a round"
                rows.append((f"transformers {attention}, {name}", per_round, f"{result.total_s:.2f}", peak, tokens))

            vllm_python = None if args.skip_vllm else find_vllm(args.vllm_python)
            if vllm_python is not None:
                sequential = time.perf_counter()
                for _ in range(args.concurrency):
                    ours(path, loaded, request, glue)
                sequential_s = time.perf_counter() - sequential
                rows.append(
                    (f"transformers, {args.concurrency} analyses one after the other", "-", f"{sequential_s:.2f}",
                     "-", f"{args.max_new_tokens} out a round")
                )  # fmt: skip
        model_dir = dummy_checkpoint(loaded, work / "tiny", work / "vllm-model")
        del loaded
        gc.collect()
        torch.cuda.empty_cache()

        note = "skipped (--skip-vllm)" if args.skip_vllm else None
        if vllm_python is None and not args.skip_vllm:
            note = "vLLM is not importable here: pass --vllm-python PATH of an environment that has it"
        if vllm_python is not None:
            concurrent_s, tokens_out, server_note = vllm_concurrent(
                vllm_python, model_dir, path, settings, request, glue, args, work
            )
            rows.append(
                (f"vLLM, {args.concurrency} analyses at once", "-", f"{concurrent_s:.2f}", "server's",
                 f"{tokens_out} out in all")
            )  # fmt: skip
            note = f"ratio transformers one after the other / vLLM at once: {sequential_s / concurrent_s:.2f}x"
            note += f" ({server_note})"

    print()
    for line in lines:
        print(line)
    print(f"clip 60 s 1280x720 30 fps; {ROUNDS} rounds of {args.frames} frames; scripted glue {glue}\n")
    header = ("", "seconds per round", "total s", "peak GPU memory", "tokens")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(5)]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
    if note:
        print(f"\n{note}")
    print(f"\ntotal wall time: {time.perf_counter() - started:.1f} s")
    return 0


def find_vllm(python: str | None) -> str | None:
    candidate = python or sys.executable
    probe = subprocess.run([candidate, "-c", "import vllm"], capture_output=True, timeout=300)
    return candidate if probe.returncode == 0 else None


def dummy_checkpoint(loaded, tiny: Path, folder: Path) -> Path:  # type: ignore[no-untyped-def]
    """The 7B configuration (bf16) with the tiny checkpoint's tokenizer and processor, and no weights: what
    `vllm serve --load-format dummy` needs to build the architecture with random weights."""
    folder.mkdir(parents=True, exist_ok=True)
    config = loaded.model.config
    config.architectures = ["Qwen2_5_VLForConditionalGeneration"]
    config.dtype = "bfloat16"
    config.save_pretrained(folder)
    for item in tiny.iterdir():
        if item.is_file() and item.name != "config.json" and not item.name.endswith((".safetensors", ".bin")):
            shutil.copy2(item, folder / item.name)
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def vllm_concurrent(python, model_dir, path, settings, request, glue, args, work):  # type: ignore[no-untyped-def]
    """Start vLLM on the dummy checkpoint, run `args.concurrency` analyses through vChat's engine at once."""
    from core.analysis.perception import run_perception
    from core.media.frames import FrameSource
    from core.models.vllm.engine import VllmEngine

    port = free_port()
    log = (work / "vllm.log").open("w")
    server = subprocess.Popen(
        [python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir), "--served-model-name",
         SERVED_NAME, "--load-format", "dummy", "--host", "127.0.0.1", "--port", str(port), "--max-model-len",
         "32768", "--gpu-memory-utilization", "0.85", "--dtype", "bfloat16"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        wait_healthy(port, server, args.vllm_start_timeout, work / "vllm.log")
        engine = VllmEngine(settings.model_copy(update={"vllm_url": [f"http://127.0.0.1:{port}/v1"]}))
        engine.check(request)
        tokens = []

        def analysis(_: int) -> None:
            def generate(sample, prompt, number):  # type: ignore[no-untyped-def]
                out = engine.generate(sample, prompt, request)
                tokens.append(out.tokens_out)
                if number < ROUNDS:
                    out.text += glue
                return out

            run_perception(FrameSource(path), request, generate)

        analysis(0)  # warm-up (CUDA graphs, the processor), not counted
        tokens.clear()
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.concurrency) as workers:
            list(workers.map(analysis, range(args.concurrency)))
        seconds = time.perf_counter() - started
        return seconds, sum(tokens), f"vLLM --load-format dummy, port {port}, log {work / 'vllm.log'}"
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=120)
        log.close()


def wait_healthy(port: int, server: subprocess.Popen, timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"vLLM exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(2)
    raise SystemExit(f"vLLM did not start within {timeout_s:.0f} s:\n{log.read_text()[-3000:]}")


if __name__ == "__main__":
    raise SystemExit(main())
