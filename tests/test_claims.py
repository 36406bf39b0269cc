"""Verdicts on the report's findings, from fabricated sweeps whose truth we control.

Every sweep here is made up in the test (labels drawn at random, each run right on a chosen
share of clips); none of it is a CREMA-D result.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from statsmodels.stats.contingency_tables import mcnemar  # the dev extra's reference implementation

from ser_utils import config, stats
from ser_utils.analysis import claims, published

EMOTIONS = np.array(config.EMOTIONS)
N = 2233  # the size of the report's test split on our split of the 7,442 clips
GRID = [(m, a, lr) for m in config.MODELS for a in config.ACTIVATIONS for lr in config.LEARNING_RATES]


def labels_for(seed: int, n: int = N) -> np.ndarray:
    return EMOTIONS[np.random.default_rng(seed).integers(0, 6, n)]




def fake_predictions(y: np.ndarray, recall: float | dict, seed: int, confuse: dict | None = None) -> np.ndarray:
    """Right on exactly ``round(recall * n_c)`` clips of each class c; wrong ones go to ``confuse[c]``
    (or another emotion at random)."""
    rng = np.random.default_rng(seed)
    pred = y.copy()
    for i, emotion in enumerate(EMOTIONS):
        where = np.flatnonzero(y == emotion)
        r = recall.get(emotion) if isinstance(recall, dict) else recall
        wrong = rng.permutation(where)[: len(where) - round(r * len(where))]
        if confuse and emotion in confuse:
            pred[wrong] = confuse[emotion]
        else:
            pred[wrong] = EMOTIONS[(i + rng.integers(1, 6, len(wrong))) % 6]
    return pred


def sweep(spec: dict, seeds=(42,), status: dict | None = None, extra: dict | None = None,
          split_seed: int | None = None):
    """``{(model, activation, lr): recall or {emotion: recall}}`` -> (results, predictions) in the run folders' format.

    ``split_seed`` None: each seed draws its own test set (no ``split_seed`` column, as older
    results); else every seed is evaluated on the test set of that split seed.
    """
    rows, preds = [], {}
    for s in seeds:
        y = labels_for(s if split_seed is None else split_seed)
        paths = [f"/data/AudioWAV/{1001 + i % 91}_DFA_{e}_XX-{i}.wav" for i, e in enumerate(y)]
        for k, (cfg, recall) in enumerate(spec.items()):
            run_id = published.run_id(*cfg) + ("" if s == config.SEED else f"-seed{s}")
            confuse = (extra or {}).get(cfg)
            preds[run_id] = pd.DataFrame({"index": np.arange(N), "path": paths, "true": y,
                                          "predicted": fake_predictions(y, recall, seed=1000 * s + k, confuse=confuse)})
            rows.append({"run_id": run_id, "model": cfg[0], "activation": cfg[1], "lr": cfg[2], "seed": s,
                         "split": "random", "status": (status or {}).get(cfg, "complete")}
                        | ({} if split_seed is None else {"split_seed": split_seed}))
    return pd.DataFrame(rows), preds


def row(table: pd.DataFrame, claim_id: str) -> pd.Series:
    return table.set_index("id").loc[claim_id]


def only(claim_id: str) -> tuple[claims.Claim, ...]:
    return tuple(c for c in claims.CLAIMS if c.id == claim_id)


# ------------------------------------------------------------------ the verdict rule
def test_verdict_rule():
    assert claims.verdict([0.05, 0.02], [0.001, 0.01]) == "reproduced"
    assert claims.verdict([0.05, -0.02], [0.001, 0.01]) == "contradicted"
    assert claims.verdict([0.05, -0.02], [0.001, 0.2]) == "not significant"
    assert claims.verdict([0.05], [np.nan]) == "not significant"
    assert claims.verdict([], []) == "not run"
    assert claims.verdict([0.05], [0.001], complete=False) == "not run"
    assert claims.verdict([-0.05], [0.001], complete=False) == "contradicted"  # a contradiction needs no more runs
    assert set(claims.VERDICTS) == {"reproduced", "contradicted", "not significant", "not comparable",
                                    "uninformative", "not run"}


# ------------------------------------------------------------------ one comparison, every verdict
SILU, RELU = ("2d", "silu", 0.001), ("2d", "relu", 0.001)


@pytest.mark.parametrize("silu,relu,expected", [
    (0.64, 0.58, "reproduced"),
    (0.55, 0.62, "contradicted"),
    (0.60, 0.60, "not significant"),  # the same number of clips right, different clips
])
def test_silu_over_relu_verdicts(silu, relu, expected):
    results, preds = sweep({SILU: silu, RELU: relu})
    table = claims.evaluate(results, preds, claims=only("silu-over-relu-2d"))
    got = row(table, "silu-over-relu-2d")
    assert got["verdict"] == expected
    assert got["effect"] == pytest.approx(np.mean(preds["2d-silu-lr0.001"].eval("true == predicted"))
                                          - np.mean(preds["2d-relu-lr0.001"].eval("true == predicted")))
    assert got["lo"] <= got["effect"] <= got["hi"]
    assert "64.1%" in got["report_says"] and "+5.9 points" in got["report_says"]


def test_a_missing_or_failed_run_means_not_run():
    results, preds = sweep({SILU: 0.64})
    got = row(claims.evaluate(results, preds, claims=only("silu-over-relu-2d")), "silu-over-relu-2d")
    assert got["verdict"] == "not run" and "2d-relu-lr0.001" in got["detail"]
    results, preds = sweep({SILU: 0.64, RELU: 0.50}, status={RELU: "failed"})
    assert row(claims.evaluate(results, preds, claims=only("silu-over-relu-2d")),
               "silu-over-relu-2d")["verdict"] == "not run"
    # a finished run without its predictions cannot be tested either
    results, preds = sweep({SILU: 0.64, RELU: 0.50})
    del preds["2d-relu-lr0.001"]
    assert row(claims.evaluate(results, preds, claims=only("silu-over-relu-2d")),
               "silu-over-relu-2d")["verdict"] == "not run"


def test_the_p_value_is_mcnemars_on_the_two_runs():
    results, preds = sweep({SILU: 0.61, RELU: 0.58})
    assessment = claims.assess(results, preds, claims=only("silu-over-relu-2d"))
    a = (preds["2d-silu-lr0.001"].eval("true == predicted")).to_numpy()
    b = (preds["2d-relu-lr0.001"].eval("true == predicted")).to_numpy()
    table = [[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]]
    assert row(assessment.table, "silu-over-relu-2d")["p_value"] == pytest.approx(mcnemar(table, exact=True).pvalue)
    reference = stats.paired_bootstrap(preds["2d-silu-lr0.001"]["true"], preds["2d-silu-lr0.001"]["predicted"],
                                       preds["2d-relu-lr0.001"]["predicted"])
    comparison = assessment.comparisons.iloc[0]
    assert comparison["lo"] == pytest.approx(reference.lo, abs=0.006)  # other resamples, same distribution
    assert comparison["hi"] == pytest.approx(reference.hi, abs=0.006)


def test_runs_are_paired_on_the_clip_not_the_row_order():
    results, preds = sweep({SILU: 0.62, RELU: 0.58})
    before = claims.evaluate(results, preds, claims=only("silu-over-relu-2d"))
    shuffled = dict(preds)
    shuffled["2d-relu-lr0.001"] = preds["2d-relu-lr0.001"].sample(frac=1, random_state=0)
    after = claims.evaluate(results, shuffled, claims=only("silu-over-relu-2d"))
    pd.testing.assert_frame_equal(before, after)


def test_both_prediction_formats_are_read():
    results, preds = sweep({SILU: 0.62, RELU: 0.58})
    renamed = {k: v.drop(columns=["index"]).rename(columns={"true": "y_true", "predicted": "y_pred", "path": "file"})
               for k, v in preds.items()}
    pd.testing.assert_frame_equal(claims.evaluate(results, preds, claims=only("silu-over-relu-2d")),
                                  claims.evaluate(results, renamed, claims=only("silu-over-relu-2d")))


def test_seeds_are_pooled():
    results, preds = sweep({SILU: 0.63, RELU: 0.59}, seeds=(42, 7, 8))
    got = row(claims.evaluate(results, preds, claims=only("silu-over-relu-2d")), "silu-over-relu-2d")
    assert got["seeds"] == "7, 8, 42" and got["verdict"] == "reproduced"
    assert got["test"] == "t-test over 3 test splits" and "one seed" not in got["reason"]  # each seed its own split
    diffs = [preds[f"2d-silu-lr0.001{sfx}"].eval("true == predicted").mean()
             - preds[f"2d-relu-lr0.001{sfx}"].eval("true == predicted").mean() for sfx in ("", "-seed7", "-seed8")]
    assert got["effect"] == pytest.approx(np.mean(diffs))


def test_seeds_on_one_split_are_resampled_together():
    """Three seeds that made the same predictions on the report's split carry no more evidence than one."""
    results, preds = sweep({SILU: 0.62, RELU: 0.58}, seeds=(42, 7, 8), split_seed=42)
    for sfx in ("-seed7", "-seed8"):
        for run in ("2d-silu-lr0.001", "2d-relu-lr0.001"):
            preds[run + sfx] = preds[run]
    one = row(claims.evaluate(results[results["seed"] == 42], preds, claims=only("silu-over-relu-2d")),
              "silu-over-relu-2d")
    three = row(claims.evaluate(results, preds, claims=only("silu-over-relu-2d")), "silu-over-relu-2d")
    assert three["seeds"] == "7, 8, 42" and three["effect"] == pytest.approx(one["effect"])
    # each clip counted once: the clip x seed test on identical seeds is the one-seed test's normal twin
    assert three["p_value"] == pytest.approx(one["p_value"], rel=0.3, abs=1e-4)
    assert three["hi"] - three["lo"] == pytest.approx(one["hi"] - one["lo"], rel=0.15)
    # read as three separate test sets (no split_seed), the same numbers would look ~sqrt(3) surer
    apart = row(claims.evaluate(results.drop(columns=["split_seed"]), {k: v for k, v in preds.items()},
                                claims=only("silu-over-relu-2d")), "silu-over-relu-2d")
    assert apart["hi"] - apart["lo"] < 0.75 * (one["hi"] - one["lo"])
    assert apart["p_value"] < one["p_value"] / 100


