"""LoRA fine-tuning on the tiny model: dataset checks, labels, targets, a real training run,
cancel and resume, and the run API the app uses (subprocess, progress, state).

The runs train the tiny checkpoint with a head that can learn (see tests/finetune_support.py);
everything else is the real code path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from core.config import Settings
from core.models.local.adapters import find_adapters, get_adapter
from finetune.dataset import parse_text, split_examples, validate_dataset
from finetune.lora import LORA_TARGET, PROJECTIONS, lora_config, lora_module_names, targets_language_model_only
from finetune.options import TrainOptions
from finetune.run_files import read_progress
from finetune.runs import cancel_run, list_runs, resume_run, run_state, start_run
from finetune.trainer import RunOutcome, train
from tests.finetune_support import (
    QUESTION,
    RED,
    RUN_ARGS,
    STEPS,
    ColourWorld,
    chat_line,
    make_colour_clip,
    text_line,
    write_jsonl,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def world(colour_world: ColourWorld) -> ColourWorld:
    return colour_world


@pytest.fixture(scope="session")
def trained(colour_run: RunOutcome) -> RunOutcome:
    return colour_run


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


def test_cli_without_the_local_model_packages_says_what_to_install(tmp_path: Path, world: ColourWorld):
    """As after `make install GEMINI_ONLY=1`: refused before any work, with the install hint."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VCHAT_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tests" / "without_torch"), str(ROOT)])
    env["VCHAT_DATA_DIR"] = str(tmp_path / "data")
    proc = subprocess.run(
        [sys.executable, "-m", "finetune", "--data", str(world.data), "--output", str(tmp_path / "run")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "not installed here: it needs torch, torchvision, transformers, accelerate, peft" in proc.stderr
    assert "make install" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "data").exists()

    proc = run_finetune(["--epochs", "many"], world.settings, tmp_path)
    assert proc.returncode == 2 and "(see vchat-finetune --help)" in proc.stderr


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
