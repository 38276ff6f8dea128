"""Adapters served per request on the ONE loaded base model (peft, by name, never merged)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from core.analysis.flows import flow_for
from core.config import Settings
from core.errors import InputError
from core.media.pipeline import MediaAsset, prepare_media
from core.models.base import AnalysisRequest, GenerationSettings
from core.models.local.adapters import find_adapters, get_adapter
from core.models.local.engine import generate_text
from core.models.local.host import HOST
from core.models.local.loading import resolve_source
from finetune.collator import sample_frames
from finetune.options import TrainOptions
from finetune.trainer import RunOutcome, train
from tests.finetune_support import QUESTION, RUN_ARGS, ColourWorld
from tests.support import FlowDriver

GREEDY = GenerationSettings(max_new_tokens=10, repetition_penalty=1.0)


@pytest.fixture(scope="module")
def world(colour_world: ColourWorld) -> ColourWorld:
    return colour_world


@pytest.fixture(scope="module")
def trained(colour_run: RunOutcome) -> RunOutcome:
    return colour_run


@pytest.fixture(scope="module")
def second(world: ColourWorld, trained: RunOutcome) -> str:
    """Another adapter of the same base: 4 steps with another seed (so other weights)."""
    train(world.options("short", max_steps=4, seed=7, save_every=50), world.settings, quiet=True)
    return "short"


@pytest.fixture(scope="module")
def assets(world: ColourWorld) -> dict[str, MediaAsset]:
    return {colour: prepare_media(path, world.settings) for colour, path in world.fresh.items()}


def ask(adapter: str | None) -> AnalysisRequest:
    return AnalysisRequest(
        question=QUESTION, rounds=1, frames=RUN_ARGS["frames"], max_pixels=RUN_ARGS["max_pixels"],
        generation=GREEDY, adapter=adapter,
    )  # fmt: skip


def test_the_adapter_learned_the_colour_of_clips_it_never_saw(world: ColourWorld, trained: RunOutcome, assets):
    """Asked as in training (the bare question, the training sampling), the adapter names the colour
    of new clips; the base model names neither."""
    loaded = HOST.load(world.settings, resolve_source(world.settings, world.model))
    options = TrainOptions(data=world.data, **RUN_ARGS)
    adapter = get_adapter(world.settings, "colour")
    for colour, asset in assets.items():
        sample = sample_frames(asset.sanitized_path, options, world.settings)
        tuned = generate_text(loaded, sample, QUESTION, GREEDY, adapter=adapter).text
        base = generate_text(loaded, sample, QUESTION, GREEDY).text
        assert tuned.startswith(f"It is {colour}"), (colour, tuned)
        assert "red" not in base and "blue" not in base, base


def test_base_adapter_base_on_one_loaded_model(world: ColourWorld, trained: RunOutcome, second: str, assets):
    backend = FlowDriver("local", world.settings, world.model)
    asset = assets["red"]
    base = backend.analyze(asset, ask(None))
    tuned = backend.analyze(asset, ask("colour"))
    other = backend.analyze(asset, ask(second))
    base_again = backend.analyze(asset, ask(None))
    tuned_again = backend.analyze(asset, ask("colour"))

    assert tuned.rounds[0].raw_output != base.rounds[0].raw_output
    assert other.rounds[0].raw_output not in (base.rounds[0].raw_output, tuned.rounds[0].raw_output)
    assert base_again.rounds[0].raw_output == base.rounds[0].raw_output, "nothing may be merged into the base"
    assert tuned_again.rounds[0].raw_output == tuned.rounds[0].raw_output

    loaded = HOST.load(world.settings, resolve_source(world.settings, world.model))
    assert len(loaded.adapters) == 2, "both adapters sit on the one model"
    assert base.model.adapter is None and base.model.adapter_config_hash is None
    colour = get_adapter(world.settings, "colour")
    assert tuned.model.adapter == "colour" and tuned.model.adapter_config_hash == colour.config_hash
    assert other.model.adapter == second
    assert tuned.request.adapter == "colour"

    streamed: list[str] = []
    live = backend.analyze(asset, ask("colour"), on_text=lambda n, text: streamed.append(text))
    assert live.rounds[0].raw_output == tuned.rounds[0].raw_output and streamed[-1] == live.rounds[0].raw_output


def test_requests_for_base_and_adapter_at_once_each_get_their_own_model(
    world: ColourWorld, trained: RunOutcome, assets
):
    backend = FlowDriver("local", world.settings, world.model)
    asset = assets["blue"]
    expected = {name: backend.analyze(asset, ask(name)).rounds[0].raw_output for name in (None, "colour")}
    results: list[tuple[str | None, str]] = []
    errors: list[BaseException] = []

    def work(name: str | None) -> None:
        try:
            for _ in range(3):
                results.append((name, backend.analyze(asset, ask(name)).rounds[0].raw_output))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(name,)) for name in (None, "colour", None, "colour")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and len(results) == 12
    for name, output in results:
        assert output == expected[name], name


def test_an_unknown_adapter_is_refused_before_any_work(world: ColourWorld, trained: RunOutcome, assets):
    backend = FlowDriver("local", world.settings, world.model)
    flow = flow_for("local", world.settings, world.model)
    with pytest.raises(InputError, match="No finished adapter called 'nope'") as caught:
        flow.check(ask("nope"))
    assert "colour" in str(caught.value)  # the message lists the adapters there are
    with pytest.raises(InputError, match="not an adapter name"):
        flow.check(ask("../colour"))
    with pytest.raises(InputError, match="No finished adapter"):
        backend.analyze(assets["red"], ask("nope"))
    flow.check(ask("colour"))
    flow.check(ask(None))


def test_an_adapter_of_another_base_model_is_refused_and_changes_nothing(
    world: ColourWorld, trained: RunOutcome, assets
):
    """An adapter whose LoRA matrices do not fit this model's layers (trained on another size of
    the architecture) is refused by its shapes, before peft touches the shared model."""
    import shutil

    from safetensors.torch import load_file, save_file

    foreign = world.settings.adapters_dir / "foreign"
    shutil.copytree(trained.run_dir / "final_checkpoint", foreign / "final_checkpoint")
    weights = foreign / "final_checkpoint" / "adapter_model.safetensors"
    state = load_file(str(weights))
    save_file({k: (v[:, : v.shape[1] // 2] if "lora_A" in k else v).contiguous() for k, v in state.items()}, weights)

    backend = FlowDriver("local", world.settings, world.model)
    base = backend.analyze(assets["red"], ask(None)).rounds[0].raw_output
    with pytest.raises(InputError, match="does not fit this model"):
        backend.analyze(assets["red"], ask("foreign"))
    assert backend.analyze(assets["red"], ask(None)).rounds[0].raw_output == base
    assert backend.analyze(assets["red"], ask("colour")).model.adapter == "colour"


def test_a_broken_or_badly_named_adapter_folder_is_not_offered(tmp_path: Path):
    settings = Settings(data_dir=tmp_path / "data", media_dir=tmp_path, adapters_dir=tmp_path / "adapters")
    for name, config in (("bad-rank", '{"r": "abc"}'), ("bad name", '{"r": 8}'), ("not-json", "{"), ("ok", '{"r": 8}')):
        folder = settings.adapters_dir / name / "final_checkpoint"
        folder.mkdir(parents=True)
        (folder / "adapter_config.json").write_text(config)
    assert [adapter.name for adapter in find_adapters(settings)] == ["ok"]
