"""The analysis: tables, figures, the human baseline and notebook 08, on fake run folders (fast)."""

from __future__ import annotations

import math

import base64
import json
import zlib
import shutil
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from ser_utils.errors import UserError
from ser_utils import analysis, config, runs, stats
from ser_utils.analysis import plots, published
from ser_utils.data import dataset
from tests.conftest import SHARED_CREMA_D

#: A 1x1 PNG: enough for an executed notebook with an image output.
TINY_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")

#: A partial sweep: all 1d, three 2d, two combined; one failed, one killed mid-way.
FAKE_CONFIGS = ([("1d", a, lr) for a in config.ACTIVATIONS for lr in config.LEARNING_RATES]
                + [("2d", "relu", 0.001), ("2d", "silu", 0.001), ("2d", "elu", 0.01)]
                + [("combined", "relu", 0.001), ("combined", "silu", 0.01)])
FAILED = ("2d", "relu", 0.1)
INCOMPLETE = ("combined", "elu", 0.1)


def fake_clip_names(n_actors: int = 4) -> list[str]:
    return dataset.grid_names(range(config.FIRST_ACTOR, config.FIRST_ACTOR + n_actors))


def fake_accuracy(model: str, activation: str, lr: float) -> float:
    """Deterministic, distinct accuracies: combined > 2d > 1d, lr 0.1 worst."""
    base = {"1d": 0.40, "2d": 0.50, "combined": 0.60}[model]
    return round(base + 0.01 * config.ACTIVATIONS.index(activation) - 0.05 * config.LEARNING_RATES.index(lr), 4)


def fake_notebook(path: Path, title: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    code = nbformat.v4.new_code_cell("fig = plots.learning_curves(history)", execution_count=1)
    code.outputs = [nbformat.v4.new_output("display_data", data={
        "image/png": base64.b64encode(TINY_PNG).decode(), "text/plain": "<Figure>"})]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {title}"), code]
    nbformat.write(nb, path)


def write_fake_run(runs_dir: Path, model: str, activation: str, lr: float, corpus: str = "synthetic",
                   names: list[str] | None = None, epochs: int = 5, status: str = "complete") -> Path:
    """A run folder as training.run + the sweep write it (no checkpoint)."""
    cfg = config.TrainConfig(model=model, activation=activation, lr=lr, epochs=epochs)
    run_dir = runs_dir / cfg.run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps({**cfg.to_dict(), "run_id": cfg.run_id,
                                                      "data": {"corpus": corpus}}))
    if status == "incomplete":
        return run_dir
    if status == "failed":
        (run_dir / "metrics.json").write_text(json.dumps({
            "status": "failed", "run_id": cfg.run_id, "model": model, "activation": activation, "lr": lr,
            "epochs": epochs, "error": "ValueError: boom"}))
        fake_notebook(run_dir / runs.RUN_NOTEBOOK, cfg.run_id)
        return run_dir
    rng = np.random.default_rng(zlib.crc32(cfg.run_id.encode()))  # hash() differs per process
    names = names or fake_clip_names()
    test = names[::3]
    true = [n.split("_")[2] for n in test]
    acc = fake_accuracy(model, activation, lr)
    predicted = [t if rng.random() < acc else rng.choice(config.EMOTIONS) for t in true]
    predictions = pd.DataFrame({"index": range(len(test)), "path": [f"/data/AudioWAV/{n}" for n in test],
                                "true": true, "predicted": predicted})
    predictions.to_csv(run_dir / "predictions.csv", index=False)
    confusion = pd.crosstab(predictions["true"], predictions["predicted"]).reindex(
        index=list(config.EMOTIONS), columns=list(config.EMOTIONS), fill_value=0)
    confusion.index.name = "true"
    confusion.to_csv(run_dir / "confusion.csv")
    epochs_axis = np.arange(1, epochs + 1)
    pd.DataFrame({"epoch": epochs_axis, "train_loss": 1.8 / epochs_axis, "train_acc": 1 - 0.5 / epochs_axis,
                  "val_loss": 1.7 / epochs_axis + 0.05 * epochs_axis, "val_acc": 0.4 + 0.01 * epochs_axis,
                  "lr": lr}).to_csv(run_dir / "history.csv", index=False)
    real_acc = float((predictions["true"] == predictions["predicted"]).mean())
    metrics = {"status": status, "run_id": cfg.run_id, "model": model, "activation": activation, "lr": lr,
               "split": "random", "seed": 42, "epochs": epochs, "accuracy": real_acc, "f1": real_acc - 0.01,
               "precision": real_acc + 0.01, "recall": real_acc, "f1_macro": real_acc - 0.02, "uar": real_acc,
               "per_class_f1": {e: round(float(rng.random()), 3) for e in config.EMOTIONS},
               "best_epoch": 2, "epochs_run": epochs, "best_val_loss": 0.95, "wall_time_s": 12.0,
               "time_per_epoch_s": 2.4, "n_params": 1000, "device": "cpu", "corpus": corpus,
               "n_train": 100, "n_val": 10, "n_test": len(test)}
    found = stats.run_intervals(true, predicted, labels=config.EMOTIONS)
    metrics.update({f"{name}{side}": found[f"{m}{side}"] for m, name in (("accuracy", "accuracy"), ("f1", "f1"),
                                                                          ("ua", "uar")) for side in ("_lo", "_hi")})
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    fake_notebook(run_dir / runs.RUN_NOTEBOOK, cfg.run_id)
    return run_dir


