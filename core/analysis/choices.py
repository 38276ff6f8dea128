"""The models a person can pick: the local model, each finished LoRA adapter, Gemini, both linked.

A choice names a model (an engine, or linked mode) and, for an adapter, the adapter to put in the
request; what it can do is its flow's engines' capabilities, so a page never asks for a model by
name. The list is built on demand, so an adapter that finished training a minute ago is offered
without a restart.
"""

from __future__ import annotations

from pydantic import BaseModel

from core.analysis.flows import LINKED, capabilities, flow_for, missing_for
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
    """Every model choice this install can run: local first, then adapters by name, vLLM when servers
    are set, Gemini, linked mode. A Gemini-only install offers neither the local model nor linked mode."""
    local = not missing_for("local")
    choices = []
    if local:
        help_text = f"{settings.model_id} with iterative perception, run here."
        choices.append(_choice(settings, "local", LOCAL_LABEL, "local", help_text))
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
    if settings.vllm_url and not missing_for("vllm"):  # vLLM servers set up (see the README's Docker section)
        servers = ", ".join(settings.vllm_url)
        help_text = f"{settings.vllm_model} on the vLLM servers at {servers}: the same R1.5 loop, served with batching."
        choices.append(_choice(settings, "vllm", "VideoChat-R1.5 (vLLM)", "vllm", help_text))
    choices.append(_gemini_choice(settings))
    if local:
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


def _gemini_choice(settings: Settings) -> ModelChoice:
    return _choice(
        settings,
        "gemini",
        "Google Gemini",
        "gemini",
        f"Google's hosted model ({settings.gemini_model} unless another is named); needs an API key.",
    )


def left_out_note() -> str | None:
    """One line for an install without the local model's packages: what it would need."""
    missing = missing_for("local")
    if not missing:
        return None
    return (
        f"Gemini only: the local VideoChat-R1.5 model (and linked mode, fine-tuning) needs {', '.join(missing)}, "
        "not installed here. `make install` without GEMINI_ONLY=1 adds them (about 6.5 GB with CUDA)."
    )


def choice_by_key(settings: Settings, key: str | None) -> ModelChoice:
    """The choice with `key`, or the first one when the key is unknown (an adapter removed)."""
    choices = model_choices(settings)
    return next((choice for choice in choices if choice.key == key), choices[0])
