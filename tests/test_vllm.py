"""The vLLM engine (`--model vllm`) against tests/vllm_fake.py, a local server as strict as vLLM, through
the real `openai` client: the frames sent are the local engine's, the glue steers the next round,
adapters are served models, several servers share the load, and every way it can fail is one line."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from openai import BadRequestError, NotFoundError, OpenAI

from core.config import Settings
from core.errors import InputError, VChatError
from core.media.pipeline import MediaAsset, prepare_media
from core.media.sampling import plan_frames
from core.models.base import AnalysisRequest, GenerationSettings
from core.models.vllm.client import VllmUnavailable
from core.models.vllm.engine import VllmEngine, video_url
from tests.media_factory import read_frame_number
from tests.support import ask, run_cli
from tests.vllm_fake import BASE_MODEL, FakeVllm, Received

QUESTION = "Which number is shown when the count passes 150?"


@pytest.fixture
def fake():
    server = FakeVllm(adapters={"claims-v1": "/lora_adapters/claims-v1/final_checkpoint"}).start()
    yield server
    server.stop()


def vllm_settings(settings: Settings, *urls: str, **update: object) -> Settings:
    fast = {"vllm_url": list(urls), "vllm_backoff_s": 0.02, "vllm_timeout_s": 10, "vllm_connect_timeout_s": 2}
    return settings.model_copy(update={**fast, **update})


@pytest.fixture
def numbered(settings: Settings, clips: dict[str, Path]) -> MediaAsset:
    """The 10 s clip whose frame k shows k in binary, through the media pipeline."""
    shutil.copyfile(clips["numbered"], settings.media_dir / "numbered.mp4")
    return prepare_media("numbered.mp4", settings)


def request(rounds: int = 2, frames: int = 8, **generation: object) -> AnalysisRequest:
    settings = GenerationSettings(**{"max_new_tokens": 64, **generation})
    return AnalysisRequest(question=QUESTION, rounds=rounds, frames=frames, generation=settings)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- what the model is shown -------------------------------------------------------------------------


def test_the_frames_sent_are_the_local_engines(settings, numbered, fake, tiny_model):
    """Same request, no glue: both engines see the same frames of every round; the vLLM one gets them as
    JPEG (pixels within JPEG's error, indices, times and rate exact) with the metadata the local engine
    gives its processor, so the model's time axis is the same."""
    fake.reply = lambda r: "<think>Counting.</think><answer>151</answer>"
    ask_for = request(rounds=2, frames=8, max_new_tokens=4)
    local = ask("local", settings, numbered, ask_for, model_path=tiny_model)
    served = ask("vllm", vllm_settings(settings, fake.base_url), numbered, ask_for)

    assert served.model.backend == "vllm" and served.model.name == BASE_MODEL
    assert len(fake.received) == 2
    source = numbered.frames(settings)
    for ours, theirs, sent in zip(served.rounds, local.rounds, fake.received, strict=True):
        assert ours.frame_indices == theirs.frame_indices
        assert ours.frame_timestamps == theirs.frame_timestamps
        assert ours.sampled_fps == theirs.sampled_fps
        assert ours.second_per_grid_t == pytest.approx(theirs.second_per_grid_t), "the same time axis"
        shown = source.sample_indices(theirs.frame_indices, max_pixels=ask_for.max_pixels)
        assert sent.frame_formats == ["jpeg"] * len(shown.indices)
        assert [read_frame_number(frame) for frame in sent.frames] == theirs.frame_indices
        pixels = np.stack(sent.frames).astype(np.int16)
        assert pixels.shape == shown.frames.shape
        error = np.abs(pixels - shown.frames.astype(np.int16))
        assert error.mean() < 1.5 and np.percentile(error, 99.9) < 24, (error.mean(), error.max())
        video = sent.media_io_kwargs["video"]
        assert video["frames_indices"] == theirs.frame_indices and video["num_frames"] == len(shown.indices)
        assert video["total_num_frames"] == 250 and video["do_sample_frames"] is False
        assert len(video["frames_indices"]) / video["total_num_frames"] * video["fps"] == pytest.approx(
            ours.sampled_fps
        )
        assert sent.mm_processor_kwargs == {"fps": ours.sampled_fps, "do_sample_frames": False, "do_resize": False}
        assert sent.prompt == ours.prompt == theirs.prompt
        content = sent.body["messages"][0]["content"]
        assert [part["type"] for part in content] == ["video_url", "text"], "the video, then the question"
        assert sent.body["temperature"] == 0.0 and sent.body["max_tokens"] == 4
        assert sent.body["repetition_penalty"] == ask_for.generation.repetition_penalty


def test_glue_from_the_server_steers_round_2(settings, numbered, fake):
    def reply(received: Received) -> str:
        if "<glue>" in received.prompt:
            return "<think>It passes 150 near 6 s.</think><answer>151</answer><glue>[(4.0, 6.0)]</glue>"
        return "<think>Seen closely.</think><answer>It shows 151 at 6.04 s.</answer>"

    fake.reply = reply
    result = ask("vllm", vllm_settings(settings, fake.base_url), numbered, request(rounds=2, frames=32))

    first, second = result.rounds
    assert [(s.start_s, s.end_s) for s in first.segments] == [(4.0, 6.0)]
    assert first.sampling == "uniform" and second.sampling == "weighted"
    assert result.answer == "It shows 151 at 6.04 s."
    assert second.tokens_in == fake.received[1].prompt_tokens and second.tokens_out > 0
    numbers = [[read_frame_number(frame) for frame in sent.frames] for sent in fake.received]
    assert numbers == [first.frame_indices, second.frame_indices], "the server saw the frames the rounds record"
    assert second.frame_indices == plan_frames(250, 25.0, frames=32, key_time=[(4.0, 6.0)]).indices
    inside = [sum(100 <= n < 150 for n in round_numbers) for round_numbers in numbers]
    assert inside[1] > inside[0], f"round 2 looks more densely at 4-6 s: {inside}"


def test_adapters_are_served_models_by_name(settings, numbered, fake, tmp_path):
    served = vllm_settings(settings, fake.base_url)
    base = ask("vllm", served, numbered, request(rounds=1))
    tuned = ask("vllm", served, numbered, request(rounds=1).model_copy(update={"adapter": "claims-v1"}))
    assert [sent.model for sent in fake.received] == [BASE_MODEL, "claims-v1"]
    assert base.model.adapter is None and tuned.model.adapter == "claims-v1"
    engine = VllmEngine(served)
    assert engine.identity(request().model_copy(update={"adapter": "claims-v1"}))["adapter"] == "claims-v1"

    # An adapter the server does not have yet is loaded into it, when vChat knows where the server sees it.
    fake.runtime_lora = True
    loading = vllm_settings(settings, fake.base_url, vllm_adapters_dir="/lora_adapters")
    ask("vllm", loading, numbered, request(rounds=1).model_copy(update={"adapter": "new-run"}))
    assert fake.loads == [{"lora_name": "new-run", "lora_path": "/lora_adapters/new-run/final_checkpoint"}]
    assert fake.received[-1].model == "new-run"


def test_several_servers_share_the_load_from_several_threads(settings, numbered):
    slow = [FakeVllm(delay_s=0.4).start() for _ in range(2)]
    try:
        engine = VllmEngine(vllm_settings(settings, *(f.base_url for f in slow)))
        engine.check(request())
        sample = numbered.frames(settings).sample_uniform(4)
        answers: list[str] = []
        errors: list[BaseException] = []

        def one() -> None:
            try:
                answers.append(engine.generate(sample, "Which number? <glue>", request()).text)
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=one) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not errors and len(answers) == 6
        assert [len(f.received) for f in slow] == [3, 3], "least outstanding requests: 3 each"
        assert [f.max_in_flight for f in slow] == [3, 3], "the servers had them at the same time"
    finally:
        for server in slow:
            server.stop()