def make_fake_sweep(runs_dir: Path, corpus: str = "synthetic", names: list[str] | None = None,
                    configs: list[tuple] = FAKE_CONFIGS) -> Path:
    """A partial sweep with a failed and an incomplete folder."""
    for model, activation, lr in configs:
        write_fake_run(runs_dir, model, activation, lr, corpus=corpus, names=names)
    write_fake_run(runs_dir, *FAILED, corpus=corpus, status="failed")
    write_fake_run(runs_dir, *INCOMPLETE, corpus=corpus, status="incomplete")
    return runs_dir


@pytest.fixture(scope="module")
def fake_runs(tmp_path_factory) -> Path:
    return make_fake_sweep(tmp_path_factory.mktemp("sweep") / "runs")


@pytest.fixture(scope="module")
def results(fake_runs) -> pd.DataFrame:
    return runs.load_results(fake_runs)


# ------------------------------------------------------------------------ tables
def test_results_cover_every_folder_with_its_status(results):
    assert len(results) == len(FAKE_CONFIGS) + 2
    assert results["status"].value_counts().to_dict() == {"complete": len(FAKE_CONFIGS), "failed": 1, "incomplete": 1}
    assert list(results["model"].unique()) == ["1d", "2d", "combined"]  # grid order
    assert results.loc[results["status"] == "failed", "error"].item() == "ValueError: boom"


def test_table2_is_the_best_finished_run_per_model_beside_the_report(results):
    table = analysis.best_per_model(results)
    assert list(table["model"]) == ["1d", "2d", "combined"]
    done = runs.finished(results)
    for row in table.itertuples():
        assert row.accuracy == done.loc[done["model"] == row.model, "accuracy"].max()
    for row in table.itertuples():  # our 95% interval, the difference and whether the report's number lies inside
        lo, hi = (float(x) for x in row.accuracy_ci.split("-"))
        assert lo <= row.accuracy * 100 <= hi
        # the report's number for the same configuration, never the architecture's best beside another one
        same = published.lookup(row.model, row.activation, row.lr)
        if same is None:
            assert math.isnan(row.report_accuracy) and math.isnan(row.difference) and not isinstance(row.report_inside_ci, str)
            continue
        assert row.report_accuracy == same["accuracy"]
        assert row.difference == pytest.approx((row.accuracy - row.report_accuracy) * 100)
        assert row.report_inside_ci == ("yes" if lo <= row.report_accuracy * 100 <= hi else "no")


def test_tables_3_and_4_list_every_configuration_of_one_model(results):
    assert len(analysis.configuration_table(results, "1d")) == 9
    table3 = analysis.configuration_table(results, "2d")
    assert len(table3) == 4 and "failed" in set(table3["status"])
    for row in table3.itertuples():  # each configuration beside the report's published number for it
        assert row.report_accuracy == published.lookup("2d", row.activation, row.lr)["accuracy"]
    table4 = analysis.configuration_table(results, "1d").set_index(["activation", "lr"])
    assert table4.loc[("silu", 0.01), "report_accuracy"] == 0.541
    assert table4.loc[("elu", 0.01), "report_accuracy"] == 0.556
    combined = analysis.configuration_table(results, "combined")
    assert combined["report_accuracy"].isna().all()  # the report has no per-configuration combined table


