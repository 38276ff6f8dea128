"""LoRA adapters on disk: `<adapters_dir>/<NAME>/final_checkpoint/adapter_config.json`.

`python -m finetune` writes one folder per run; the app and the CLI offer every finished one
without a restart, because this scan runs whenever the list is needed.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from pydantic import BaseModel

from core.config import Settings
from core.errors import InputError

FINAL_CHECKPOINT = "final_checkpoint"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class AdapterInfo(BaseModel):
    """A finished adapter: its name (the folder), where its weights are, and a hash of its config."""

    name: str
    path: Path  # the final_checkpoint folder, as peft loads it
    config_hash: str  # sha256 of adapter_config.json: which adapter answered, exactly
    base_model: str | None = None
    rank: int | None = None


def adapter_info(run_dir: Path) -> AdapterInfo | None:
    """The adapter in one run folder, or None while the run has not finished (or is broken)."""
    config_path = run_dir / FINAL_CHECKPOINT / ADAPTER_CONFIG
    try:
        raw = config_path.read_bytes()
        config = json.loads(raw)
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    return AdapterInfo(
        name=run_dir.name,
        path=config_path.parent,
        config_hash=hashlib.sha256(raw).hexdigest(),
        base_model=config.get("base_model_name_or_path"),
        rank=config.get("r"),
    )


def find_adapters(settings: Settings) -> list[AdapterInfo]:
    """Every finished adapter in the adapters folder, by name."""
    root = settings.adapters_dir
    if not root.is_dir():
        return []
    found = (adapter_info(run_dir) for run_dir in sorted(root.iterdir()) if run_dir.is_dir())
    return [info for info in found if info is not None]


def get_adapter(settings: Settings, name: str) -> AdapterInfo:
    """The adapter called `name`, or an InputError that lists the ones there are."""
    if not ADAPTER_NAME.match(name):
        raise InputError(f"'{name}' is not an adapter name.", "Use the folder name shown in the model list.")
    info = adapter_info(settings.adapters_dir / name)
    if info is None:
        names = ", ".join(a.name for a in find_adapters(settings)) or "none yet"
        raise InputError(
            f"No finished adapter called '{name}' in {settings.adapters_dir}.",
            f"Adapters found: {names}. Train one with `python -m finetune --data FILE.jsonl`.",
        )
    return info