def test_a_dead_server_beside_a_live_one_is_routed_around(settings, numbered, fake):
    dead = f"http://127.0.0.1:{free_port()}/v1"
    result = ask("vllm", vllm_settings(settings, dead, fake.base_url), numbered, request(rounds=1))
    assert result.answer and len(fake.received) == 1


def test_429_and_5xx_are_retried(settings, numbered, fake):
    fake.fail_next = [503, 429, 502]
    engine = VllmEngine(vllm_settings(settings, fake.base_url, vllm_retries=3))
    sample = numbered.frames(settings).sample_uniform(4)
    assert engine.generate(sample, "Which number?", request()).text
    assert len(fake.rejected) == 3 and len(fake.received) == 1

    fake.fail_next = [503] * 3
    engine = VllmEngine(vllm_settings(settings, fake.base_url, vllm_retries=2))
    with pytest.raises(VChatError) as failed:
        engine.generate(sample, "Which number?", request())
    assert failed.value.exit_code == 1 and "failed (503" in str(failed.value)


def test_a_server_that_does_not_answer_in_time(settings, numbered, fake):
    fake.delay_s = 1.0
    engine = VllmEngine(vllm_settings(settings, fake.base_url, vllm_timeout_s=0.3, vllm_retries=1))
    sample = numbered.frames(settings).sample_uniform(4)
    with pytest.raises(VllmUnavailable, match=r"gave no answer within 0.3 s \(2 attempts\)"):
        engine.generate(sample, "Which number?", request())


