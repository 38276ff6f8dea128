"""The models a person can pick: the local model, each finished LoRA adapter, Gemini, both linked.

A choice names a backend in the registry and, for an adapter, the adapter to put in the
request. The list is built on demand, so an adapter that finished training a minute ago
is offered without a restart.
"""

from __future__ import annotations

from pydantic import BaseModel

from core.config import Settings
from core.models.local.adapters import find_adapters

LOCAL_LABEL = "VideoChat-R1.5 (local)"


class ModelChoice(BaseModel):
    key: str  # stable id, e.g. "local", "adapter:my-run", "gemini", "linked"
    label: str
    backend: str
    adapter: str | None = None
    help: str = ""

    @property
    def uses_local_model(self) -> bool:
        return self.backend in LOCAL_MODEL_BACKENDS

    @property
    def uses_gemini(self) -> bool:
        return self.backend in GEMINI_BACKENDS


# Backends that run the local model in this process (so they share the one loaded copy).
LOCAL_MODEL_BACKENDS = frozenset({"local", "linked"})
GEMINI_BACKENDS = frozenset({"gemini", "linked"})


def model_choices(settings: Settings) -> list[ModelChoice]:
    """Every model choice, local first, then adapters by name, Gemini and linked mode."""
    choices = [
        ModelChoice(
            key="local",
            label=LOCAL_LABEL,
            backend="local",
            help=f"{settings.model_id} with iterative perception, run on this machine.",
        )
    ]
    for adapter in find_adapters(settings):
        choices.append(
            ModelChoice(
                key=f"adapter:{adapter.name}",
                label=f"VideoChat-R1.5 + LoRA {adapter.name}",
                backend="local",
                adapter=adapter.name,
                help=f"The local model with the fine-tuned adapter in {adapter.path}.",
            )
        )
    choices.append(
        ModelChoice(
            key="gemini",
            label="Google Gemini",
            backend="gemini",
            help=f"Google's hosted model ({settings.gemini_model} unless another is named); needs an API key.",
        )
    )
    choices.append(
        ModelChoice(
            key="linked",
            label="Linked: Gemini + VideoChat-R1.5",
            backend="linked",
            help="Gemini describes the video; the local model answers with that digest as context.",
        )
    )
    return choices


def choice_by_key(settings: Settings, key: str | None) -> ModelChoice:
    """The choice with `key`, or the local model when the key is unknown (an adapter removed)."""
    choices = model_choices(settings)
    return next((choice for choice in choices if choice.key == key), choices[0])