def test_other_protocols_and_unfinished_runs_are_left_out():
    results, preds = sweep({SILU: 0.64, RELU: 0.58})
    speaker = results.assign(run_id=results["run_id"] + "-speaker", split="speaker")
    preds.update({f"{k}-speaker": v.assign(predicted=v["true"]) for k, v in preds.items()})
    both = pd.concat([results, speaker], ignore_index=True)
    assert row(claims.evaluate(both, preds, claims=only("silu-over-relu-2d")), "silu-over-relu-2d")["effect"] == \
        pytest.approx(row(claims.evaluate(results, preds, claims=only("silu-over-relu-2d")),
                          "silu-over-relu-2d")["effect"])
    mixed = row(claims.evaluate(both, preds, claims=only("silu-over-relu-2d"), split=None), "silu-over-relu-2d")
    assert mixed["seeds"] == "42" and mixed["comparisons"] == 1  # split=None: both protocols, each on its own test set
    twice = pd.concat([results, results.assign(run_id=results["run_id"] + "-e12")], ignore_index=True)
    preds.update({f"{k}-e12": v for k, v in preds.items()})
    # a configuration trained twice (the sweep's run and one by hand): the first in grid order is used
    again = row(claims.evaluate(twice, preds, claims=only("silu-over-relu-2d")), "silu-over-relu-2d")
    assert again["seeds"] == "42" and again["effect"] == row(
        claims.evaluate(results, preds, claims=only("silu-over-relu-2d")), "silu-over-relu-2d")["effect"]


