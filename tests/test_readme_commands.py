"""Every command the README shows is run, as written, in a folder laid out like a fresh checkout
after `make run`'s install step (the project's .venv, its files, a `videos/` folder with a clip).

Commands run with the environment activated (`.venv/bin` first on PATH), the local model a tiny
random checkpoint that answers one token a round, and Gemini the local stand-in that speaks its
REST protocol (tests/gemini_fake.py). A command the README marks "(needs the internet)" must end
cleanly offline: done (exit 0) where a network answers, else one error line and exit 2. Commands
that cannot run on this machine are named here with the reason, and checked another way:
`docker` lines by tests/test_docker.py's drift test, benchmarks by their --help.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.commands import shown_commands
from core.config import Settings
from core.models.local.tiny import write_tiny_model
from tests.gemini_fake import VALID_KEY, FakeGemini

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
HEADS = ("vchat", "vchat-finetune", ".venv/bin/vchat", ".venv/bin/vchat-finetune", "make", "source", "export")
CHECKOUT = ("Makefile", "Home.py", "app_pages", "ui", "core", "finetune", ".streamlit", "pyproject.toml",
            "requirements.txt", "requirements-base.txt", "requirements-dev.txt", "bench", "tests")  # fmt: skip
# What the README says happens for commands whose outcome is a refusal when run in README order.
EXPECTED = {
    "vchat-finetune --output lora_adapters/claims-v1 --resume": (2, "has finished; there is nothing to resume"),
}


@dataclass(frozen=True)
class Command:
    line: str  # as written, without its comment
    comment: str

    @property
    def head(self) -> str:
        words = [w for w in shlex.split(self.line) if "=" not in w.split("/")[0]]
        return words[0] if words else ""

    @property
    def needs_internet(self) -> bool:
        return "needs the internet" in self.comment


def _split_comment(line: str) -> tuple[str, str]:
    """`cmd  # comment` -> (cmd, comment), a # inside quotes kept."""
    quote = None
    for i, char in enumerate(line):
        if char in "\"'" and quote in (None, char):
            quote = None if quote else char
        elif char == "#" and quote is None and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1 :].strip()
    return line.rstrip(), ""


def readme_commands() -> list[Command]:
    """Command lines of the README's code blocks, and commands written inline (`vchat ...`)."""
    text = README.read_text()
    found: list[Command] = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
        for raw in block.splitlines():
            line, comment = _split_comment(raw.strip())
            if line.startswith("source ") and not line.split()[1].endswith("/activate"):
                continue  # prose that starts with the word (the pipeline's diagram)
            if line and (line.split()[0] in HEADS or re.match(r"^[A-Z_]+=\S+ (vchat|make)", line)):
                found.append(Command(line, comment))
    for inline in re.findall(r"`((?:vchat|vchat-finetune|make) [^`]+)`", re.sub(r"```.*?```", "", text, flags=re.S)):
        found.append(Command(inline, "inline"))
    return found


# --- the sandbox ------------------------------------------------------------------------------------


