"""LoRA adapters on disk: `<adapters_dir>/<NAME>/final_checkpoint/adapter_config.json`.

`vchat-finetune` writes one folder per run; the app and the CLI offer every finished one
without a restart, because this scan runs whenever the list is needed.

Serving: `adapter_scope` puts the adapter a request names (or none) on the ONE loaded base
model with peft, by name, loading it the first time it is asked for. Nothing is merged into
the base weights, so a base request after an adapter request gets the base model's output.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from core.commands import train
from core.config import Settings
from core.errors import InputError
from core.media.storage import sha256_file

if TYPE_CHECKING:
    from core.models.local.loading import LoadedModel

FINAL_CHECKPOINT = "final_checkpoint"
ADAPTER_CONFIG = "adapter_config.json"
RUN_CONFIG = "run_config.json"  # written by python -m finetune beside final_checkpoint/
ADAPTER_WEIGHTS = "adapter_model.safetensors"
# Adapters kept on the loaded model at once (a LoRA of r=8 on the 7B model is about 40 MB);
# the least recently used one is dropped beyond this.
MAX_LOADED_ADAPTERS = 8
ADAPTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class AdapterInfo(BaseModel):
    """A finished adapter: its name (the folder), where its weights are, and a hash of its config."""

    name: str
    path: Path  # the final_checkpoint folder, as peft loads it
    config_hash: str  # sha256 of adapter_config.json and the weights: which adapter answered, exactly
    base_model: str | None = None
    rank: int | None = None
    # How training sampled the videos (frames, fps, max_pixels), from the run's run_config.json:
    # inference that samples the same way sees videos as the adapter learned them.
    sampling: dict[str, Any] | None = None


def adapter_info(run_dir: Path) -> AdapterInfo | None:
    """The adapter in one run folder, or None while the run has not finished (or is broken)."""
    config_path = run_dir / FINAL_CHECKPOINT / ADAPTER_CONFIG
    try:
        raw = config_path.read_bytes()
        config = json.loads(raw)
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict) or not ADAPTER_NAME.match(run_dir.name):
        return None
    try:
        return _build_info(run_dir, config_path, raw, config)
    except ValidationError:  # e.g. "r": "abc": a broken folder must not break every page
        return None


def _build_info(run_dir: Path, config_path: Path, raw: bytes, config: dict[str, Any]) -> AdapterInfo:
    return AdapterInfo(
        name=run_dir.name,
        path=config_path.parent,
        config_hash=hashlib.sha256(raw + _weights_digest(config_path.parent / ADAPTER_WEIGHTS)).hexdigest(),
        base_model=config.get("base_model_name_or_path"),
        rank=config.get("r"),
        sampling=_training_sampling(run_dir),
    )


_weights_digests: dict[tuple[str, int, int], bytes] = {}


def _weights_digest(path: Path) -> bytes:
    """sha256 of the adapter weights, cached by (path, size, mtime): two runs with the same options
    have the same config, and only the weights tell them apart."""
    try:
        stat = path.stat()
    except OSError:
        return b""
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _weights_digests:
        _weights_digests[key] = bytes.fromhex(sha256_file(path))
    return _weights_digests[key]


def _training_sampling(run_dir: Path) -> dict[str, Any] | None:
    try:
        sampling = json.loads((run_dir / RUN_CONFIG).read_text(encoding="utf-8")).get("sampling")
    except (OSError, ValueError, AttributeError):
        return None
    return sampling if isinstance(sampling, dict) else None


def sampling_mismatch(adapter: AdapterInfo, frames: int, fps: float | None, max_pixels: int) -> str | None:
    """A note when a request samples videos otherwise than the adapter's training did (None: same)."""
    trained = adapter.sampling or {}
    differences = []
    if trained.get("frames") not in (None, frames):
        differences.append(f"{trained['frames']} frames per video (this request: {frames})")
    if trained.get("fps") != fps and (trained.get("fps") or fps):
        differences.append(f"fps {trained.get('fps') or 'off'} (this request: {fps or 'off'})")
    if trained.get("max_pixels") not in (None, max_pixels):
        differences.append(f"max pixels {trained['max_pixels']} (this request: {max_pixels})")
    if not differences:
        return None
    return (
        f"The adapter {adapter.name} was trained with {'; '.join(differences)}: it may answer less well on "
        "videos sampled otherwise. Set the same values to see videos as it learned them."
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
            f"Adapters found: {names}. Train one with `{train().command}`.",
        )
    return info