# ------------------------------------------------------------------ findings over many runs
def grid(best: float = 0.64, others: float = 0.55, **overrides) -> dict:
    spec = {cfg: (0.40 if cfg[2] == 0.1 else others) for cfg in GRID}
    spec[SILU] = best
    spec.update({tuple(k.split("|")[:2]) + (float(k.split("|")[2]),): v for k, v in overrides.items()})
    return spec


def test_best_overall_every_verdict():
    results, preds = sweep(grid())
    got = row(claims.evaluate(results, preds, claims=only("best-overall")), "best-overall")
    assert got["verdict"] == "reproduced" and got["comparisons"] == 26

    results, preds = sweep(grid(**{"2d|elu|0.001": 0.70}))
    got = row(claims.evaluate(results, preds, claims=only("best-overall")), "best-overall")
    assert got["verdict"] == "contradicted" and "2d-elu-lr0.001" in got["we_measure"] and got["effect"] < 0

    results, preds = sweep(grid(**{"combined|silu|0.001": 0.635}))
    assert row(claims.evaluate(results, preds, claims=only("best-overall")), "best-overall")["verdict"] == \
        "not significant"

    spec = grid()
    del spec[("1d", "relu", 0.1)]
    results, preds = sweep(spec)
    got = row(claims.evaluate(results, preds, claims=only("best-overall")), "best-overall")
    assert got["verdict"] == "not run" and "1d-relu-lr0.1" in got["detail"]

    spec = grid(**{"2d|elu|0.001": 0.70})
    del spec[("1d", "relu", 0.1)]
    results, preds = sweep(spec)
    assert row(claims.evaluate(results, preds, claims=only("best-overall")), "best-overall")["verdict"] == \
        "contradicted"


