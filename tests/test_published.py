"""The course report's published numbers: present, complete, consistent with what the report states."""

from __future__ import annotations

import math

import pytest

from ser_utils import config
from ser_utils.analysis import published


def test_the_best_published_model_is_the_2d_cnn_with_silu_at_lr_0_001():
    best = published.best()
    assert (best["model"], best["activation"], best["lr"]) == ("2d", "silu", 0.001)
    assert best["accuracy"] == pytest.approx(0.641)
    assert (best["f1"], best["precision"]) == (pytest.approx(0.639), pytest.approx(0.643))
    assert best["run_id"] == "2d-silu-lr0.001"


def test_tables_3_and_4_cover_the_whole_grid_of_their_model():
    for name, model in (("table3", "2d"), ("table4", "1d")):
        rows = published.table(name)
        assert len(rows) == 9
        assert set(rows["model"]) == {model}
        assert {(a, lr) for a, lr in zip(rows["activation"], rows["lr"])} == {
            (a, lr) for a in config.ACTIVATIONS for lr in config.LEARNING_RATES}
        # weighted recall is the accuracy, as it must be
        assert (rows["recall"] == rows["accuracy"]).all()


def test_table_2_has_six_rows_with_the_combined_variants_named_as_our_models():
    rows = published.table("table2")
    assert len(rows) == 6
    assert list(rows["model"]) == ["2d", "combined-varlen", "combined", "1d", "resnet38", "resnet101"]
    assert set(rows.loc[rows["report_model"] == "combined", "variant"]) == {"variable-length", "fixed-size"}
    assert rows["recall"].isna().all()  # Table 2 publishes no recall


def test_table_2_agrees_with_tables_3_and_4_where_they_overlap():
    rows = published.all_rows()
    for run_id, group in rows.groupby("run_id"):
        if len(group) > 1:
            numbers = group[["accuracy", "f1", "precision"]]
            assert (numbers.nunique() == 1).all(), run_id


def test_lookup_accepts_our_model_names_and_the_reports_variants():
    varlen = published.lookup("combined-varlen", "silu", 0.001)
    assert varlen == published.lookup("combined", "silu", 0.001, variant="variable-length")
    assert varlen["accuracy"] == pytest.approx(0.622)
    assert published.lookup("combined", "silu", 0.001)["accuracy"] == pytest.approx(0.613)
    assert published.lookup("1d", "elu", 0.01)["recall"] == pytest.approx(0.556)  # from Table 4, not 2
    assert published.lookup("1d", "elu", "0.01")["accuracy"] == pytest.approx(0.556)
    assert published.lookup("combined", "relu", 0.1) is None  # no per-configuration combined table


def test_bad_names_say_what_exists():
    with pytest.raises(ValueError, match="table2, table3, table4"):
        published.table("table5")
    with pytest.raises(ValueError, match="variable-length"):
        published.lookup("combined", "silu", 0.001, variant="varlen")


def test_the_reports_stated_differences_follow_from_its_tables():
    silu, relu = published.lookup("2d", "silu", 0.001), published.lookup("2d", "relu", 0.001)
    assert 100 * (silu["accuracy"] - relu["accuracy"]) == pytest.approx(published.SILU_OVER_RELU_2D_POINTS)
    fixed = published.lookup("combined", "silu", 0.001)["accuracy"]
    assert (fixed, published.lookup("combined-varlen", "silu", 0.001)["accuracy"]) == (0.613, 0.622)
    assert published.lookup("resnet101", "relu", 0.001)["accuracy"] == published.RESNET101_TRAIN_VAL["val_acc"]


def test_per_class_f1_in_emotion_order_with_what_is_published():
    f1 = published.per_class_f1()
    assert list(f1.index) == list(config.EMOTIONS)
    assert f1["ANG"] == 0.76 and f1["HAP"] == 0.71 and f1["FEA"] == 0.55
    assert f1[["DIS", "NEU", "SAD"]].isna().all()
    named = f1.dropna()
    assert set(named.nlargest(2).index) == set(published.BEST_RECOGNISED)
    assert named.idxmin() in published.WORST_RECOGNISED
    assert all(a in config.EMOTIONS and b in config.EMOTIONS for a, b in published.CONFUSED_PAIRS)


def test_rows_are_a_fresh_copy_each_time():
    rows = published.all_rows()
    rows.loc[:, "accuracy"] = 0.0
    assert published.best()["accuracy"] == pytest.approx(0.641)


def test_split_sizes_add_up_to_the_corpus_and_run_ids_follow_the_project_convention():
    assert math.isclose(sum(published.SPLIT_SIZES.values()), config.N_CLIPS_RELEASED, rel_tol=0.01)
    assert published.run_id("2d", "silu", 0.001) == "2d-silu-lr0.001"
    assert published.run_id("1d", "elu", 0.1) == "1d-elu-lr0.1"