def test_styled_tables_say_synthetic_and_show_percentages(results):
    table = analysis.best_per_model(results)
    html = analysis.style_table(table, "Table 2", analysis.is_synthetic(results)).to_html()
    assert "synthetic demo corpus — not CREMA-D" in html
    shown = table["report_accuracy"].dropna()
    assert len(shown) and all(f"{100 * x:.1f}%" in html for x in shown) and "background-color" in html
    real = analysis.style_table(table, "Table 2", synthetic=False).to_html()
    assert "not CREMA-D" not in real


def test_the_runs_corpus_decides_what_is_synthetic():
    assert analysis.is_synthetic(pd.DataFrame({"corpus": ["crema-d", None]}), default=True) is False
    assert analysis.is_synthetic(pd.DataFrame({"corpus": ["crema-d", "synthetic"]})) is True
    assert analysis.is_synthetic(pd.DataFrame({"corpus": [None]}), default=True) is True  # no run says


def test_banner_only_for_synthetic_numbers():
    assert "not CREMA-D" in analysis.banner_html(True)
    assert analysis.banner_html(False) == ""


def test_empty_sweep_gives_empty_tables(tmp_path):
    empty = runs.load_results(tmp_path / "none")
    assert empty.empty and analysis.best_per_model(empty).empty and analysis.best_run(empty) is None
    assert analysis.configuration_table(empty, "1d").empty
    assert "no runs" in analysis.sweep_status(empty, expected=27)


def test_results_csv_is_read_when_given(fake_runs, tmp_path):
    path = runs.write_results(fake_runs, tmp_path / "results.csv")
    assert len(runs.load_results(fake_runs, tmp_path / "results.csv")) == len(path)
    with pytest.raises(UserError, match="results_csv"):
        runs.load_results(fake_runs, tmp_path / "absent.csv")


def test_top_runs_are_sorted_by_accuracy(results):
    top = analysis.top_runs(results, 3)
    acc = results.set_index("run_id").loc[top, "accuracy"].tolist()
    assert acc == sorted(acc, reverse=True) and analysis.best_run(results) == top[0]


# ---------------------------------------------------------------------- confusions
def test_confused_pairs_are_ranked_off_diagonal():
    matrix = pd.DataFrame(np.diag([10.0] * 6), index=config.EMOTIONS, columns=config.EMOTIONS)
    matrix.loc["NEU", "SAD"] = 7
    matrix.loc["ANG", "DIS"] = 3
    matrix.loc["FEA", "SAD"] = 3
    matrix.loc["FEA", "FEA"] = 5  # same count as ANG->DIS, larger share of its row: ranked first
    pairs = analysis.confused_pairs(matrix, top=2)
    assert pairs[["true", "predicted"]].values.tolist() == [["NEU", "SAD"], ["FEA", "SAD"]]
    assert pairs.loc[0, "rate"] == pytest.approx(7 / 17)


def test_f1_from_confusion_matches_the_definition():
    matrix = pd.DataFrame(np.diag([5.0] * 6), index=config.EMOTIONS, columns=config.EMOTIONS)
    matrix.loc["ANG", "DIS"] = 5
    f1 = analysis.f1_from_confusion(matrix)
    assert f1["HAP"] == 1.0 and f1["ANG"] == pytest.approx(2 * 1 * 0.5 / 1.5)


# ------------------------------------------------------------------- human baseline
def test_tie_rules():
    assert analysis.vote_score("NEU", "NEU") == 1.0
    assert analysis.vote_score("NEU:SAD", "SAD", "split") == 0.5
    assert analysis.vote_score("NEU:SAD", "SAD", "strict") == 0.0
    assert analysis.vote_score("NEU:SAD", "SAD", "lenient") == 1.0
    assert analysis.vote_score("NEU:SAD", "ANG", "lenient") == 0.0
    with pytest.raises(ValueError, match="rule"):
        analysis.vote_score("NEU", "NEU", "coin")


@pytest.fixture(scope="module")
def real_votes() -> pd.DataFrame:
    if not (SHARED_CREMA_D / "summaryTable.csv").is_file():
        pytest.skip(f"{SHARED_CREMA_D / 'summaryTable.csv'} not present (real CREMA-D metadata)")
    return dataset.load_listener_votes(SHARED_CREMA_D)