def test_several_comparisons_are_holm_corrected():
    """ELU/0.01 beats two 1D rivals with raw McNemar p = 0.045 each: significant alone, not after Holm."""
    spec = {cfg: 0.40 for cfg in GRID if cfg[0] == "1d"}
    results, preds = sweep(spec)
    y = preds["1d-elu-lr0.01"]["true"].to_numpy()
    wrong = np.roll(EMOTIONS, 1)[np.searchsorted(EMOTIONS, y)]
    order = np.random.default_rng(5).permutation(N)
    best = np.zeros(N, bool)
    best[order[:1200]] = True
    for k, rival in enumerate(("1d-relu-lr0.01", "1d-silu-lr0.01")):
        right = best.copy()
        right[order[k * 50:(k + 1) * 50]] = False  # 50 clips only the best gets right
        right[order[1200 + k * 31:1200 + (k + 1) * 31]] = True  # 31 only the rival gets right
        preds[rival] = preds[rival].assign(predicted=np.where(right, y, wrong))
    preds["1d-elu-lr0.01"] = preds["1d-elu-lr0.01"].assign(predicted=np.where(best, y, wrong))
    assessment = claims.assess(results, preds, claims=only("best-1d"))
    comps = assessment.comparisons.set_index("b")
    assert comps.loc[["1d-relu-lr0.01", "1d-silu-lr0.01"], "p"].to_numpy() == pytest.approx([0.0448, 0.0448], abs=1e-4)
    assert comps["p_holm"].to_numpy() == pytest.approx(stats.holm(comps["p"]))
    got = row(assessment.table, "best-1d")
    assert got["verdict"] == "not significant" and got["p_value"] == pytest.approx(2 * 0.0448, abs=2e-4)


def test_learning_rate_findings_pool_the_activations():
    spec = {(m, a, lr): {0.001: 0.50, 0.01: 0.57, 0.1: 0.38}[lr] for m, a, lr in GRID if m == "1d"}
    results, preds = sweep(spec, status={("1d", "relu", 0.1): "diverged"})
    table = claims.evaluate(results, preds, claims=only("lr-1d") + only("lr0.1-unstable") + only("lr-2d"))
    assert row(table, "lr-1d")["verdict"] == "reproduced"
    assert row(table, "lr-1d")["comparisons"] == 2
    assert row(table, "lr-2d")["verdict"] == "not run"
    unstable = row(table, "lr0.1-unstable")
    assert unstable["verdict"] == "not run"  # 2d and combined missing: "every model" is not shown
    assert "1 of 3 lr 0.1 run(s) diverged" in unstable["detail"]  # a diverged run counts as finished

    spec = {(m, a, lr): {0.001: 0.55, 0.01: 0.50, 0.1: 0.38}[lr] for m, a, lr in GRID}
    results, preds = sweep(spec)
    table = claims.evaluate(results, preds, claims=only("lr-1d") + only("lr0.1-unstable") + only("lr-combined"))
    assert row(table, "lr-1d")["verdict"] == "contradicted"
    assert row(table, "lr0.1-unstable")["verdict"] == "reproduced"
    assert row(table, "lr0.1-unstable")["comparisons"] == 6
    assert row(table, "lr-combined")["verdict"] == "reproduced"


def test_variable_length_and_2d_over_combined():
    spec = {SILU: 0.64, ("combined", "silu", 0.001): 0.61, ("combined-varlen", "silu", 0.001): 0.66}
    results, preds = sweep(spec)
    table = claims.evaluate(results, preds, claims=only("varlen-over-fixed") + only("2d-over-combined"))
    assert row(table, "varlen-over-fixed")["verdict"] == "reproduced"
    assert "62.2%" in row(table, "varlen-over-fixed")["report_says"]
    assert row(table, "2d-over-combined")["verdict"] == "reproduced"


