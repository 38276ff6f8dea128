"""LoRA fine-tuning on the tiny model: dataset checks, labels, targets, a real training run,
cancel and resume, and the run API the app uses (subprocess, progress, state).

The tiny checkpoint's random output head (std 0.02 over a hidden size of 64) can only express
near-uniform next-token distributions, whatever the layers below do; the training runs here use
a copy whose head is scaled up to a real model's logit range, so that a frozen head and a LoRA
on the layers can learn something at all. Everything else is the real code path.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from core.config import Settings
from core.models.local.adapters import find_adapters, get_adapter
from core.models.local.tiny import write_tiny_model
from finetune.dataset import parse_text, split_examples, validate_dataset
from finetune.lora import LORA_TARGET, PROJECTIONS, lora_config, lora_module_names, targets_language_model_only
from finetune.options import TrainOptions
from finetune.run_files import read_progress
from finetune.runs import cancel_run, list_runs, resume_run, run_state, start_run
from finetune.trainer import RunOutcome, train

ROOT = Path(__file__).resolve().parents[1]
QUESTION = "What colour is the video?"
RED, BLUE = (220, 20, 20), (20, 20, 220)
HEAD_SCALE = 25.0
# The training run every test here shares: 60 steps of one example each on 4 frames of 28x56. Checked
# over seeds 0-6: at lr 5e-3 for 60 steps each seed learns both colours; 30 steps at 1e-2 (the earlier
# setting) learned them for seed 0 only, and which frames were sampled decided the coin toss.
STEPS = 60
RUN_ARGS = {"max_steps": STEPS, "frames": 4, "max_pixels": 56 * 56, "grad_accum": 1, "lr": 5e-3, "eval_split": 0.25}


# --- generated data ------------------------------------------------------------------------------


def make_colour_clip(path: Path, rgb: tuple[int, int, int], seed: int, frames: int = 8, fps: int = 4) -> Path:
    """A 96x64 h264 clip of one colour with a grey square at a seeded random place in each frame."""
    rng = np.random.default_rng(seed)
    width, height = 96, 64
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "18"}
        for k in range(frames):
            image = np.empty((height, width, 3), np.uint8)
            image[:] = rgb
            x, y = rng.integers(0, width - 16), rng.integers(0, height - 16)
            image[y : y + 16, x : x + 16] = 128
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = k
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def text_line(video: str, answer: str) -> dict[str, str]:
    return {"video_path": video, "text": f"USER: {QUESTION}\nASSISTANT: {answer}"}


def chat_line(video: str, answer: str) -> dict[str, object]:
    return {
        "video_path": video,
        "messages": [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": answer}],
    }


@dataclass
class ColourWorld:
    """Settings in a session folder, a tiny model, and a red/blue dataset in both formats."""

    root: Path
    settings: Settings
    model: Path
    data: Path
    bad_line: int
    fresh: dict[str, Path]  # clips no training line uses, in the media dir

    def options(self, name: str, **extra: object) -> TrainOptions:
        return TrainOptions(
            data=self.data,
            output=self.settings.adapters_dir / name,
            model_path=self.model,
            **{**RUN_ARGS, "skip_bad_lines": True, "save_every": 10, **extra},
        )


def scaled_head_model(directory: Path) -> Path:
    """The tiny checkpoint with its output head scaled to a real model's logit range (see above)."""
    return write_tiny_model(directory, head_scale=HEAD_SCALE)


_cache: dict[str, object] = {}


def colour_world(factory: pytest.TempPathFactory) -> ColourWorld:
    if "world" not in _cache:
        root = factory.mktemp("finetune")
        settings = Settings(
            data_dir=root / "data", media_dir=root / "videos", adapters_dir=root / "lora_adapters", frame_cache_mb=64
        )
        settings.media_dir.mkdir()
        folder = root / "dataset"
        rows: list[object] = []
        for i in range(8):
            colour = "red" if i % 2 == 0 else "blue"
            make_colour_clip(folder / "clips" / f"{colour}{i}.mp4", RED if colour == "red" else BLUE, seed=i)
            line = chat_line if i % 3 == 0 else text_line
            rows.append(line(f"clips/{colour}{i}.mp4", f"It is {colour}."))
        rows.append({"video_path": "clips/red0.mp4", "text": f"USER: {QUESTION}"})  # no answer: skipped
        make_colour_clip(settings.media_dir / "media_blue.mp4", BLUE, seed=50)  # found in the media dir
        rows.append(text_line("media_blue.mp4", "It is blue."))
        fresh = {
            "red": make_colour_clip(settings.media_dir / "fresh_red.mp4", RED, seed=101),
            "blue": make_colour_clip(settings.media_dir / "fresh_blue.mp4", BLUE, seed=102),
        }
        _cache["world"] = ColourWorld(
            root, settings, scaled_head_model(root / "tiny"), write_jsonl(folder / "data.jsonl", rows), 9, fresh
        )
    return _cache["world"]  # type: ignore[return-value]