def test_majority_vote_matches_the_intended_emotion_for_41_6_percent(real_votes):
    accuracy = analysis.human_accuracy(real_votes)
    assert accuracy["n"] == config.N_CLIPS_RELEASED
    assert accuracy["strict"] == pytest.approx(0.416, abs=0.0005)
    assert accuracy["strict"] < accuracy["split"] < accuracy["lenient"]


def test_human_baseline_on_the_models_test_clips(real_votes, tmp_path):
    run_dir = write_fake_run(tmp_path, "combined", "relu", 0.001, corpus="crema-d", names=fake_clip_names(5))
    predictions = pd.read_csv(run_dir / "predictions.csv")
    predictions.loc[0, "path"] = predictions.loc[0, "path"].replace("_XX.wav", "_X.wav")  # some copies say X
    baseline = analysis.human_baseline(predictions, real_votes)
    assert baseline["n_test"] == len(predictions) and 0 < baseline["n_voted"] <= len(predictions)
    clips = baseline["clips"].dropna(subset=["voice_vote"])
    expected = np.mean([analysis.vote_score(v, t) for v, t in zip(clips["voice_vote"], clips["true"])])
    assert baseline["human"]["split"] == pytest.approx(expected)
    human = baseline["human_confusion"]
    assert human.values.sum() == pytest.approx(baseline["n_voted"])  # a tie splits one vote
    assert baseline["model_confusion"].values.sum() == baseline["n_voted"]
    table = analysis.baseline_table(baseline)
    assert len(table) == 4 and table["who"].iloc[-1] == "model"


# ------------------------------------------------------------------------ figures
def test_figures_of_a_partial_sweep(results, fake_runs):
    import matplotlib.pyplot as plt

    fig7 = plots.accuracy_heatmaps(results)
    assert len(fig7.axes) == 3
    run = runs.load_run(fake_runs / analysis.best_run(results))
    fig8 = plots.confusion_counts_and_rates(run["confusion"], title="best")
    assert len(fig8.axes) == 2
    fig8b = plots.per_class_f1(analysis.per_class_f1(run["metrics"]), baseline=analysis.per_class_f1(run["metrics"]))
    top = analysis.top_runs(results, 3)
    fig9 = plots.loss_curves(analysis.histories(fake_runs, top), {top[0]: 2})
    assert len(fig9.axes) == 3
    fig_h = plots.human_vs_model_confusion(run["confusion"], run["confusion"])
    empty = plots.accuracy_heatmaps(results.iloc[0:0])
    for fig in (fig7, fig8, fig8b, fig9, fig_h, empty):
        plt.close(fig)


# ------------------------------------------------------------------------ notebook
@pytest.mark.slow
def test_notebook_08_on_real_crema_d_runs_shows_the_human_baseline(tmp_path):
    """Papermill runs 08 on a partial fake sweep labelled crema-d, with the real listener votes."""
    import papermill as pm

    if not (SHARED_CREMA_D / "summaryTable.csv").is_file():
        pytest.skip(f"{SHARED_CREMA_D / 'summaryTable.csv'} not present (real CREMA-D metadata)")
    root = tmp_path / "CREMA-D"
    (root / "AudioWAV").mkdir(parents=True)
    shutil.copy(SHARED_CREMA_D / "summaryTable.csv", root / "summaryTable.csv")  # a temp copy, outside the project
    runs = make_fake_sweep(tmp_path / "out" / "runs", corpus="crema-d", names=fake_clip_names(6))
    out = tmp_path / "08_analysis.ipynb"
    pm.execute_notebook(str(config.NOTEBOOKS_DIR / "08_analysis.ipynb"), str(out), cwd=str(config.NOTEBOOKS_DIR),
                        parameters={"runs_dir": str(runs), "data_dir": str(root),
                                    "figures_dir": str(tmp_path / "figures")},
                        progress_bar=False, kernel_name="python3")
    nb = nbformat.read(out, as_version=4)
    text = json.dumps([c.get("outputs", []) for c in nb.cells])
    assert "listeners, voice only" in text and "not CREMA-D" not in text
    saved = {p.stem for p in (tmp_path / "figures" / "08_analysis").glob("*.png")}
    assert {"fig7_accuracy_heatmaps", "fig8_confusion", "fig8_per_class_f1", "fig9_loss_curves",
            "human_vs_model_confusion"} <= saved