# ------------------------------------------------------------------ overfitting
RESNET = ("resnet101", "relu", 0.001)


@pytest.mark.parametrize("train,val,expected", [
    (0.70, 0.41, "reproduced"), (0.45, 0.41, "not significant"), (0.30, 0.60, "contradicted")])
def test_resnet101_overfitting(train, val, expected):
    results, preds = sweep({RESNET: 0.41})
    results = results.assign(n_train=4948, n_val=261)
    history = pd.DataFrame({"epoch": [1, 2, 3], "train_acc": [0.2, train, np.nan], "val_acc": [0.2, val, np.nan]})
    got = row(claims.evaluate(results, preds, {"resnet101-relu-lr0.001": history},
                              claims=only("resnet101-overfits")), "resnet101-overfits")
    assert got["verdict"] == expected
    assert got["effect"] == pytest.approx(round(train * 4948) / 4948 - round(val * 261) / 261)
    assert "split sizes" not in got["detail"]


def test_overfitting_counts_a_shared_split_once():
    results, preds = sweep({RESNET: 0.41}, seeds=(42, 7, 8), split_seed=42)
    results = results.assign(n_train=4948, n_val=261)
    history = pd.DataFrame({"epoch": [1], "train_acc": [0.70], "val_acc": [0.41]})
    histories = dict.fromkeys(results["run_id"], history)
    three = row(claims.evaluate(results, preds, histories, claims=only("resnet101-overfits")), "resnet101-overfits")
    one = row(claims.evaluate(results[results["seed"] == 42], preds, histories, claims=only("resnet101-overfits")),
              "resnet101-overfits")
    assert three["seeds"] == "7, 8, 42"
    assert (three["effect"], three["lo"], three["hi"]) == pytest.approx((one["effect"], one["lo"], one["hi"]))


def test_overfitting_needs_the_history():
    results, preds = sweep({RESNET: 0.41})
    got = row(claims.evaluate(results, preds, claims=only("resnet101-overfits")), "resnet101-overfits")
    assert got["verdict"] == "not run" and "history" in got["detail"]


# ------------------------------------------------------------------ per class and confusions
def test_class_ranking_every_verdict():
    ranked = {"ANG": 0.85, "HAP": 0.80, "DIS": 0.60, "NEU": 0.60, "SAD": 0.60, "FEA": 0.40}
    results, preds = sweep({SILU: ranked})
    got = row(claims.evaluate(results, preds, claims=only("class-ranking")), "class-ranking")
    assert got["verdict"] == "reproduced" and got["comparisons"] == 11
    assert "ANG" in got["we_measure"] and "0.76" in got["report_says"]

    swapped = {**ranked, "FEA": 0.85, "ANG": 0.40}
    results, preds = sweep({SILU: swapped})
    assert row(claims.evaluate(results, preds, claims=only("class-ranking")), "class-ranking")["verdict"] == \
        "contradicted"

    flat = dict.fromkeys(EMOTIONS.tolist(), 0.6)
    results, preds = sweep({SILU: flat})
    assert row(claims.evaluate(results, preds, claims=only("class-ranking")), "class-ranking")["verdict"] == \
        "not significant"

    results, preds = sweep({RELU: flat})
    assert row(claims.evaluate(results, preds, claims=only("class-ranking")), "class-ranking")["verdict"] == "not run"


def test_most_confused_pairs():
    confuse = {"FEA": "SAD", "SAD": "FEA", "DIS": "ANG", "ANG": "DIS", "NEU": "SAD"}
    results, preds = sweep({SILU: 0.6}, extra={SILU: confuse})
    got = row(claims.evaluate(results, preds, claims=only("confused-pairs")), "confused-pairs")
    assert got["verdict"] == "reproduced" and got["comparisons"] == 36
    assert "FEA-SAD" in got["we_measure"]

    other = {"FEA": "HAP", "HAP": "FEA", "NEU": "DIS", "DIS": "NEU", "SAD": "ANG", "ANG": "SAD"}
    results, preds = sweep({SILU: 0.6}, extra={SILU: other})
    assert row(claims.evaluate(results, preds, claims=only("confused-pairs")), "confused-pairs")["verdict"] == \
        "contradicted"


