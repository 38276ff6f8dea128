"""The models a person can pick: the local model, each finished LoRA adapter, Gemini, both linked.

A choice names a model (an engine, or linked mode) and, for an adapter, the adapter to put in the
request; what it can do is its flow's engines' capabilities, so a page never asks for a model by
name. The list is built on demand, so an adapter that finished training a minute ago is offered
without a restart.
"""

from __future__ import annotations

from pydantic import BaseModel

from core.analysis.flows import LINKED, capabilities, flow_for
from core.config import Settings
from core.models.engine import Capabilities
from core.models.local.adapters import find_adapters

LOCAL_LABEL = "VideoChat-R1.5 (local)"


class ModelChoice(BaseModel):
    key: str  # stable id, e.g. "local", "adapter:my-run", "gemini", "linked"
    label: str
    model: str  # what run_analysis and --model take
    adapter: str | None = None
    help: str = ""
    capabilities: Capabilities = Capabilities()

    @property
    def uses_local_model(self) -> bool:
        return self.capabilities.uses_local_host

    @property
    def uses_gemini(self) -> bool:
        """A Gemini model name and key apply (the choice has an engine that takes the whole video)."""
        return self.capabilities.takes_video


def _choice(settings: Settings, key: str, label: str, model: str, help_text: str, adapter: str | None = None):  # type: ignore[no-untyped-def]
    caps = capabilities(flow_for(model, settings))
    return ModelChoice(key=key, label=label, model=model, adapter=adapter, help=help_text, capabilities=caps)


def model_choices(settings: Settings) -> list[ModelChoice]:
    """Every model choice, local first, then adapters by name, Gemini and linked mode."""
    choices = [
        _choice(settings, "local", LOCAL_LABEL, "local", f"{settings.model_id} with iterative perception, run here.")
    ]
    for adapter in find_adapters(settings):
        choices.append(
            _choice(
                settings,
                f"adapter:{adapter.name}",
                f"VideoChat-R1.5 + LoRA {adapter.name}",
                "local",
                f"The local model with the fine-tuned adapter in {adapter.path}.",
                adapter=adapter.name,
            )
        )
    choices.append(
        _choice(
            settings,
            "gemini",
            "Google Gemini",
            "gemini",
            f"Google's hosted model ({settings.gemini_model} unless another is named); needs an API key.",
        )
    )
    choices.append(
        _choice(
            settings,
            LINKED,
            "Linked: Gemini + VideoChat-R1.5",
            LINKED,
            "Gemini describes the video; the local model answers with that digest as context.",
        )
    )
    return choices


def choice_by_key(settings: Settings, key: str | None) -> ModelChoice:
    """The choice with `key`, or the local model when the key is unknown (an adapter removed)."""
    choices = model_choices(settings)
    return next((choice for choice in choices if choice.key == key), choices[0])