def test_notebook_09_conclusions_follow_the_table():
    """The comparison's sentences are computed: change the numbers and the conclusions change."""
    table = pd.DataFrame([
        {"label": "combined-relu-lr0.001 (sweep)", "model": "combined", "source": "sweep", "accuracy": 0.50,
         "n_params": 5_739_462, "n_train": 5000, "train_acc": 0.6, "val_acc": 0.5, "gap_acc": 0.1},
        {"label": "resnet101-relu-lr0.001 (quick)", "model": "resnet101", "source": "quick", "accuracy": 0.30,
         "n_params": 42_000_000, "n_train": 5000, "train_acc": 0.7, "val_acc": 0.41, "gap_acc": 0.29},
        {"label": "combined-varlen-relu-lr0.001 (sweep)", "model": "combined-varlen", "source": "sweep",
         "accuracy": 0.52, "n_params": 5_739_462, "n_train": 5000, "train_acc": 0.6, "val_acc": 0.55, "gap_acc": 0.05},
    ])
    text = "\n".join(analysis.comparison_findings(table, synthetic=True))
    assert "Highest test accuracy: **combined-varlen-relu-lr0.001 (sweep)** at 52.0%" in text
    assert "Largest train-validation gap: **resnet101-relu-lr0.001 (quick)**" in text and "+29.0 points" in text
    assert "variable-length input against the fixed-size combined model: 52.0% vs 50.0% (+2.0 points)." in text
    assert "not CREMA-D" in text
    table.loc[0, "accuracy"] = 0.6
    assert "Highest test accuracy: **combined-relu-lr0.001 (sweep)** at 60.0%" in "\n".join(
        analysis.comparison_findings(table, synthetic=False))


def test_tables_keep_splits_apart_and_show_seeds_as_mean_sd_and_interval():
    from ser_utils import stats

    base = {"model": "2d", "activation": "silu", "lr": 0.001, "epochs": 150, "split_seed": 42, "status": "complete",
            "corpus": "synthetic"}
    rows = [{**base, "run_id": f"2d-silu-lr0.001-seed{s}", "seed": s, "split": "random", "accuracy": acc,
             "accuracy_lo": acc - 0.03, "accuracy_hi": acc + 0.03} for s, acc in ((42, 0.50), (43, 0.56), (44, 0.53))]
    rows.append({**base, "run_id": "2d-silu-lr0.001-speaker", "seed": 42, "split": "speaker", "accuracy": 0.70,
                 "accuracy_lo": 0.66, "accuracy_hi": 0.74})
    results = pd.DataFrame(rows)
    table2 = analysis.best_per_model(results).set_index("split")
    assert list(table2.index) == ["random", "speaker"]  # one row per split, never the speaker run as "the best"
    expected = stats.t_interval([0.50, 0.56, 0.53])
    random = table2.loc["random"]
    assert random["seeds"] == 3 and random["accuracy"] == pytest.approx(0.53)  # the mean, not the best seed
    assert random["sd"] == pytest.approx(expected["sd"])
    assert random["accuracy_ci"] == f"{100 * expected['lo']:.1f}-{100 * expected['hi']:.1f}"
    assert random["report_accuracy"] == 0.641 and random["difference"] == pytest.approx((0.53 - 0.641) * 100)
    assert math.isnan(table2.loc["speaker", "report_accuracy"])  # the report published no speaker-split numbers
    table3 = analysis.configuration_table(results, "2d")
    assert len(table3) == 2 and sorted(table3["seeds"]) == [1, 3]


def test_figure_7_colours_run_from_chance_to_the_best_run():
    import matplotlib

    matplotlib.use("Agg")
    results = pd.DataFrame({"model": ["1d", "1d", "2d"], "activation": ["relu", "silu", "relu"], "lr": [0.001, 0.01, 0.001],
                            "accuracy": [0.30, 0.45, 0.10], "status": ["complete"] * 3, "run_id": ["a", "b", "c"]})
    fig = plots.accuracy_heatmaps(results)
    for ax in fig.axes:
        low, high = ax.collections[0].get_clim()
        assert low == pytest.approx(100 / 6) and high == pytest.approx(45.0)
