"""The dataset files the app offers for training: listed from the data and media folders, or
uploaded and kept under `<data_dir>/datasets/` (never over another file). No Streamlit here: the
Fine-tune page calls these, and so can anything else.

Cheap to import (no media pipeline): checking a dataset's lines is `finetune.runs.check_dataset`.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from pathlib import Path

from core.config import Settings
from core.errors import InputError
from core.media.storage import sha256_file
from core.paths import is_within
from finetune.options import TrainOptions

MAX_LISTED = 500
SKIPPED_DIRS = ("media", "tmp", "results")  # the data folder's caches: no datasets in there
UPLOADS = "datasets"  # <data_dir>/datasets: where uploads are kept


def dataset_files(settings: Settings) -> list[Path]:
    """JSONL files in the data folder and the media folder (hidden files, links, the data folder's
    caches and the run folders left out), sorted, at most MAX_LISTED."""
    skipped = [settings.data_dir / name for name in SKIPPED_DIRS] + [settings.adapters_dir]
    found: dict[Path, None] = {}
    for root in (settings.data_dir, settings.media_dir):
        if not root.is_dir():
            continue
        for folder, dirs, files in os.walk(root):
            here = Path(folder)
            dirs[:] = sorted(
                d for d in dirs if not d.startswith(".") and not any(is_within(here / d, s) for s in skipped)
            )
            for name in sorted(files):
                path = here / name
                if name.startswith(".") or not name.lower().endswith(".jsonl") or path.is_symlink():
                    continue
                found[path] = None
                if len(found) >= MAX_LISTED:
                    return sorted(found)
    return sorted(found)


def dataset_label(settings: Settings, path: Path) -> str:
    """`path` as the page lists it: relative to the data or media folder, saying which."""
    for root, where in ((settings.data_dir, "data folder"), (settings.media_dir, "media folder")):
        if is_within(path, root):
            return f"{path.relative_to(root).as_posix()} ({where})"
    return str(path)


def upload_folder(settings: Settings) -> Path:
    return settings.data_dir / UPLOADS


def save_upload(settings: Settings, filename: str, data: bytes) -> Path:
    """Keep an uploaded dataset as <data_dir>/datasets/NAME.jsonl, atomically and never over
    another file: the same bytes again reuse their file; other bytes under a taken name get
    NAME-2.jsonl, NAME-3.jsonl... (a hard link of a finished temp file either takes a name or fails)."""
    folder = upload_folder(settings)
    folder.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(filename).stem).strip("._-") or "dataset"
    digest = hashlib.sha256(data).hexdigest()
    temp = folder / f".upload-{uuid.uuid4().hex}.part"
    try:
        with temp.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        for number in range(1, 1000):
            target = folder / (f"{stem}.jsonl" if number == 1 else f"{stem}-{number}.jsonl")
            if target.exists():
                if target.is_file() and not target.is_symlink() and sha256_file(target) == digest:
                    return target
                continue
            try:
                os.link(temp, target)
            except FileExistsError:  # another session took the name a moment ago
                continue
            return target
    finally:
        temp.unlink(missing_ok=True)
    raise InputError(f"Too many datasets called {stem} in {folder}.", "Rename the file and upload it again.")


def check_key(settings: Settings, options: TrainOptions) -> str:
    """What a dataset check (`finetune.runs.check_dataset`) depends on, for caching its report: the
    file's bytes and place (relative videos resolve beside it), the media folder, and the sampling
    whose frames are decoded."""
    parts = [
        sha256_file(options.data),
        str(options.data),
        str(settings.media_dir),
        str(options.frames),
        str(options.fps),
        str(options.max_pixels),
    ]
    return "|".join(parts)
