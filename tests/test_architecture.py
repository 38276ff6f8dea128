"""The layers hold: pages -> ui -> core.analysis (flows) -> core.models (engines) / core.media ->
config, errors, progress. Read from the source (every import, lazy ones inside functions too)."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERED = ("core", "finetune")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def sources() -> dict[str, set[str]]:
    return {module_name(path): imports_of(path) for top in LAYERED for path in (ROOT / top).rglob("*.py")}


def package(module: str) -> str:
    """The layer a module belongs to: core.media, core.models, core.analysis, core.jobs, finetune, the
    CLI (core.__main__), or core's base modules (config, errors, progress, export...)."""
    parts = module.split(".")
    if parts[0] == "core" and len(parts) > 1 and parts[1] in ("media", "models", "analysis", "jobs"):
        return ".".join(parts[:2])
    if module == "core.__main__":
        return "cli"
    return parts[0] if parts[0] != "core" else "core.base"


def test_engines_never_import_flows():
    offenders = sorted(
        f"{module} imports {target}"
        for module, targets in sources().items()
        if module.startswith("core.models")
        for target in targets
        if target.startswith("core.analysis")
    )
    assert offenders == []


def test_no_cycle_between_core_packages():
    graph: dict[str, set[str]] = defaultdict(set)
    for module, targets in sources().items():
        for target in targets:
            if target.split(".")[0] in LAYERED and package(target) != package(module):
                graph[package(module)].add(package(target))
    assert "cli" not in {target for targets in graph.values() for target in targets}
    seen: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(node: str, trail: list[str]) -> None:
        seen[node] = 1
        for target in sorted(graph[node]):
            assert seen.get(target) != 1, "import cycle: " + " -> ".join([*trail, node, target])
            if target not in seen:
                visit(target, [*trail, node])
        seen[node] = 2

    for node in sorted(graph):
        if node not in seen:
            visit(node, [])
    assert graph["core.models"] <= {"core.base", "core.media"}, graph["core.models"]
    assert graph["core.media"] <= {"core.base"}, graph["core.media"]
    assert "finetune" not in {
        target for source, targets in graph.items() if source.startswith("core") for target in targets
    }


def test_streamlit_stays_out_of_core_and_finetune():
    offenders = sorted(
        f"{module} imports {target}"
        for module, targets in sources().items()
        for target in targets
        if target.split(".")[0] in ("streamlit", "ui", "app_pages")
    )
    assert offenders == []


def test_the_checker_sees_lazy_imports(tmp_path: Path):
    """An import inside a function counts (so a lazy one cannot hide a wrong dependency)."""
    sample = tmp_path / "lazy.py"
    sample.write_text("def f():\n    from core.analysis.runner import run_analysis\n    import streamlit\n")
    assert imports_of(sample) == {"core.analysis.runner", "streamlit"}


def test_no_test_module_imports_another():
    """Shared helpers live in tests/support.py, tests/finetune_support.py and conftest.py: a test module
    imported by another runs its module-level code twice and ties the two together."""
    offenders = sorted(
        f"{path.relative_to(ROOT)} imports {target}"
        for path in (ROOT / "tests").rglob("*.py")
        for target in imports_of(path)
        if target.startswith("tests.test_") or (target == "tests" and _names_a_test_module(path))
    )
    assert offenders == []


def _names_a_test_module(path: Path) -> bool:
    """`from tests import test_x`: the module named is in the import's names, not its module."""
    return any(
        isinstance(node, ast.ImportFrom)
        and node.module == "tests"
        and any(alias.name.startswith("test_") for alias in node.names)
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
    )


def test_the_test_import_checker_sees_both_spellings(tmp_path: Path):
    sample = tmp_path / "test_sample.py"
    sample.write_text("from tests.test_finetune import RED\n")
    assert "tests.test_finetune" in imports_of(sample)
    sample.write_text("def f():\n    from tests import test_finetune\n")
    assert _names_a_test_module(sample)


def test_the_run_api_is_cheap_to_import():
    """`finetune.runs` (what the Fine-tune page imports) pulls in neither PyAV nor yt-dlp: the media
    pipeline is imported when a dataset is checked, not when a page lists runs."""
    code = "import finetune.runs, sys; print('av' in sys.modules, 'yt_dlp' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False"]