# --- the command line ----------------------------------------------------------------------------------


def cli(tmp_path: Path, clips: dict[str, Path], *args: str, **env: str):  # type: ignore[no-untyped-def]
    (tmp_path / "videos").mkdir(exist_ok=True)
    shutil.copyfile(clips["numbered"], tmp_path / "videos" / "clip.mp4")
    env = {"VCHAT_ADAPTERS_DIR": str(tmp_path / "adapters"), "VCHAT_VLLM_BACKOFF_S": "0.02", **env}
    return run_cli(["analyze", "clip.mp4", "-Q", QUESTION, "--model", "vllm", *args], tmp_path, **env)


def test_cli_analyze_with_model_vllm(tmp_path, clips, fake):
    proc = cli(tmp_path, clips, "--rounds", "2", "--frames", "8", VCHAT_VLLM_URL=fake.base_url)
    assert proc.returncode == 0, proc.stderr.decode()[-800:]
    assert proc.stdout.decode().strip() == "The number grows."
    assert "round 1: uniform, segments: 1.0-2.0 s\nround 2: weighted" in proc.stderr.decode(), "glue steered round 2"
    assert [sent.stream for sent in fake.received] == [True, True], "the CLI streams the rounds"
    again = cli(tmp_path, clips, "--rounds", "2", "--frames", "8", "--json", VCHAT_VLLM_URL=fake.base_url)
    assert again.returncode == 0 and '"backend": "vllm"' in again.stdout.decode()


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("no url", "No vLLM server is set (VCHAT_VLLM_URL is empty)."),
        ("dead", "cannot be reached (Connection refused). Start it (docker compose --profile vllm up -d)"),
        ("model not served", "does not serve the model 'OpenGVLab/VideoChat-R1_5-7B' (it serves: other/model)."),
        ("adapter not loaded", "has no LoRA adapter 'claims-v2' loaded (it serves: OpenGVLab/VideoChat-R1_5-7B, "),
        ("context too long", "The request is longer than the vLLM server's context (This model's maximum context"),
    ],
)
def test_cli_failures_are_one_line_and_exit_2(tmp_path, clips, fake, case, expected):
    url, args = fake.base_url, []
    if case == "no url":
        url = ""
    elif case == "dead":
        url = f"http://127.0.0.1:{free_port()}/v1"
    elif case == "model not served":
        fake.base_model, fake.adapters = "other/model", {}
    elif case == "adapter not loaded":
        args = ["--adapter", "claims-v2"]
    elif case == "context too long":
        fake.max_model_len = 400
    proc = cli(tmp_path, clips, "--rounds", "1", "--frames", "8", *args, VCHAT_VLLM_URL=url)
    stderr = proc.stderr.decode()
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode == 2, stderr[-800:]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr[-800:]
    assert expected in errors[0], errors[0]
    if case != "context too long":  # the input is inspected first, then the engine; nothing slow ran
        assert "[sanitize]" not in stderr and "[model]" not in stderr, stderr[-800:]
        assert not [p for p in (tmp_path / "data").rglob("*") if "sanitized" in p.parts]


