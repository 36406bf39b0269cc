"""The notebooks teach and say only what is true: exercises with checks and hidden solutions,
derive-then-assert cells that ran, short code cells, no parameter count attributed to the report.

The executed notebooks come from the runs other tests already make (test_notebooks.py executes
01-06 on the tiny corpus, test_pipeline.py runs 07 through the sweep): they call
:func:`assert_taught` on what they executed, so nothing is executed twice.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from ser_utils import config
from ser_utils.notebook import exercises

NOTEBOOKS = sorted(config.NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
#: Notebooks with exercises (two or three each).
EXERCISE_NOTEBOOKS = [p for p in NOTEBOOKS if "01" <= p.name[:2] <= "08"]
#: How many derive-then-assert lines (exercises.AGREE_MARK) each notebook's run prints at least.
DERIVATIONS = {"02_preprocessing": 1, "03_feature_extraction": 3, "04_model_cnn1d": 3, "05_model_cnn2d": 3,
               "06_model_combined": 3, "07_train": 1}
MAX_CODE_LINES = 25

# The report gives no parameter counts: any wording that says it does is wrong.
ATTRIBUTIONS = re.compile(
    r"the (?:course )?report'?s? (?:parameter )?counts?|\(the report: (?:[0-9]{1,3},[0-9]{3}|\{config)|"
    r"report_parameters|parameters \(the report", re.IGNORECASE)


def find_attributions(text: str) -> list[str]:
    """Every phrase of ``text`` that attributes a parameter count to the report."""
    return [m.group(0) for m in ATTRIBUTIONS.finditer(text)]


def _searched_files() -> list[Path]:
    root = config.REPO_ROOT
    files = [*NOTEBOOKS, *(root / "ser_utils").rglob("*.py"), *(root / "docs").glob("*.md"),
             *(root / "benchmarks").glob("*.py"), *(root / "tests").glob("*.py"), root / "README.md"]
    return [f for f in files if f.is_file() and f.name != Path(__file__).name]


def test_the_attribution_finder_sees_the_old_wordings_and_passes_the_true_one():
    for wrong in ["507,654 (the report's count)", "(the report: 507,654)", "The report's parameter counts pin",
                  "config.REPORT_PARAMETERS['1d']", "The course report's counts for 6 classes"]:
        assert find_attributions(wrong), wrong
    for right in ["our count of the report's pseudocode (conv bias, affine GroupNorm 8 groups)",
                  "The report gives no parameter counts", "config.PSEUDOCODE_PARAMETERS",
                  "epochs: int = 1  # epochs of a quick run (the report: 150)"]:
        assert not find_attributions(right), right


@pytest.mark.parametrize("path", _searched_files(), ids=lambda p: str(p.relative_to(config.REPO_ROOT)))
def test_no_parameter_count_is_attributed_to_the_report(path):
    found = find_attributions(path.read_text(encoding="utf-8"))
    assert not found, (f"{path.name}: {found}: the report gives no parameter counts; say 'our count of the "
                       "report's pseudocode (conv bias on, affine GroupNorm with 8 groups)' (docs/deviations.md row 5)")


# -------------------------------------------------------------------------- exercises
def exercise_units(nb) -> list[tuple[int, int]]:
    """(check cell, solution cell) index pairs: each check cell followed by the next solution cell."""
    tags = [set(c.metadata.get("tags", [])) for c in nb.cells]
    checks = [i for i, t in enumerate(tags) if "check" in t]
    solutions = [i for i, t in enumerate(tags) if "solution" in t]
    return [(c, next((s for s in solutions if s > c), -1)) for c in checks]


@pytest.mark.parametrize("path", EXERCISE_NOTEBOOKS, ids=[p.stem for p in EXERCISE_NOTEBOOKS])
def test_every_notebook_has_exercises_with_a_check_and_a_hidden_solution(path):
    nb = nbformat.read(path, as_version=4)
    units = exercise_units(nb)
    assert len(units) >= 2, f"{path.name}: {len(units)} exercise(s) with a check cell; two or three expected"
    for check, solution in units:
        assert nb.cells[check].cell_type == "code" and nb.cells[check].source.strip(), \
            f"{path.name} cell {check}: a check is a code cell that checks the answer"
        assert solution > check, f"{path.name}: the check in cell {check} has no solution cell after it"
        cell = nb.cells[solution]
        assert cell.metadata.get("jupyter", {}).get("source_hidden") is True, \
            f"{path.name} cell {solution}: the solution's source must be collapsed (jupyter.source_hidden)"
        attempt = nb.cells[check - 1]
        assert "exercise" in attempt.metadata.get("tags", []), \
            f"{path.name} cell {check - 1}: the check follows the reader's attempt cell, tagged 'exercise'"
        if "exercises.check(" in nb.cells[check].source:
            assert "solution=True" in cell.source, f"{path.name} cell {solution}: the solution checks itself"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_no_code_cell_is_long(path):
    nb = nbformat.read(path, as_version=4)
    long = [(i, len(c.source.splitlines())) for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and len(c.source.splitlines()) > MAX_CODE_LINES]
    assert not long, f"{path.name}: code cells (index, lines) {long} exceed {MAX_CODE_LINES} lines; move code to ser_utils"


def test_deviations_table_is_linked_where_it_matters():
    doc = config.REPO_ROOT / "docs" / "deviations.md"
    assert doc.is_file()
    for name in ["03_feature_extraction", "04_model_cnn1d", "05_model_cnn2d", "06_model_combined", "07_train",
                 "09_alternatives"]:
        text = (config.NOTEBOOKS_DIR / f"{name}.ipynb").read_text()
        assert "../docs/deviations.md" in text, f"{name} does not link docs/deviations.md"


# ------------------------------------------------------ executed notebooks (called by other tests)
def _text_outputs(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output.get("text", ""))
        elif "data" in output:
            parts.append(output["data"].get("text/plain", ""))
    return "".join(parts)


def assert_taught(name: str, executed) -> None:
    """An executed notebook ran its derive-then-assert cells and every solution proved right."""
    agreed = sum(_text_outputs(c).count(exercises.AGREE_MARK) for c in executed.cells if c.cell_type == "code")
    assert agreed >= DERIVATIONS.get(name, 0), f"{name}: {agreed} derive-then-assert line(s) printed"
    for check, solution in exercise_units(executed):
        if "exercises.check(" not in executed.cells[solution].source:
            continue
        out = _text_outputs(executed.cells[solution])
        assert exercises.RIGHT in out, f"{name} cell {solution}: the solution did not print '{exercises.RIGHT}': {out!r}"
        assert exercises.NOT_ATTEMPTED in _text_outputs(executed.cells[check]), \
            f"{name} cell {check}: the check of an unattempted exercise should say so"


# ------------------------------------------------------------------ the checking helpers
def test_check_says_not_attempted_right_and_wrong_with_what_to_look_at(capsys):
    def verdict(*args, **kwargs) -> str:
        exercises.check(*args, **kwargs)
        return capsys.readouterr().out

    assert verdict("x", None, 3).startswith(exercises.NOT_ATTEMPTED)
    assert verdict("x", 3, 3).startswith(exercises.RIGHT)
    out = verdict("x", 4, 3, hint="count again")
    assert out.startswith(exercises.WRONG) and "count again" in out and "got 4" in out
    assert verdict("pair", "ang", "ANG").startswith(exercises.RIGHT)
    assert verdict("pair", "SAD", "ANG").startswith(exercises.WRONG)
    assert verdict("near", 0.1251, 0.125, atol=0.005).startswith(exercises.RIGHT)
    assert "1 of 2 values differ" in verdict("rows", [1.0, 2.0], [1.0, 2.5])
    assert "shape (1,)" in verdict("shape", [1.0], [1.0, 2.0])


def test_a_wrong_solution_raises_and_agree_fails_on_a_difference():
    with pytest.raises(AssertionError, match="solution of x is wrong"):
        exercises.check("x", 4, 3, solution=True)
    with pytest.raises(AssertionError):
        exercises.agree("rows", [1.0, 2.0], [1.0, 2.1])
    with pytest.raises(AssertionError, match="shape"):
        exercises.agree("rows", [1.0, 2.0], [1.0, 2.0, 3.0])


def test_agree_prints_the_line_the_notebook_tests_look_for(capsys):
    exercises.agree("rms", [1.0, 2.0], [1.0, 2.0 + 1e-9])
    assert capsys.readouterr().out.startswith(f"{exercises.AGREE_MARK} rms (shape (2,)")


# --------------------------------------------------------------------- the branch ablation
def _tiny_training_data(n: int = 12):
    import numpy as np
    import pandas as pd

    from ser_utils.training.data import TrainingData

    rng = np.random.default_rng(0)
    manifest = pd.DataFrame({"emotion": [config.EMOTIONS[i % 6] for i in range(n)],
                             "split": ["train"] * (n // 2) + ["test"] * (n - n // 2)})
    x1d = rng.standard_normal((n, 27, 301)).astype(np.float32)
    x2d = rng.random((n, 1, 64, 64)).astype(np.float32)
    return TrainingData.from_manifest(manifest, x1d, x2d)


def test_branch_ablation_both_trunks_is_the_models_own_accuracy_and_a_constant_trunk_adds_nothing():
    import numpy as np
    import torch

    from ser_utils import models
    from ser_utils.analysis import ablation
    from ser_utils.training import checkpoint

    torch.manual_seed(0)
    model = models.build_model("combined").eval()
    data = _tiny_training_data()
    test = data.indices("test")
    table = ablation.branch_ablation(model, data).set_index("inputs")
    own = (checkpoint.predict(model, data, test, device="cpu").argmax(1) == data.y[test]).mean()
    assert table.loc[ablation.BOTH, "accuracy"] == pytest.approx(own)
    assert (table["clips"] == len(test)).all() and (table["lo"] <= table["accuracy"]).all()

    class Constant(torch.nn.Module):  # a 2D trunk that ignores its input: its mean is its output
        def forward(self, x):
            return torch.linspace(-1, 1, 1024).expand(len(x), 1024)

    model.trunk2d = Constant()
    table = ablation.branch_ablation(model, data).set_index("inputs")
    alone_1d = table.loc[ablation.ONLY.format("1D trunk"), "correct"]
    assert alone_1d == table.loc[ablation.BOTH, "correct"]
    assert np.isfinite(table["accuracy"]).all()