# --- serving: adapters on the one loaded model --------------------------------------------------

_LORA_KEY = re.compile(r"^base_model\.model\.(.+)\.lora_([AB])\.weight$")


def _version(info: AdapterInfo) -> str:
    """Which files of `info` are loaded: name, config hash and the weights' size and mtime, so an
    adapter trained again under the same name is loaded again."""
    weights = info.path / ADAPTER_WEIGHTS
    try:
        stat = weights.stat()
        stamp = f"{stat.st_size}:{stat.st_mtime_ns}"
    except OSError:
        stamp = "-"
    return f"{info.name}|{info.config_hash}|{stamp}"


def _peft_name(version: str) -> str:
    # peft keeps adapters in ModuleDicts, whose keys may not hold '.', which folder names may.
    return "adapter_" + hashlib.sha256(version.encode()).hexdigest()[:16]


def check_adapter_fits(model: Any, info: AdapterInfo) -> None:
    """Refuse an adapter trained on another base model, from its weights' shapes, before peft
    touches the shared model (a failed load half-way would leave it changed)."""
    weights = info.path / ADAPTER_WEIGHTS
    if not weights.is_file():
        raise InputError(f"The adapter '{info.name}' has no {ADAPTER_WEIGHTS} in {info.path}.")
    from safetensors import safe_open

    modules = dict(model.named_modules())
    with safe_open(str(weights), framework="pt") as handle:
        for key in handle.keys():  # noqa: SIM118 (safe_open has keys(), not __iter__)
            match = _LORA_KEY.match(key)
            if not match:
                continue
            module = modules.get(match.group(1))
            if module is None:
                raise InputError(
                    f"The adapter '{info.name}' was trained on another model: this one has no module {match.group(1)}.",
                    f"It was trained on {info.base_model}.",
                )
            base = getattr(module, "base_layer", module)
            shape = handle.get_slice(key).get_shape()
            wanted, actual = (shape[1], base.in_features) if match.group(2) == "A" else (shape[0], base.out_features)
            if wanted != actual:
                raise InputError(
                    f"The adapter '{info.name}' does not fit this model ({match.group(1)} has {actual} features, "
                    f"the adapter expects {wanted}).",
                    f"It was trained on {info.base_model}.",
                )


def _ensure_loaded(loaded: LoadedModel, info: AdapterInfo) -> str:
    """The peft name of `info` on the loaded model, loading it first if needed (lock held)."""
    version = _version(info)
    if version in loaded.adapters:
        loaded.adapters.move_to_end(version)
        return loaded.adapters[version]
    check_adapter_fits(loaded.model, info)
    name = _peft_name(version)
    first = loaded.peft is None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # transformers 5 deprecation notes peft triggers
            if first:
                from peft import PeftModel

                loaded.peft = PeftModel.from_pretrained(loaded.model, str(info.path), adapter_name=name)
            else:
                loaded.peft.load_adapter(str(info.path), adapter_name=name)
    except Exception as exc:
        if first:  # the base model may hold half-injected layers: reload it on the next request
            from core.models.local.host import HOST

            HOST.discard()
        elif name in loaded.peft.peft_config:
            loaded.peft.delete_adapter(name)
        raise InputError(f"The adapter '{info.name}' could not be loaded: {type(exc).__name__}: {exc}") from exc
    loaded.model.eval()  # the new LoRA dropout layers start in training mode
    loaded.adapters[version] = name
    for old in [v for v in loaded.adapters if v != version and v.split("|")[0] == info.name]:
        loaded.peft.delete_adapter(loaded.adapters.pop(old))  # an older copy of a retrained adapter
    while len(loaded.adapters) > MAX_LOADED_ADAPTERS:
        oldest = next(iter(loaded.adapters))  # least recently used; never `version`, the newest
        loaded.peft.delete_adapter(loaded.adapters.pop(oldest))
    return name


@contextmanager
def adapter_scope(loaded: LoadedModel, info: AdapterInfo | None) -> Iterator[None]:
    """Run the body with `info`'s adapter active on the loaded model, or with none (the base
    model) when `info` is None. The caller holds `loaded.lock` for the whole body: the active
    adapter is state shared by every request."""
    if info is None:
        if loaded.peft is None:
            yield
        else:
            with loaded.peft.disable_adapter():
                yield
        return
    name = _ensure_loaded(loaded, info)
    loaded.peft.set_adapter(name, inference_mode=True)
    yield