def trained_run(factory: pytest.TempPathFactory) -> RunOutcome:
    """The STEPS-step run on the colour dataset, trained once per session (in this process)."""
    if "run" not in _cache:
        world = colour_world(factory)
        _cache["run"] = train(world.options("colour"), world.settings, quiet=True)
    return _cache["run"]  # type: ignore[return-value]


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> ColourWorld:
    return colour_world(tmp_path_factory)


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> RunOutcome:
    return trained_run(tmp_path_factory)


def run_finetune(args: list[str], settings: Settings, cwd: Path) -> subprocess.CompletedProcess[str]:
    from finetune.runs import settings_env

    return subprocess.run(
        [sys.executable, "-m", "finetune", *args],
        cwd=cwd,
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=240,
    )


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


# --- the dataset ----------------------------------------------------------------------------------


def test_validation_reports_every_bad_line_with_its_number(tmp_path: Path, settings: Settings):
    folder = tmp_path / "ds"
    make_colour_clip(folder / "red.mp4", RED, seed=1)
    make_colour_clip(tmp_path / "outside.mp4", RED, seed=2)  # exists, but outside both allowed folders
    (folder / "notes.mp4").write_text("this is text, not a video")
    data = write_jsonl(
        folder / "data.jsonl",
        [
            text_line("red.mp4", "It is red."),  # 1 ok
            '{"video_path": "red.mp4", "text": "USER: hi',  # 2 bad JSON
            text_line("missing.mp4", "It is red."),  # 3 missing video
            text_line("../outside.mp4", "It is red."),  # 4 path escape with ..
            text_line(str(tmp_path / "outside.mp4"), "It is red."),  # 5 absolute path outside
            {"video_path": "red.mp4", "text": "USER: What colour is it?"},  # 6 no assistant turn
            chat_line("red.mp4", "It is red."),  # 7 ok, chat format
            text_line("notes.mp4", "It is red."),  # 8 not a video
            "",  # 9 blank: ignored
            {"video_path": "red.mp4", "messages": [{"role": "assistant", "content": "Hi"}]},  # 10 answer first
            text_line("red.mp4", "It is <|im_end|> red."),  # 11 a control token in the text
            {"video_path": "red.mp4"},  # 12 neither text nor messages
        ],
    )
    report = validate_dataset(data, settings)
    assert [e.line for e in report.examples] == [1, 7]
    errors = {e.line: e.message for e in report.errors}
    assert sorted(errors) == [2, 3, 4, 5, 6, 8, 10, 11, 12]
    assert "not valid JSON" in errors[2]
    assert "video not found" in errors[3] and "missing.mp4" in errors[3]
    assert "path escape" in errors[4] and "'..'" in errors[4]
    assert "path escape" in errors[5] and "outside" in errors[5]
    assert "no assistant turn" in errors[6]
    assert "notes.mp4" in errors[8] and "not a video" in errors[8].lower()
    assert "first turn" in errors[10]
    assert "<|im_end|>" in errors[11]
    assert "either 'text'" in errors[12]
    text = report.format()
    for line in errors:
        assert f"line {line}:" in text
    assert not report.ok and report.lines == 11


def test_the_original_text_format_keeps_every_turn():
    turns = parse_text(
        "SYSTEM: Be brief.\nUSER: What colour?\nASSISTANT: Red.\nUSER: Sure?\nIt is odd.\nASSISTANT: Yes."
    )
    assert [(t.role, t.text) for t in turns] == [
        ("system", "Be brief."),
        ("user", "What colour?"),
        ("assistant", "Red."),
        ("user", "Sure?\nIt is odd."),
        ("assistant", "Yes."),
    ]


