"""The package's shape: imports flow one way, modules stay small, nothing points outside the repository."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

from ser_utils import config

PACKAGE = config.REPO_ROOT / "ser_utils"
#: Lines a module may have before it must say in its docstring why it is larger.
MAX_LINES = 550


def module_name(path: Path) -> str:
    parts = path.relative_to(config.REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """Every ser_utils module ``path`` imports, at the top or inside a function (``from x import y``
    counts ``x.y`` when that is a module, else ``x``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        found.update(n for n in names if n in modules and n != here)
    return found


def import_graph() -> dict[str, set[str]]:
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in files}
    return {module_name(p): imported_modules(p, modules) for p in files}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None. A package's __init__
    re-exporting its own submodules is not a cycle of concern (the submodules never import the
    package's __init__ for names it defines itself), so edges from a package to its own
    submodules are left out."""
    edges = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(edges.get(node, ())):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycle_anywhere_in_the_package():
    graph = import_graph()
    assert "ser_utils.training.loop" in graph and graph["ser_utils.training.loop"]  # the walk sees real imports
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """import-linter's ``lint-imports`` on the package under ``root``, with the contracts of
    ``root/pyproject.toml`` (the layers, top to bottom, and the independent pairs)."""
    import os
    import sys

    env = {**os.environ, "PYTHONPATH": str(root)}
    script = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(script), "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_layers_contract_holds():
    result = lint_imports(config.REPO_ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "BROKEN" not in result.stdout and "0 broken" in result.stdout


def test_the_layers_contract_fails_on_a_planted_forbidden_import(tmp_path):
    """The contract is not decoration: prediction importing the sweep, or the lowest layer
    importing training, is reported with the offending line."""
    import shutil

    shutil.copytree(PACKAGE, tmp_path / "ser_utils", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(config.REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    windowing = tmp_path / "ser_utils" / "predict" / "windowing.py"
    windowing.write_text(windowing.read_text() + "\nfrom ser_utils.experiments import sweep  # planted\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "ser_utils.predict.windowing -> ser_utils.experiments.sweep" in result.stdout
    windowing.write_text(windowing.read_text().replace("from ser_utils.experiments import sweep  # planted", ""))
    fileio = tmp_path / "ser_utils" / "fileio.py"
    fileio.write_text(fileio.read_text() + "\n\ndef _planted():\n    from ser_utils.training import loop\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0 and "ser_utils.fileio -> ser_utils.training.loop" in result.stdout


def test_the_top_of_the_package_holds_only_the_shared_modules():
    """Everything else lives in its layer's subpackage (data, features, models, training,
    experiments, analysis, predict, notebook)."""
    top = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__"))
    assert top == ["cli", "config", "errors", "fileio", "pipeline", "runs", "stats", "workers"]
    assert sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()) == [
        "analysis", "data", "experiments", "features", "models", "notebook", "predict", "training"]


def test_the_run_folder_and_the_analysis_never_import_torch():
    """runs, analysis, report and published read JSON and CSV only: the analysis starts fast."""
    code = ("import sys; import ser_utils.runs, ser_utils.analysis.tables, ser_utils.analysis.report, ser_utils.analysis.published; "
            "print('torch' in sys.modules)")
    out = subprocess.run([__import__("sys").executable, "-c", code], capture_output=True, text=True,
                         cwd=config.REPO_ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_modules_stay_small_or_say_why():
    large = []
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = len(path.read_text().splitlines())
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        if lines > MAX_LINES and "larger than" not in doc:
            large.append(f"{path.relative_to(config.REPO_ROOT)} ({lines} lines)")
    assert not large, f"split these modules or say in their docstring why they are larger than {MAX_LINES} lines: {large}"


def test_nothing_outside_the_tests_points_outside_the_repository():
    tracked = subprocess.run(["git", "ls-files"], capture_output=True, text=True, cwd=config.REPO_ROOT).stdout.split()
    if not tracked:  # not a git checkout (an sdist): check the package itself
        tracked = [str(p.relative_to(config.REPO_ROOT)) for p in PACKAGE.rglob("*.py")]
    offenders = [f for f in tracked if not f.startswith("tests/") and f.endswith((".py", ".md", ".ipynb", ".toml", ".yml"))
                 and (config.REPO_ROOT / f).is_file() and ("../shared" in (config.REPO_ROOT / f).read_text(errors="ignore")
                                                           or "DESIGN.md" in (config.REPO_ROOT / f).read_text(errors="ignore"))]
    assert not offenders, f"files that point outside the repository: {offenders}"


def test_every_file_of_the_package_is_tracked_by_git():
    """An ignore rule must never swallow a module (a ``data/`` rule once hid ``ser_utils/data/__init__.py``):
    a fresh clone would then lack it."""
    listed = subprocess.run(["git", "ls-files", "--others", "--ignored", "--exclude-standard", "ser_utils"],
                            capture_output=True, text=True, cwd=config.REPO_ROOT)
    if listed.returncode != 0:  # not a git checkout (an sdist)
        return
    ignored = [f for f in listed.stdout.split() if f.endswith(".py")]
    assert not ignored, f"package files git ignores (a fresh clone lacks them): {ignored}"