# ------------------------------------------------------------------ the whole table, bad input
def test_an_empty_sweep_gives_every_finding_not_run():
    results, preds = sweep({})
    table = claims.evaluate(results.reindex(columns=["run_id", "model", "activation", "lr"]), preds)
    assert list(table.columns) == claims.TABLE_COLUMNS
    assert list(table["id"]) == [c.id for c in claims.CLAIMS]
    assert set(table["verdict"]) == {"not run"}
    assert table["report_says"].str.len().gt(0).all()


def test_bad_input_is_named():
    results, preds = sweep({SILU: 0.6, RELU: 0.6})
    with pytest.raises(ValueError, match="collect_results"):
        claims.evaluate(results.drop(columns=["lr"]), preds)
    bad = dict(preds, **{"2d-relu-lr0.001": preds["2d-relu-lr0.001"].assign(predicted="angry")})
    with pytest.raises(ValueError, match=r"2d-relu-lr0.001: labels \['angry'\]"):
        claims.evaluate(results, bad)
    bad = dict(preds, **{"2d-relu-lr0.001": preds["2d-relu-lr0.001"].drop(columns=["true"])})
    with pytest.raises(ValueError, match="no true-emotion column"):
        claims.evaluate(results, bad)
    other_truth = preds["2d-relu-lr0.001"].assign(true=np.roll(preds["2d-relu-lr0.001"]["true"], 1))
    with pytest.raises(ValueError, match="disagree on the true emotion"):
        claims.evaluate(results, dict(preds, **{"2d-relu-lr0.001": other_truth}))
    assert math.isnan(row(claims.evaluate(results, preds, claims=only("best-1d")), "best-1d")["effect"])


# ------------------------------------------------------------------ comparable, informative, one test per claim
def constructed(n: int = 2222, seeds=(42, 43, 44)) -> tuple[pd.DataFrame, dict]:
    """Issue 19's case on one split: SiLU right in all seeds on 305 clips, ReLU right in one seed of
    three on 900 (300 per seed), both right on 395; wrong answers spread over the other emotions."""
    y = labels_for(1, n)
    wrong = EMOTIONS[(np.searchsorted(EMOTIONS, y) + 1 + np.arange(n) % 5) % 6]
    rows, preds = [], {}
    paths = [f"/d/{i}.wav" for i in range(n)]
    for k, s in enumerate(seeds):
        silu, relu = wrong.copy(), wrong.copy()
        silu[:305] = y[:305]
        relu[305 + 300 * k:605 + 300 * k] = y[305 + 300 * k:605 + 300 * k]
        silu[1205:1600], relu[1205:1600] = y[1205:1600], y[1205:1600]
        for cfg, pred in ((SILU, silu), (RELU, relu)):
            run_id = f"{published.run_id(*cfg)}-seed{s}"
            preds[run_id] = pd.DataFrame({"path": paths, "true": y, "predicted": pred})
            rows.append({"run_id": run_id, "model": cfg[0], "activation": cfg[1], "lr": cfg[2], "seed": s,
                         "split_seed": 42, "split": "random", "status": "complete", "epochs": 150})
    return pd.DataFrame(rows), preds


def test_three_seeds_leaning_a_little_each_are_not_reproduced():
    results, preds = constructed()
    got = row(claims.evaluate(results, preds, claims=only("silu-over-relu-2d")), "silu-over-relu-2d")
    assert got["effect"] == pytest.approx(5 / 2222)
    assert got["verdict"] == "not significant" and got["p_value"] > 0.5
    assert got["lo"] < 0 < got["hi"] and got["seeds"] == "42, 43, 44"
    assert "p = " in got["reason"] and "one seed" not in got["reason"]
    single = row(claims.evaluate(results[results["seed"] == 42], preds, claims=only("silu-over-relu-2d")),
                 "silu-over-relu-2d")
    assert single["test"].startswith("McNemar exact") and "one seed: seed noise not included" in single["reason"]