def test_the_held_out_split_is_seeded_and_never_empty(world: ColourWorld):
    examples = validate_dataset(world.data, world.settings).examples
    train_a, eval_a = split_examples(examples, 0.25, seed=0)
    _, eval_b = split_examples(examples, 0.25, seed=0)
    assert [e.line for e in eval_a] == [e.line for e in eval_b] and len(eval_a) == 2
    assert sorted(e.line for e in train_a + eval_a) == [e.line for e in examples]
    assert len(split_examples(examples[:2], 0.01, seed=0)[1]) == 1


def test_cli_refuses_bad_data_and_existing_folders_and_leaves_nothing(tmp_path: Path, world: ColourWorld):
    data = write_jsonl(
        tmp_path / "bad.jsonl",
        [text_line("clips/none.mp4", "x"), "{oops", {"video_path": "a.mp4", "text": "USER: hi"}],
    )
    out = world.settings.adapters_dir / "refused"
    proc = run_finetune(
        ["--data", str(data), "--output", str(out), "--model-path", str(world.model)], world.settings, tmp_path
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    for line in (1, 2, 3):
        assert f"line {line}:" in proc.stderr
    assert "--skip-bad-lines" in proc.stderr
    assert not out.exists(), "a refused run must leave no folder behind"

    existing = world.settings.adapters_dir / "taken"
    existing.mkdir(parents=True)
    (existing / "notes.txt").write_text("mine")
    proc = run_finetune(["--data", str(world.data), "--output", str(existing)], world.settings, tmp_path)
    assert proc.returncode == 2 and "already exists" in proc.stderr and "Traceback" not in proc.stderr
    assert [p.name for p in existing.iterdir()] == ["notes.txt"] and (existing / "notes.txt").read_text() == "mine"

    proc = run_finetune(["--data", str(world.data), "--frames", "0"], world.settings, tmp_path)
    assert proc.returncode == 2 and "--frames" in proc.stderr and "Traceback" not in proc.stderr


# --- what is trained --------------------------------------------------------------------------------


def test_labels_are_exactly_the_assistant_answers_and_their_end_token(world: ColourWorld):
    from transformers import AutoProcessor

    from finetune.collator import IGNORE, encode_example, sample_frames
    from finetune.dataset import Example, Turn

    processor = AutoProcessor.from_pretrained(world.model)
    asset_clip = world.root / "dataset" / "clips" / "red0.mp4"
    report = validate_dataset(world.data, world.settings)
    sanitized = next(e.sanitized_path for e in report.examples if e.video_path == asset_clip.resolve())
    example = Example(
        1,
        "clips/red0.mp4",
        asset_clip,
        sanitized,
        "-",
        [
            Turn("system", "You watch videos."),
            Turn("user", QUESTION),
            Turn("assistant", "It is red."),
            Turn("user", "Are you sure?"),
            Turn("assistant", "Yes, red."),
        ],
    )
    options = TrainOptions(data=world.data, **{k: v for k, v in RUN_ARGS.items() if k in ("frames", "max_pixels")})
    sample = sample_frames(sanitized, options, world.settings)
    assert len(sample.indices) == 4
    inputs = encode_example(processor, example, sample)
    ids, labels = inputs["input_ids"][0], inputs["labels"][0]
    assert ids.shape == labels.shape
    tokenizer = processor.tokenizer
    # every labelled token is its own id; runs of labelled tokens are the answers, each closed by <|im_end|>
    kept = labels != IGNORE
    assert torch.equal(labels[kept], ids[kept])
    spans, current = [], []
    for position in range(len(ids)):
        if kept[position]:
            current.append(int(ids[position]))
        elif current:
            spans.append(tokenizer.decode(current))
            current = []
    assert spans == ["It is red.<|im_end|>", "Yes, red.<|im_end|>"]
    video_pad = tokenizer.convert_tokens_to_ids("<|video_pad|>")
    assert int((ids == video_pad).sum()) == int(inputs["video_grid_thw"].prod()) // 4  # 2x2 merge
    assert not kept[ids == video_pad].any()


def test_lora_is_on_the_language_model_projections_only(world: ColourWorld, trained: RunOutcome):
    from peft import get_peft_model
    from safetensors import safe_open
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(world.model)
    vision_projections = [n for n, _ in model.named_modules() if "visual" in n and n.endswith(("gate_proj", "up_proj"))]
    assert vision_projections, "the vision tower has MLP projections of the same names (the trap)"
    peft_model = get_peft_model(model, lora_config(8, 16, 0.0))
    names = lora_module_names(peft_model)
    assert len(names) == 2 * len(PROJECTIONS)  # 2 text layers x 7 projections
    assert targets_language_model_only(names)
    assert not any("visual" in n for n in names)
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_" in n and "language_model" in n for n in trainable)

    final = trained.run_dir / "final_checkpoint"
    config = json.loads((final / "adapter_config.json").read_text())
    assert config["target_modules"] == LORA_TARGET
    with safe_open(str(final / "adapter_model.safetensors"), framework="pt") as handle:
        keys = list(handle.keys())
    assert keys and all("language_model" in k and "visual" not in k for k in keys)
    assert not any("lm_head" in k or "embed" in k for k in keys)


# --- a training run -------------------------------------------------------------------------------


def test_a_short_run_learns_and_writes_its_folder(world: ColourWorld, trained: RunOutcome):
    run_dir = trained.run_dir
    assert trained.state == "finished" and trained.step == STEPS
    rows = read_progress(run_dir)
    train_rows = [r for r in rows if r["kind"] == "train"]
    assert [r["step"] for r in train_rows] == list(range(1, STEPS + 1))
    for row in train_rows:
        assert set(row) >= {"step", "epoch", "loss", "eval_loss", "lr", "seconds", "eta_s"}
    losses = [r["loss"] for r in train_rows]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.5 * first, f"training loss did not come down: first 5 {first:.3f}, last 5 {last:.3f}"
    seconds = train_rows[-1]["seconds"] - train_rows[0]["seconds"]
    print(
        f"\ntraining loss, mean of steps 1-5: {first:.3f}, of the last 5: {last:.3f}; "
        f"eval loss before {trained.eval_loss_before:.3f}, after {trained.eval_loss_after:.3f}; "
        f"{(STEPS - 1) / seconds:.1f} steps/s on {torch.get_num_threads()} CPU threads"
    )
    assert train_rows[-1]["eta_s"] == 0 and train_rows[-1]["epoch"] == pytest.approx(STEPS / 7, abs=1e-3)

    # before/after eval loss on the held-out split
    evals = [r for r in rows if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [0, STEPS]
    assert trained.eval_loss_before == evals[0]["eval_loss"] and trained.eval_loss_after == evals[1]["eval_loss"]
    assert trained.eval_loss_after < 0.5 * trained.eval_loss_before

    config = json.loads((run_dir / "run_config.json").read_text())
    assert config["sampling"]["frames"] == 4 and config["sampling"]["max_pixels"] == 56 * 56
    assert config["data"]["skipped_lines"] == [world.bad_line]
    assert len(config["data"]["eval_lines"]) == 2 and len(config["data"]["train_lines"]) == 7
    assert config["options"]["lr"] == RUN_ARGS["lr"] and config["lora"]["target_modules"] == LORA_TARGET
    state = run_state(run_dir)
    assert state.state == "finished" and state.adapter_ready and not state.resumable
    assert state.eval_loss_after == trained.eval_loss_after
    log = (run_dir / "train.log").read_text()
    assert "eval loss before" in log and f"line {world.bad_line}:" in log
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "trainer.pid").exists()

    adapter = get_adapter(world.settings, "colour")
    assert adapter.rank == 8 and adapter.sampling and adapter.sampling["frames"] == 4
    assert "colour" in [a.name for a in find_adapters(world.settings)]


def test_cancel_leaves_a_checkpoint_and_resume_ends_where_an_uninterrupted_run_does(
    world: ColourWorld, trained: RunOutcome
):
    """The app's path: start as a subprocess, watch progress, SIGTERM, resume. Resuming restores
    the adapter, optimizer, schedule, data order and RNG, so the adapter is the one the
    uninterrupted run made."""
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForImageTextToText

    options = world.options("colour-resumed")
    run_dir = start_run(world.settings, options)
    assert run_dir == world.settings.adapters_dir / "colour-resumed"
    assert run_state(run_dir).state in ("starting", "running")
    # step 1 is the warm-up step (learning rate 0): wait for a step that changed the weights
    wait_for(lambda: sum(r["kind"] == "train" for r in read_progress(run_dir)) >= 2, 180, "2 progress rows")
    assert run_state(run_dir).state == "running" and run_state(run_dir).phase == "training"
    assert cancel_run(run_dir)
    wait_for(lambda: not run_state(run_dir).active, 60, "the trainer to stop")
    state = run_state(run_dir)
    assert state.state == "cancelled", (state, (run_dir / "console.log").read_text())
    assert 2 <= state.step < STEPS and state.resumable and not state.adapter_ready
    stopped_at = state.step
    print(f"\ncancelled at step {stopped_at} of {STEPS}")
    assert [r["step"] for r in read_progress(run_dir) if r["kind"] == "train"] == list(range(1, stopped_at + 1))
    assert not cancel_run(run_dir), "nothing is running any more"

    # the checkpoint is a usable adapter by itself
    checkpoint = run_dir / "checkpoints" / f"step-{stopped_at:06d}"
    assert (checkpoint / "adapter_config.json").is_file() and (checkpoint / "trainer_state.pt").is_file()
    base = AutoModelForImageTextToText.from_pretrained(world.model)
    loaded = PeftModel.from_pretrained(base, str(checkpoint))
    b_weights = [p for n, p in loaded.named_parameters() if "lora_B" in n]
    assert b_weights and any(float(p.abs().sum()) > 0 for p in b_weights), "the checkpoint holds trained weights"

    resume_run(world.settings, run_dir)
    wait_for(lambda: run_state(run_dir).state not in ("starting", "running", "cancelled"), 180, "the resumed run")
    state = run_state(run_dir)
    assert state.state == "finished", (state, (run_dir / "console.log").read_text())
    steps = [r["step"] for r in read_progress(run_dir) if r["kind"] == "train"]
    assert steps == list(range(1, STEPS + 1)), "the resumed run continues the steps, it does not restart them"
    assert f"resumed from step-{stopped_at:06d}: step {stopped_at} of {STEPS}" in (run_dir / "train.log").read_text()
    resumed = load_file(str(run_dir / "final_checkpoint" / "adapter_model.safetensors"))
    straight = load_file(str(trained.run_dir / "final_checkpoint" / "adapter_model.safetensors"))
    assert resumed.keys() == straight.keys()
    for key in straight:
        assert torch.allclose(resumed[key], straight[key], atol=1e-5), key
    names = [r.name for r in list_runs(world.settings)]
    assert "colour-resumed" in names and "colour" in names


def test_run_state_sees_a_trainer_that_died_and_refuses_to_reuse_a_folder(tmp_path: Path, world: ColourWorld):
    from core.errors import InputError

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run_dir = tmp_path / "crashed"
    run_dir.mkdir()
    (run_dir / "state.json").write_text(json.dumps({"state": "running", "pid": dead.pid, "step": 7}))
    state = run_state(run_dir)
    assert state.state == "failed" and state.step == 7 and not state.alive and state.message
    assert not cancel_run(run_dir)
    with pytest.raises(InputError, match="already exists"):
        start_run(world.settings, world.options("crashed").model_copy(update={"output": run_dir}))
    with pytest.raises(InputError, match="cannot be an adapter name"):
        start_run(world.settings, world.options("x").model_copy(update={"output": None}), name="two words")


def test_options_round_trip_through_the_command_line():
    options = TrainOptions(
        data=Path("d.jsonl"), output=Path("out/x"), lr=3e-4, fps=2.0, qlora=True, gradient_checkpointing=False
    )
    from finetune.__main__ import build_parser, given_options

    given = given_options(build_parser().parse_args(options.to_argv()))
    assert TrainOptions(**given) == options


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")
def test_training_on_the_gpu_in_bf16(world: ColourWorld, tmp_path: Path):
    from safetensors.torch import load_file

    outcome = train(world.options("colour-gpu", max_steps=20), world.settings, quiet=True)
    config = json.loads((outcome.run_dir / "run_config.json").read_text())
    assert config["model"]["device"] == "cuda" and config["model"]["dtype"] == "bfloat16"
    losses = [r["loss"] for r in read_progress(outcome.run_dir) if r["kind"] == "train"]
    assert sum(losses[-5:]) < 0.5 * sum(losses[:5])
    weights = load_file(str(outcome.run_dir / "final_checkpoint" / "adapter_model.safetensors"))
    assert all(w.dtype == torch.float32 for w in weights.values())  # LoRA weights kept in fp32 over a bf16 base
