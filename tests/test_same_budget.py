"""Notebook 12's comparisons: the runs of a pair must differ in the model alone, or they are not compared;
comparable runs get the paired test on the same test clips."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from ser_utils import runs, training
from ser_utils.analysis import same_budget
from ser_utils.training import runtime

from test_training import make_data, short_cfg


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory):
    """1d and 1d-attn at one budget, and 1d-attn with one more epoch (random clips with a learnable signal)."""
    out = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runtime, "usable_cpus", lambda: 1)
        data = make_data(96)
        cfgs = {"1d": short_cfg(epochs=1), "1d-attn": short_cfg(model="1d-attn", epochs=1),
                "1d-attn-e2": short_cfg(model="1d-attn", epochs=2)}
        for cfg in cfgs.values():
            training.run(cfg, data, out_dir=out, progress=False)
    return {name: out / cfg.run_id for name, cfg in cfgs.items()}


def test_runs_that_differ_beyond_the_model_are_not_compared(three_runs):
    row = same_budget.paired_comparison(three_runs["1d-attn-e2"], three_runs["1d"], n_boot=200)
    assert row["verdict"].startswith("not comparable") and "epochs" in row["verdict"]
    assert math.isnan(row["p"]) and row["n_clips"] == 0


def test_runs_at_one_budget_get_the_paired_test_on_their_common_clips(three_runs):
    row = same_budget.paired_comparison(three_runs["1d-attn"], three_runs["1d"], n_boot=200)
    a = runs.load_run(three_runs["1d-attn"])["predictions"].set_index("path").sort_index()
    b = runs.load_run(three_runs["1d"])["predictions"].set_index("path").loc[a.index]
    correct_a, correct_b = (a["true"] == a["predicted"]), (b["true"] == b["predicted"])
    assert row["n_clips"] == len(a) == 20  # the test split of 96 clips
    assert row["difference"] == pytest.approx(correct_a.mean() - correct_b.mean())
    assert row["lo"] <= row["difference"] <= row["hi"] and 0 < row["p"] <= 1
    only_a, only_b = int((correct_a & ~correct_b).sum()), int((~correct_a & correct_b).sum())
    expected = "not significant" if row["p"] >= 0.05 else ("better" if only_a != only_b else "")
    assert expected in row["verdict"]
    lines = same_budget.findings(pd.DataFrame([{**row, "source": "quick"}]), synthetic=True)
    assert "exact McNemar" in lines[0] and "Quick runs" in lines[1] and "synthetic" in lines[2]


def test_pairs_use_the_sweep_only_when_it_has_both_models(three_runs, tmp_path):
    pairs = same_budget.parse_pairs("1d-attn:1d, transformer:1d")
    assert pairs == [("1d-attn", "1d"), ("transformer", "1d")]
    found = {"1d": three_runs["1d"], "1d-attn": three_runs["1d-attn"]}
    assert same_budget.models_to_train(pairs, found) == ["transformer", "1d"]
    quick = {"transformer": tmp_path / "t", "1d": tmp_path / "q1d"}
    chosen = same_budget.choose_runs(pairs, found, quick)
    assert chosen == [(three_runs["1d-attn"], three_runs["1d"], "sweep"), (tmp_path / "t", tmp_path / "q1d", "quick")]
    with pytest.raises(ValueError, match="NEW:BASELINE"):
        same_budget.parse_pairs("transformer")
