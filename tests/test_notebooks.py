"""Every notebook runs top to bottom (papermill) on a tiny corpus, and is committed clean."""

from __future__ import annotations

import json
import re

import nbformat
import pytest

from ser_utils import config
from tests.test_teaching import assert_taught

NOTEBOOKS = sorted(config.NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; strip them (jupyter nbconvert --clear-output --inplace)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_has_a_tagged_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert tagged, f"{path.name}: no cell tagged 'parameters' (papermill needs one)"
    assert "data_dir" in tagged[0].source or "runs_dir" in tagged[0].source


def test_no_long_helpers_in_notebooks():
    """Notebooks stay thin: no function longer than ~10 lines (those belong in ser_utils)."""
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code" and "def " in cell.source:
                lines = cell.source.splitlines()
                start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("def "))
                assert len(lines) - start <= 12, f"{path.name}: move the helper to ser_utils"


def execute(source, out, parameters):
    """papermill with a cell timeout and one retry on a timeout.

    A headless kernel occasionally finishes a cell whose ``idle`` message the client never
    receives (seen once with ipywidgets output); the timeout turns that stall into an error and
    the retry tells it apart from a notebook that really hangs.
    """
    import papermill as pm
    from nbclient.exceptions import CellTimeoutError

    for attempt in (1, 2):
        try:
            return pm.execute_notebook(str(source), str(out), parameters=parameters, cwd=str(config.NOTEBOOKS_DIR),
                                       progress_bar=False, kernel_name="python3", execution_timeout=240)
        except CellTimeoutError:
            if attempt == 2:
                raise


STORY_NOTEBOOKS = ["01_data_tour", "02_preprocessing", "03_feature_extraction",
                   "04_model_cnn1d", "05_model_cnn2d", "06_model_combined"]


@pytest.mark.slow
@pytest.mark.parametrize("name", STORY_NOTEBOOKS)
def test_notebook_runs_on_the_tiny_corpus(name, tiny_corpus, notebook_outputs, tmp_path):
    out = tmp_path / f"{name}.ipynb"
    execute(config.NOTEBOOKS_DIR / f"{name}.ipynb", out, {"data_dir": str(tiny_corpus)})
    executed = nbformat.read(out, as_version=4)
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    figures = list((notebook_outputs / "figures" / name).glob("*.png"))
    assert figures, f"{name} saved no figure under outputs/figures/{name}/"
    html = json.dumps(executed.cells[:6])
    assert "synthetic" in html.lower()  # the banner says the corpus is not CREMA-D
    assert_taught(name, executed)  # derive-then-assert lines printed, every solution proved right


@pytest.mark.slow
def test_alternatives_notebook_runs_on_the_tiny_corpus(tiny_corpus, notebook_outputs, tmp_path):
    """Notebook 09 trains each alternative briefly (1 epoch, 32 clips) and compares them."""
    out = tmp_path / "09_alternatives.ipynb"
    execute(config.NOTEBOOKS_DIR / "09_alternatives.ipynb", out,
            {"data_dir": str(tiny_corpus), "runs_dir": str(tmp_path / "runs"),
             "quick_runs_dir": str(tmp_path / "quick"), "epochs": 1, "max_train_clips": 32})
    trained = {p.parent.name.split("-relu")[0] for p in (tmp_path / "quick").glob("*/metrics.json")}
    assert {"resnet38", "resnet101", "combined-varlen", "combined-mean1d"} <= trained

    # Notebook 08 on these real runs (checkpoints, probabilities, the tiny corpus's audio): its error analysis
    figures = tmp_path / "figures"
    executed = execute(config.NOTEBOOKS_DIR / "08_analysis.ipynb", tmp_path / "08_analysis.ipynb",
                       {"data_dir": str(tiny_corpus), "runs_dir": str(tmp_path / "quick"), "figures_dir": str(figures)})
    text = json.dumps([c.get("outputs", []) for c in executed.cells])
    for shown in ("heard as", "<audio", "ECE = ", "nearest neighbours", "Hiding the patch", "not answered yet"):
        assert shown in text, f"08's error analysis shows no {shown!r}"
    difference = float(re.search(r"the run's own test probabilities: ([0-9.e+-]+)", text).group(1))
    assert difference < 1e-4  # the recomputed inputs are the ones the run was tested on
    assert {"error_occlusion", "error_embeddings", "error_reliability"} <= {
        p.stem for p in (figures / "08_analysis").glob("*.png")}


# ------------------------------------------------------- every parameter arrives
def _parameters_cell_index(nb) -> int:
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{len(tagged)} cells are tagged 'parameters'; papermill needs exactly one"
    assert nb.cells[tagged[0]].cell_type == "code", "the cell tagged 'parameters' must be a code cell"
    return tagged[0]


def _override(name: str, spec: dict):
    """A value of the declared type that differs from the default (the default's literal decides)."""
    import ast

    default = ast.literal_eval(spec["default"])
    declared = spec.get("inferred_type_name")
    assert declared in (None, "None", type(default).__name__), (
        f"parameter {name}: annotated {declared} but its default {spec['default']} is a {type(default).__name__}")
    if isinstance(default, bool):
        return not default
    if isinstance(default, int):
        return default + 7
    if isinstance(default, float):
        return default * 3 + 0.25
    if isinstance(default, str):
        return f"{default}-override-{name}" if default else f"override-{name}"
    raise AssertionError(f"parameter {name}: no override for a default of type {type(default).__name__}; "
                         "teach this test one")