def test_a_one_epoch_one_class_run_against_a_twelve_epoch_run_is_not_comparable():
    results, preds = sweep({SILU: 0.62, ("1d", "elu", 0.01): 0.5})
    preds["2d-silu-lr0.001"] = preds["2d-silu-lr0.001"].assign(predicted="HAP")
    results["epochs"] = results["model"].map({"2d": 1, "1d": 12})
    got = row(claims.evaluate(results, preds, claims=only("2d-over-1d")), "2d-over-1d")
    assert got["verdict"] == "not comparable"
    assert "epochs 1 vs 12 (2d-silu-lr0.001 vs 1d-elu-lr0.01)" in got["reason"]
    assert math.isnan(got["p_value"])  # not tested, not counted in the correction
    results["epochs"] = 12  # same budget: now the one-class run is what is wrong with the comparison
    got = row(claims.evaluate(results, preds, claims=only("2d-over-1d")), "2d-over-1d")
    assert got["verdict"] == "uninformative"
    assert got["reason"] == f"2d-silu-lr0.001 predicts HAP for {N} of {N} test clips"


def test_recorded_settings_decide_comparability():
    results, preds = sweep({SILU: 0.64, RELU: 0.55})
    settings = {"2d-silu-lr0.001": {"batch_size": 64, "corpus_clips": "abc"},
                "2d-relu-lr0.001": {"batch_size": 32, "corpus_clips": "abc"}}
    got = row(claims.evaluate(results, preds, claims=only("silu-over-relu-2d"), settings=settings),
              "silu-over-relu-2d")
    assert got["verdict"] == "not comparable" and got["reason"].startswith("batch_size 64 vs 32")
    settings["2d-relu-lr0.001"]["batch_size"] = 64
    assert row(claims.evaluate(results, preds, claims=only("silu-over-relu-2d"), settings=settings),
               "silu-over-relu-2d")["verdict"] == "reproduced"


def test_two_runs_at_chance_are_uninformative():
    results, preds = sweep({SILU: 1 / 6, RELU: 1 / 6})
    got = row(claims.evaluate(results, preds, claims=only("silu-over-relu-2d")), "silu-over-relu-2d")
    assert got["verdict"] == "uninformative"
    assert got["reason"].startswith("2d-silu-lr0.001: accuracy") and "includes chance" in got["reason"]


def test_silu_best_for_2d_says_the_reports_numbers_once():
    says = row(claims.evaluate(*sweep({SILU: 0.6}), claims=only("silu-best-2d")), "silu-best-2d")["report_says"]
    assert says == "silu 64.1%, relu 58.2%, elu 56.9% (lr 0.001)"


def test_a_competitor_at_chance_is_simply_beaten():
    spec = {cfg: (1 / 6 if cfg[2] == 0.1 else 0.5) for cfg in GRID if cfg[0] == "2d"}
    spec[("2d", "silu", 0.001)] = 0.5
    results, preds = sweep(spec)
    got = row(claims.evaluate(results, preds, claims=only("lr-2d")), "lr-2d")
    assert got["verdict"] == "not significant"  # lr 0.1's runs at chance do not make it uninformative


def test_holm_runs_across_the_findings_of_the_table():
    results, preds = sweep({SILU: 0.60, RELU: 0.57, ("1d", "elu", 0.01): 0.5})
    alone = row(claims.evaluate(results, preds, claims=only("silu-over-relu-2d")), "silu-over-relu-2d")
    table = claims.evaluate(results, preds, claims=only("silu-over-relu-2d") + only("2d-over-1d"))
    other_alone = row(claims.evaluate(results, preds, claims=only("2d-over-1d")), "2d-over-1d")
    other, both = row(table, "2d-over-1d"), row(table, "silu-over-relu-2d")
    assert other_alone["p_value"] < alone["p_value"]
    # Holm over the two findings: the smaller p doubled, the larger kept (it is the last step)
    assert other["p_value"] == pytest.approx(2 * other_alone["p_value"])
    assert both["p_value"] == pytest.approx(max(alone["p_value"], 2 * other_alone["p_value"]))


def test_epoch_budgets_are_said_from_the_runs():
    results, _ = sweep({SILU: 0.6, ("1d", "elu", 0.01): 0.5, ("combined", "silu", 0.001): 0.5})
    results["epochs"] = results["model"].map({"2d": 1, "1d": 12, "combined": 1})
    note = claims.epoch_budgets(results)
    assert "1d 12" in note and "2d 1" in note and "not comparable" in note
    assert claims.epoch_budgets(results.assign(epochs=12)) == ""