def make_checkout(folder: Path, clip: Path) -> Path:
    """A folder laid out like the repository after `make install`, plus the files the examples name:
    videos/clip.mp4 (and clip.mp4 for the stdin example), data/my_dataset.jsonl and FILE.jsonl."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in CHECKOUT:
        (folder / name).symlink_to(ROOT / name)
    # The project's environment, entry by entry, with install stamps of its own that are newer than
    # every requirement: `make run` here finds it installed and never reinstalls into the real one.
    venv = folder / ".venv"
    venv.mkdir()
    for entry in (ROOT / ".venv").iterdir():
        if not entry.name.startswith(".installed"):
            (venv / entry.name).symlink_to(entry)
    for stamp in (".installed", ".installed-dev", ".installed-base"):
        (venv / stamp).touch()
    (folder / "videos").mkdir()
    shutil.copyfile(clip, folder / "videos" / "clip.mp4")
    shutil.copyfile(clip, folder / "clip.mp4")
    (folder / "data").mkdir()
    lines = [
        {"video_path": "clip.mp4", "text": "USER: Is the claim true?\nASSISTANT: The clip shows a test pattern."},
        {"video_path": "clip.mp4", "text": "USER: What is shown?\nASSISTANT: A test pattern with a tone."},
    ]
    dataset = "".join(json.dumps(line) + "\n" for line in lines)
    (folder / "data" / "my_dataset.jsonl").write_text(dataset)
    (folder / "FILE.jsonl").write_text(dataset)
    # the Batches section's files: a CSV of media-folder rows with labels, and a label schema
    (folder / "clips.csv").write_text("id,url,label\n1,clip.mp4,yes\n")
    schema = {"type": "object", "properties": {"people_visible": {"type": "boolean", "description": "a person?"}}}
    (folder / "schema.json").write_text(json.dumps(schema))
    return folder


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory, clips: dict[str, Path]) -> Path:
    return make_checkout(tmp_path_factory.mktemp("checkout") / "vchat", clips["h264"])


@pytest.fixture(scope="module")
def environment(checkout: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    gemini = FakeGemini().start()
    quick = write_tiny_model(tmp_path_factory.mktemp("quick-tiny"), one_token=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VCHAT_", "GEMINI", "GOOGLE_"))}
    env.update(
        PATH=f"{checkout / '.venv' / 'bin'}{os.pathsep}{env['PATH']}",  # `source .venv/bin/activate`
        VIRTUAL_ENV=str(checkout / ".venv"),
        VCHAT_MODEL_PATH=str(quick),
        GOOGLE_GEMINI_BASE_URL=gemini.base_url,
        GEMINI_API_KEY=VALID_KEY,
        VCHAT_SOCKET_TIMEOUT_S="3",
        VCHAT_DOWNLOAD_TIMEOUT_S="6",
        VCHAT_FRAME_CACHE_MB="128",
    )
    yield env
    gemini.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_server(line: str, checkout: Path, env: dict[str, str]) -> None:
    """`make run` serves the app: it must answer its health check; then it is stopped."""
    port = free_port()
    proc = subprocess.Popen(
        ["bash", "-c", line], cwd=checkout, env={**env, "PORT": str(port)}, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"{line!r} ended: {proc.stderr.read().decode()[-500:] if proc.stderr else ''}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        pytest.fail(f"{line!r} did not serve the app on port {port}")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_the_readme_shows_the_commands_this_test_runs():
    commands = readme_commands()
    heads = {command.head for command in commands}
    assert {"vchat", "vchat-finetune", "make", "source"} <= heads, heads
    assert len(commands) > 20


def test_every_readme_command_runs_as_written(checkout: Path, environment: dict[str, str]):
    ran: list[str] = []
    for command in readme_commands():
        line = command.line
        if line.startswith(("export ", "source ")):  # shell set-up: the environment above does it
            if line.startswith("source "):
                assert (checkout / line.split()[1]).exists(), line
            continue
        if line in ("make test",):  # the suite this test is part of
            continue
        if line.endswith("make run"):
            run_server(line, checkout, environment)
            ran.append(line)
            continue
        if line.startswith("make "):  # make install, make run PORT=...: the same targets
            assert subprocess.run(["make", "-n", *shlex.split(line)[1:]], cwd=checkout, env=environment,
                                  capture_output=True).returncode == 0, line  # fmt: skip
            continue
        proc = subprocess.run(["bash", "-c", line], cwd=checkout, env=environment, capture_output=True, text=True,
                              timeout=300)  # fmt: skip
        expected_code, expected_text = next(
            (outcome for prefix, outcome in EXPECTED.items() if line.startswith(prefix)), (0, "")
        )
        if command.needs_internet and proc.returncode != 0:
            expected_code = 2
        assert proc.returncode == expected_code, f"{line!r} exited {proc.returncode}: {proc.stderr[-800:]}"
        if expected_code:
            errors = [row for row in proc.stderr.splitlines() if row.startswith("error: ")]
            assert len(errors) == 1 and "Traceback" not in proc.stderr, (line, proc.stderr[-800:])
            assert expected_text in errors[0], (line, errors[0])
        ran.append(line)
    assert len(ran) > 15, ran


def test_every_command_the_app_shows_runs_as_shown(
    tmp_path: Path, clips: dict[str, Path], environment: dict[str, str]
):
    """The Models page's pre-seeding commands and the hints in messages (core/commands.py)."""
    for shown in shown_commands(Settings()):
        folder = make_checkout(tmp_path / f"fresh-{abs(hash(shown.command))}", clips["h264"])
        program = shlex.split(shown.command)[0]
        assert shutil.which(program, path=environment["PATH"]), f"{program} is not installed"
        if shown.needs_internet:  # offline here: the program exists and takes this subcommand
            subcommand = shlex.split(shown.command)[1]
            proc = subprocess.run([program, subcommand, "--help"], env=environment, capture_output=True)
            assert proc.returncode == 0, (shown.command, proc.stderr[-300:])
        elif shown.command.endswith("make run"):
            run_server(shown.command, folder, environment)
        else:
            proc = subprocess.run(["bash", "-c", shown.command], cwd=folder, env=environment, capture_output=True,
                                  text=True, timeout=300)  # fmt: skip
            assert proc.returncode == 0, (shown.command, proc.stderr[-800:])