class _Scope:
    """Names a notebook cell reads, and names it binds at the notebook's top level (not inside a
    function, class, lambda or comprehension, which have scopes of their own)."""

    def __init__(self, source: str):
        import ast

        lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]  # magics
        self.reads, self.binds = set(), set()
        self._visit(ast.parse("\n".join(lines)), top=True)

    def _visit(self, node, top: bool) -> None:
        import ast

        nested = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda, ast.ListComp, ast.SetComp,
                  ast.DictComp, ast.GeneratorExp)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Name):
                (self.reads if isinstance(child.ctx, ast.Load) else self.binds if top else set()).add(child.id)
            elif isinstance(child, (ast.Import, ast.ImportFrom)) and top:
                self.binds.update((a.asname or a.name).split(".")[0] for a in child.names)
            self._visit(child, top and not isinstance(child, nested))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_parameter_is_read_and_never_overwritten(path):
    """An override reaches the notebook's code only if a later cell reads the name and none rebinds it."""
    import papermill as pm

    nb = nbformat.read(path, as_version=4)
    first = _parameters_cell_index(nb) + 1
    later = [_Scope(c.source) for c in nb.cells[first:] if c.cell_type == "code"]
    for name in pm.inspect_notebook(str(path)):
        assert any(name in s.reads for s in later), f"{path.name}: parameter {name!r} is never read"
        assert not any(name in s.binds for s in later), f"{path.name}: a later cell overwrites parameter {name!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_papermill_overrides_every_declared_parameter(path, tmp_path):
    """Every parameter of ``papermill.inspect_notebook``, overridden at once with a value of its
    type that differs from the default, arrives in the kernel as given. Cheap: the notebook is cut
    to its parameters cell and a cell that writes the values out (papermill injects its cell
    between them), so nothing else runs."""
    import papermill as pm

    declared = pm.inspect_notebook(str(path))
    assert declared, f"{path.name}: papermill finds no parameter"
    overrides = {name: _override(name, spec) for name, spec in declared.items()}
    nb = nbformat.read(path, as_version=4)
    seen = tmp_path / "seen.json"
    dump = nbformat.v4.new_code_cell(
        f"import json\njson.dump({{n: globals()[n] for n in {sorted(declared)!r}}}, open({str(seen)!r}, 'w'))")
    nb.cells = [nb.cells[_parameters_cell_index(nb)], dump]
    trimmed = tmp_path / path.name
    nbformat.write(nb, trimmed)
    executed = pm.execute_notebook(str(trimmed), str(tmp_path / "out.ipynb"), parameters=overrides,
                                   progress_bar=False, kernel_name="python3", execution_timeout=120)
    tags = [c.metadata.get("tags", []) for c in executed.cells]
    assert tags[:2] == [["parameters"], ["injected-parameters"]]
    arrived = json.loads(seen.read_text())
    assert arrived == overrides
    assert {n: type(v) for n, v in arrived.items()} == {n: type(v) for n, v in overrides.items()}


@pytest.mark.slow
def test_augmentation_notebook_runs_on_the_tiny_corpus(tiny_corpus, notebook_outputs, tmp_path):
    """Notebook 11 trains a run with waveform and spec augmentation and its plain twin briefly, and
    computes the paired test's verdict."""
    out = tmp_path / "11_augmentation.ipynb"
    execute(config.NOTEBOOKS_DIR / "11_augmentation.ipynb", out,
            {"data_dir": str(tiny_corpus), "runs_dir": str(tmp_path / "runs"), "quick_runs_dir": str(tmp_path / "quick"),
             "model": "1d", "activation": "relu", "augment": "both", "epochs": 1, "max_train_clips": 24})
    trained = sorted(p.parent.name for p in (tmp_path / "quick").glob("*/metrics.json"))
    assert trained == ["1d-relu-lr0.001-e1-bs32", "1d-relu-lr0.001-e1-bs32-aug-both"]
    executed = nbformat.read(out, as_version=4)
    text = json.dumps([c.outputs for c in executed.cells if c.cell_type == "code"])
    assert "quick budget" in text and ("Not significant" in text or "Significant" in text)
    assert "synthetic" in text.lower()
    assert {"wave-logmels.png", "spec-masks.png", "loss-curves.png"} <= {
        p.name for p in (notebook_outputs / "figures" / "11_augmentation").glob("*.png")}


@pytest.mark.slow
def test_tuning_notebook_runs_a_quick_study_on_the_tiny_corpus(tiny_corpus, notebook_outputs, tmp_path):
    """Notebook 13 with no study: it runs the quick budget (2 trials, 1 epoch), plots it with Optuna's
    matplotlib backend and states a conclusion computed from the paired comparison."""
    out = tmp_path / "13_tuning.ipynb"
    execute(config.NOTEBOOKS_DIR / "13_tuning.ipynb", out,
            {"data_dir": str(tiny_corpus), "out_dir": str(tmp_path / "out"), "trials": 2, "epochs": 1})
    figures = {p.stem for p in (notebook_outputs / "figures" / "13_tuning").glob("*.png")}
    assert {"history", "importances", "parallel_coordinates", "slices", "learning_curves"} <= figures
    study = json.loads((tmp_path / "out" / "tuning" / "1d-random" / "study.json").read_text())
    executed = nbformat.read(out, as_version=4)
    markdown = [o["data"]["text/markdown"] for c in executed.cells if c.cell_type == "code"
                for o in c.outputs if "text/markdown" in o.get("data", {})]
    assert markdown and f"p = {study['comparison']['p']:.3g}" in markdown[-1]
    assert config.SYNTHETIC_LABEL in markdown[-1]
