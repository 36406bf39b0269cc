"""Notebook 12 (attention pooling and the transformer) runs under papermill on the tiny corpus:
it quick-trains both models of each pair at one budget, tests them on the same clips and draws
the attention weights."""

from __future__ import annotations

import nbformat
import pytest

from ser_utils import config

from test_notebooks import execute


@pytest.mark.slow
def test_attention_notebook_runs_on_the_tiny_corpus(tiny_corpus, notebook_outputs, tmp_path):
    out = tmp_path / "12_attention_transformer.ipynb"
    execute(config.NOTEBOOKS_DIR / "12_attention_transformer.ipynb", out,
            {"data_dir": str(tiny_corpus), "runs_dir": str(tmp_path / "runs"), "quick_runs_dir": str(tmp_path / "quick"),
             "pairs": "transformer:2d", "epochs": 1, "max_train_clips": 32, "n_clips_shown": 1,
             "n_boot": 200})
    executed = nbformat.read(out, as_version=4)
    trained = sorted(p.parent.name for p in (tmp_path / "quick").glob("*/metrics.json"))
    assert trained == ["2d-silu-lr0.001-e1-bs16", "transformer-silu-lr0.001-e1-bs16"]
    text = "\n".join(str(o.get("data", {}).get("text/markdown", "")) for c in executed.cells if c.cell_type == "code"
                     for o in c.outputs)
    assert "(quick runs): test accuracy" in text  # the pair compared at one budget
    assert "McNemar" in text and config.SYNTHETIC_LABEL in text
    assert "**transformer-silu-lr0.001-e1-bs16**: weights" in text  # what its attention does, computed
    assert list((notebook_outputs / "figures" / "12_attention_transformer").glob("attention_0.png"))