# --- the stand-in is as strict as vLLM ---------------------------------------------------------------


def test_the_stand_in_refuses_what_vllm_refuses(fake, settings, numbered):
    client = OpenAI(base_url=fake.base_url, api_key="EMPTY", max_retries=0)
    sample = numbered.frames(settings).sample_uniform(2)
    jpeg = video_url(sample)

    def send(content, model=BASE_MODEL):  # type: ignore[no-untyped-def]
        return client.chat.completions.create(model=model, messages=[{"role": "user", "content": content}])

    text = {"type": "text", "text": "What is shown?"}
    assert send([{"type": "video_url", "video_url": {"url": jpeg}}, text]).choices[0].message.content
    with pytest.raises(NotFoundError, match=r"The model `nope` does not exist\."):
        send([text], model="nope")
    refused = [
        [{"type": "video_url", "video_url": {"url": jpeg}}],  # no text
        [{"type": "video_url", "video_url": {"url": "https://example.org/clip.mp4"}}, text],
        [{"type": "video_url", "video_url": {"url": "data:video/jpeg;base64,bm90IGFuIGltYWdl"}}, text],
        [{"type": "video_url", "video_url": {"url": "data:video/jpeg;base64,%%%"}}, text],
        [{"type": "video_url", "video_url": {"url": jpeg}}, {"type": "video_url", "video_url": {"url": jpeg}}, text],
        [{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}, text],
    ]
    for content in refused:
        with pytest.raises(BadRequestError):
            send(content)
    assert len(fake.received) == 1 and len(fake.rejected) == len(refused) + 1


def test_streamed_rounds_report_their_text_and_tokens(settings, numbered, fake):
    engine = VllmEngine(vllm_settings(settings, fake.base_url))
    sample = numbered.frames(settings).sample_uniform(4)
    seen: list[tuple[str, int]] = []
    generation = engine.generate(
        sample, "Which number? <glue>", request(), lambda text, tokens: seen.append((text, tokens))
    )
    assert seen[-1][0] == generation.text and [tokens for _, tokens in seen] == list(range(1, len(seen) + 1))
    assert generation.tokens_out == len(seen) == len(generation.text.split(" "))
    assert fake.received[0].body["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}


def test_readiness_says_what_to_know_without_calling_the_server(settings, fake):
    assert VllmEngine(settings).readiness(request())[0].state == "blocked"
    lines = VllmEngine(vllm_settings(settings, fake.base_url)).readiness(request())
    assert [line.state for line in lines] == ["ready"] and fake.base_url in lines[0].text
    tuned = VllmEngine(vllm_settings(settings, fake.base_url)).readiness(request().model_copy(update={"adapter": "x"}))
    assert tuned[-1].state == "note" and "asked of the server by name" in tuned[-1].text
    assert fake.received == [] and fake.rejected == []


def test_an_unknown_adapter_is_refused_before_any_download(settings, fake):
    engine = VllmEngine(vllm_settings(settings, fake.base_url))
    with pytest.raises(InputError, match="has no LoRA adapter 'claims-v9' loaded"):
        engine.check(request().model_copy(update={"adapter": "claims-v9"}))
    with pytest.raises(InputError, match="is not an adapter name"):  # it could become a path on the server
        engine.check(request().model_copy(update={"adapter": "../../etc"}))


def test_the_gpu_benchmark_says_in_one_line_that_it_needs_a_gpu():
    """bench/gpu.py is run by hand on a GPU machine; without one (here, or with the GPUs hidden) it stops at once."""
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, str(root / "bench" / "gpu.py")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("bench/gpu.py needs a CUDA GPU"), proc.stderr
