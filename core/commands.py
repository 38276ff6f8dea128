"""The commands vChat tells people to run (in the app and in its messages), in one place, so that
a test (tests/test_readme_commands.py) runs each of them as it is shown."""

from __future__ import annotations

from dataclasses import dataclass

from core.config import Settings


@dataclass(frozen=True)
class ShownCommand:
    command: str
    what: str
    needs_internet: bool = False


def preseed(settings: Settings) -> ShownCommand:
    return ShownCommand(
        f"hf download {settings.model_id} --local-dir {settings.preseed_dir}",
        "on a machine with internet (about 16.6 GB; `pip install huggingface_hub` there; older versions "
        "call the command huggingface-cli), then copy the folder next to vChat's README",
        needs_internet=True,
    )


TINY_DEMO = ShownCommand(
    "vchat tiny-model tiny && VCHAT_MODEL_PATH=tiny make run",
    "a tiny random checkpoint: the whole flow on CPU in seconds (it answers nonsense)",
)


def train(data: str = "FILE.jsonl") -> ShownCommand:
    return ShownCommand(f"vchat-finetune --data {data}", "trains a LoRA adapter into lora_adapters/<timestamp>/")


def shown_commands(settings: Settings) -> list[ShownCommand]:
    """Every command the app shows, for the test that runs them."""
    return [preseed(settings), TINY_DEMO, train()]
