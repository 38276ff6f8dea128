"""The training data: read and check every line of a JSONL file before any training.

Two formats, one JSON object a line:

    {"video_path": "clips/a.mp4", "text": "USER: What happens?\\nASSISTANT: A car stops."}
    {"video_path": "clips/a.mp4", "messages": [{"role": "user", "content": "What happens?"},
                                               {"role": "assistant", "content": "A car stops."}]}

`text` may hold several USER/ASSISTANT turns (and a SYSTEM one first). The video is shown
with the first user turn, as the app shows it with the question. `video_path` must lie
inside the media dir or the folder of the JSONL file, under the media pipeline's rules (no
`..`, no links out); every video goes through the pipeline (probe, sanitize) and its training
frames are decoded once, so a video that cannot be decoded is reported here, not mid-run.

All problems are collected with their line numbers; the caller decides whether to stop.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.config import Settings
from core.errors import InputError, VChatError
from core.media.fetch import resolve_local_path
from core.paths import is_within

ROLES = ("system", "user", "assistant")
MAX_REPORTED_ERRORS = 200
_TURN = re.compile(r"^[ \t]*(USER|ASSISTANT|SYSTEM)[ \t]*:[ \t]?", re.IGNORECASE | re.MULTILINE)
# Chat-template control tokens (<|im_start|>, <|video_pad|>...) inside a text would break the
# conversation's structure or the processor's count of visual tokens.
_SPECIAL = re.compile(r"<\|[A-Za-z_]+\|>")


@dataclass(frozen=True)
class Turn:
    role: str  # system | user | assistant
    text: str


@dataclass
class Example:
    """One valid line: its video (as given, and sanitized by the pipeline) and its turns."""

    line: int
    video: str
    video_path: Path  # the file the line names, resolved
    sanitized_path: Path  # the pipeline's mp4 that frames are taken from (as at inference)
    media_sha256: str
    turns: list[Turn]

    @property
    def answers(self) -> list[str]:
        return [t.text for t in self.turns if t.role == "assistant"]


@dataclass(frozen=True)
class LineError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class ValidationReport:
    """What the file holds: the valid examples and every problem, by line."""

    path: Path
    examples: list[Example] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)
    lines: int = 0  # non-blank lines read
    videos: int = 0  # distinct videos checked

    @property
    def ok(self) -> bool:
        return not self.errors and bool(self.examples)

    @property
    def bad_lines(self) -> list[int]:
        return sorted({e.line for e in self.errors})

    def summary(self) -> str:
        return (
            f"{self.path}: {self.lines} lines, {len(self.examples)} valid, "
            f"{len(self.bad_lines)} with errors, {self.videos} videos checked"
        )

    def format(self, limit: int = MAX_REPORTED_ERRORS) -> str:
        """The summary and every error (up to `limit`), one a line."""
        lines = [self.summary(), *(f"  {error}" for error in self.errors[:limit])]
        if len(self.errors) > limit:
            lines.append(f"  ... and {len(self.errors) - limit} more")
        return "\n".join(lines)


# --- the text of one line ------------------------------------------------------------------


def parse_text(text: str) -> list[Turn]:
    """Turns from the original format: `USER: ...` / `ASSISTANT: ...` at the start of lines."""
    marks = list(_TURN.finditer(text))
    if not marks:
        raise ValueError("no USER: / ASSISTANT: turns in 'text'")
    if text[: marks[0].start()].strip():
        raise ValueError("'text' has words before its first USER: or ASSISTANT: tag")
    turns = []
    for mark, following in zip(marks, [*marks[1:], None], strict=True):
        end = following.start() if following else len(text)
        turns.append(Turn(mark.group(1).lower(), text[mark.end() : end].strip()))
    return turns


def _content_text(content: object, where: str) -> str:
    if isinstance(content, str):
        return content.strip()
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") in ("video", "image"):
                continue  # the one video is placed by us, with the first user turn
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                raise ValueError(f"{where}: content parts must be {{'type': 'text', 'text': ...}}")
        return "\n".join(parts).strip()
    raise ValueError(f"{where}: 'content' must be a string or a list of text parts")


def parse_messages(messages: object) -> list[Turn]:
    """Turns from the chat format: a list of {"role", "content"}."""
    if not isinstance(messages, list) or not messages:
        raise ValueError("'messages' must be a non-empty list")
    turns = []
    for number, message in enumerate(messages, 1):
        where = f"message {number}"
        if not isinstance(message, dict):
            raise ValueError(f"{where} is not an object")
        role = message.get("role")
        if role not in ROLES:
            raise ValueError(f"{where}: role must be one of {', '.join(ROLES)}, not {role!r}")
        turns.append(Turn(role, _content_text(message.get("content"), where)))
    return turns


def check_turns(turns: list[Turn]) -> list[str]:
    """Problems with a conversation (empty list when it can be trained on)."""
    problems = []
    if not any(t.role == "assistant" for t in turns):
        problems.append("no assistant turn: nothing to learn from this line")
    elif not any(t.role == "assistant" and t.text for t in turns):
        problems.append("every assistant turn is empty")
    if any(t.role == "system" for t in turns[1:]):
        problems.append("a system turn may only come first")
    first = next((t for t in turns if t.role != "system"), None)
    if first is not None and first.role != "user":
        problems.append("the first turn after the system one must be the user's (the video goes with it)")
    for turn in turns:
        special = _SPECIAL.search(turn.text)
        if special:
            problems.append(f"a {turn.role} turn contains the control token {special.group(0)}")
            break
    return problems


def parse_line(raw: str) -> tuple[str, list[Turn]]:
    """(video_path, turns) of one JSONL line, or ValueError saying what is wrong."""
    try:
        record = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    video = record.get("video_path", record.get("video"))
    if not isinstance(video, str) or not video.strip():
        raise ValueError("no 'video_path' (a path to the video, as a string)")
    has_text, has_messages = "text" in record, "messages" in record
    if has_text == has_messages:
        raise ValueError("give either 'text' (USER:/ASSISTANT: turns) or 'messages', not both or neither")
    if has_text:
        if not isinstance(record["text"], str):
            raise ValueError("'text' must be a string")
        turns = parse_text(record["text"])
    else:
        turns = parse_messages(record["messages"])
    problems = check_turns(turns)
    if problems:
        raise ValueError("; ".join(problems))
    return video.strip(), turns


# --- the video of one line -------------------------------------------------------------------


def resolve_video(raw: str, settings: Settings, data_folder: Path) -> tuple[Path, Settings]:
    """The video file a line names, and the settings whose media dir holds it.

    Relative paths are looked up in the media dir, then in the data folder; absolute ones
    must lie in one of them. This only chooses the root (the media dir or the data folder) and words
    the line's error; the confinement itself (`..`, links out) is `resolve_local_path`'s."""
    roots = [settings.media_dir, data_folder.absolute()]
    shown = f"the media folder {roots[0]} or the data folder {roots[1]}"
    given = Path(raw).expanduser()
    if ".." in given.parts:
        raise InputError(f"path escape: '{raw}' contains '..'; video paths must stay inside {shown}.")
    if given.is_absolute():
        root = next((r for r in roots if is_within(given, r) or is_within(given, r.resolve())), None)
        if root is None:
            raise InputError(f"path escape: '{raw}' is outside {shown}.")
        target = given
    else:
        root = next((r for r in roots if (r / given).exists() or (r / given).is_symlink()), None)
        if root is None:
            raise InputError(f"video not found: no '{raw}' in {shown}.")
        target = root / given
    scoped = settings.model_copy(update={"media_dir": root})
    return resolve_local_path(target, scoped), scoped


SampleCheck = Callable[[Path], None]


def validate_dataset(
    path: Path,
    settings: Settings,
    check_frames: SampleCheck | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_line: Callable[[int], None] | None = None,
) -> ValidationReport:
    """Read and check every line of `path`; never stops at the first problem.

    `check_frames(sanitized_path)` decodes the frames training will use (raises on failure);
    each video is checked once, however many lines use it."""
    path = Path(path)
    report = ValidationReport(path=path)
    try:
        content = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"The dataset {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"The dataset {path} cannot be read as UTF-8 text: {exc}.") from None
    data_folder = path.absolute().parent
    checked: dict[str, tuple[Path, Path, str] | str] = {}  # video as written -> (file, sanitized, sha) or error
    for number, raw in enumerate(content.splitlines(), 1):
        if should_stop and should_stop():
            break
        if not raw.strip():
            continue
        report.lines += 1
        if on_line:
            on_line(number)
        try:
            video, turns = parse_line(raw)
        except ValueError as exc:
            report.errors.append(LineError(number, str(exc)))
            continue
        if video not in checked:
            checked[video] = _check_video(video, settings, data_folder, check_frames)
        outcome = checked[video]
        if isinstance(outcome, str):
            report.errors.append(LineError(number, outcome))
            continue
        file, sanitized, sha = outcome
        report.examples.append(Example(number, video, file, sanitized, sha, turns))
    report.videos = len(checked)
    return report


def _check_video(
    video: str, settings: Settings, data_folder: Path, check_frames: SampleCheck | None
) -> tuple[Path, Path, str] | str:
    from core.media.pipeline import prepare_media  # PyAV and the media pipeline: only when a line is checked

    try:
        file, scoped = resolve_video(video, settings, data_folder)
        asset = prepare_media(file, scoped)
        if check_frames is not None:
            check_frames(asset.sanitized_path)
    except VChatError as exc:
        return f"video '{video}': {exc.one_line()}"
    except Exception as exc:  # a decoder failure of any kind is a bad video, not a crash
        return f"video '{video}' cannot be decoded ({type(exc).__name__}: {exc})"
    return file, asset.sanitized_path, asset.sha256


def split_examples(examples: list[Example], eval_split: float, seed: int) -> tuple[list[Example], list[Example]]:
    """(train, eval): a seeded, reproducible hold-out of about `eval_split` of the examples.

    At least one example is held out when the split is above 0 and there are two or more."""
    if eval_split <= 0 or len(examples) < 2:
        return list(examples), []
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    count = min(len(examples) - 1, max(1, round(eval_split * len(examples))))
    held = set(order[:count])
    train = [e for i, e in enumerate(examples) if i not in held]
    evaluation = [e for i, e in enumerate(examples) if i in held]
    return train, evaluation
