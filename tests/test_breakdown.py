"""Where the model fails, repetitions, ties with the best, and the model beside the listeners."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ser_utils import config, stats
from ser_utils.analysis import breakdown
from ser_utils.data import dataset
from tests.conftest import SHARED_CREMA_D
from tests.test_analysis import fake_clip_names, make_fake_sweep
from ser_utils import runs


def predictions_for(names: list[str], correct: list[bool]) -> pd.DataFrame:
    true = [n.split("_")[2] for n in names]
    wrong = {e: config.EMOTIONS[(config.EMOTIONS.index(e) + 1) % 6] for e in config.EMOTIONS}
    predicted = [t if ok else wrong[t] for t, ok in zip(true, correct)]
    return pd.DataFrame({"path": [f"/d/AudioWAV/{n}" for n in names], "true": true, "predicted": predicted})


def test_accuracy_by_intensity_and_actor_with_wilson_intervals(tmp_path):
    names = fake_clip_names(2)
    correct = [n.endswith("_HI.wav") or n.startswith("1001") for n in names]
    preds = predictions_for(names, correct)
    by_level = breakdown.accuracy_by(preds, "intensity")
    assert list(by_level.index) == [lvl for lvl in config.LEVELS if lvl in by_level.index]
    assert by_level.loc["HI", "accuracy"] == 1.0
    expected = np.mean([ok for n, ok in zip(names, correct) if n.endswith("_LO.wav")])
    assert by_level.loc["LO", "accuracy"] == pytest.approx(expected)
    lo, hi = stats.wilson_interval(int(by_level.loc["LO", "correct"]), int(by_level.loc["LO", "n"]))
    assert (by_level.loc["LO", "lo"], by_level.loc["LO", "hi"]) == pytest.approx((lo, hi))
    by_actor = breakdown.accuracy_by(preds, "actor")
    assert by_actor.loc[1001, "accuracy"] == 1.0 and by_actor.loc[1002, "accuracy"] < 1.0
    with pytest.raises(ValueError, match="VideoDemographics"):
        breakdown.accuracy_by(preds, "sex")


def test_accuracy_by_sex_uses_the_demographics(tmp_path):
    names = fake_clip_names(2)
    (tmp_path / dataset.DEMOGRAPHICS_FILE).write_text("ActorID,Age,Sex,Race,Ethnicity\n1001,51,Male,C,N\n"
                                                      "1002,21,Female,C,N\n")
    preds = predictions_for(names, [n.startswith("1001") for n in names])
    by_sex = breakdown.accuracy_by(preds, "sex", root=tmp_path)
    assert by_sex.loc["male", "accuracy"] == 1.0 and by_sex.loc["female", "accuracy"] == 0.0


def test_split_gap_says_not_run_without_speaker_runs():
    results = pd.DataFrame([
        {"run_id": "1d-a", "model": "1d", "split": "random", "status": "complete", "accuracy": 0.6},
        {"run_id": "1d-b", "model": "1d", "split": "speaker", "status": "complete", "accuracy": 0.45},
        {"run_id": "2d-a", "model": "2d", "split": "random", "status": "complete", "accuracy": 0.7}])
    gap = breakdown.split_gap(results).set_index("model")
    assert gap.loc["1d", "gap_points"] == pytest.approx(15.0) and gap.loc["1d", "status"] == "measured"
    assert gap.loc["2d", "status"] == "not run" and np.isnan(gap.loc["2d", "gap_points"])


def test_seed_summary_gives_a_t_interval_across_seeds():
    results = pd.DataFrame([{"run_id": f"r{s}", "model": "1d", "activation": "relu", "lr": 0.01, "epochs": 5,
                             "split": "random", "split_seed": 42, "seed": s, "status": "complete", "accuracy": acc,
                             "accuracy_lo": acc - 0.02, "accuracy_hi": acc + 0.02}
                            for s, acc in ((42, 0.50), (43, 0.54), (44, 0.52))])
    row = breakdown.seed_summary(results).iloc[0]
    expected = stats.t_interval([0.50, 0.54, 0.52])
    assert row["seeds"] == 3 and row["mean"] == pytest.approx(0.52) and row["sd"] == pytest.approx(0.02)
    assert (row["lo"], row["hi"]) == pytest.approx((expected["lo"], expected["hi"]))
    assert row["single_run_halfwidth"] == pytest.approx(0.02)


def test_tied_with_best_uses_paired_tests_on_the_runs(tmp_path):
    runs_dir = make_fake_sweep(tmp_path / "runs", names=fake_clip_names(40))  # 1,093 test clips
    results = runs.load_results(runs_dir)
    tied = breakdown.tied_with_best(results, runs_dir)
    done = runs.finished(results)
    for model, group in tied.groupby("model"):
        best = done[done["model"] == model].sort_values("accuracy").iloc[-1]["run_id"]
        assert set(group["best"]) == {best} and group.set_index("run_id").loc[best, "tied"]
        others = group[group["run_id"] != best]
        assert (others["p_holm"] >= others["p"]).all()  # Holm never lowers a p-value
        assert (others["tied"] == (others["p_holm"] >= 0.05)).all()
    one_d = tied[tied["model"] == "1d"]
    assert (~one_d["tied"]).any()  # lr 0.1 is about 8 points worse on 1,093 clips: told apart


def test_listener_agreement_and_kappa():
    assert breakdown.listener_agreement("ANG", "ANG") == "listeners agree"
    assert breakdown.listener_agreement("NEU:SAD", "SAD") == "tie incl. intended"
    assert breakdown.listener_agreement("NEU", "SAD") == "listeners disagree"
    names = fake_clip_names(1)[:12]
    preds = predictions_for(names, [True] * 6 + [False] * 6)
    votes = pd.DataFrame({"file": [n[:-4] for n in names],
                          "voice_vote": [n.split("_")[2] for n in names[:8]] + ["NEU:SAD"] * 2 + ["HAP"] * 2})
    table = breakdown.accuracy_by_listener_agreement(preds, votes)
    assert table.loc["listeners agree", "n"] == 8 + sum(n.split("_")[2] == "HAP" for n in names[10:])
    kappa = breakdown.model_listener_kappa(preds, votes)
    single = votes[~votes["voice_vote"].str.contains(":")]
    assert kappa["n"] == len(single)
    assert kappa["kappa"] == pytest.approx(stats.cohen_kappa(
        preds.set_index(preds["path"].str.rpartition("/")[2].str[:-4]).loc[single["file"], "predicted"].to_numpy(),
        single["voice_vote"].to_numpy()))


def test_people_and_model_needs_real_crema_d():
    assert "real CREMA-D" in breakdown.needs_real_crema_d(None)
    if (SHARED_CREMA_D / "summaryTable.csv").is_file():
        votes = dataset.load_listener_votes(SHARED_CREMA_D)
        assert breakdown.needs_real_crema_d(votes) is None


def test_tied_with_best_keeps_splits_and_epoch_budgets_apart(tmp_path):
    runs_dir = make_fake_sweep(tmp_path / "runs", names=fake_clip_names(8))
    results = runs.load_results(runs_dir)
    done = runs.finished(results)
    one_d = done[done["model"] == "1d"].sort_values("accuracy")
    worst, second = one_d.iloc[0]["run_id"], one_d.iloc[1]["run_id"]
    results.loc[results["run_id"] == worst, "split"] = "speaker"
    results.loc[results["run_id"] == second, "epochs"] = 99
    tied = breakdown.tied_with_best(results, runs_dir).set_index("run_id")
    # each is the best of its own group: never tested against the random-split / other-budget best
    assert tied.loc[worst, "best"] == worst and tied.loc[second, "best"] == second
    assert np.isnan(tied.loc[worst, "p"]) and np.isnan(tied.loc[second, "p"])


def test_split_gap_has_an_interval_and_a_test_of_independent_proportions():
    from statsmodels.stats.proportion import proportions_ztest

    results = pd.DataFrame([
        {"run_id": "1d-a", "model": "1d", "split": "random", "status": "complete", "accuracy": 0.6, "n_test": 500},
        {"run_id": "1d-b", "model": "1d", "split": "speaker", "status": "complete", "accuracy": 0.5, "n_test": 400}])
    row = breakdown.split_gap(results).set_index("model").loc["1d"]
    assert row["gap_lo"] < 10 < row["gap_hi"] and row["gap_hi"] - row["gap_lo"] < 15
    assert row["p"] == pytest.approx(proportions_ztest([300, 200], [500, 400])[1])
    assert np.isnan(breakdown.split_gap(results.drop(columns=["n_test"])).set_index("model").loc["1d", "gap_lo"])


def test_the_model_beside_the_listeners_gets_a_paired_interval_and_test():
    from ser_utils import analysis

    names = fake_clip_names(1)[:60]
    preds = predictions_for(names, [i % 3 != 0 for i in range(60)])  # the model: 40 of 60 right
    true = [n.split("_")[2] for n in names]
    wrong = {e: config.EMOTIONS[(config.EMOTIONS.index(e) + 2) % 6] for e in config.EMOTIONS}
    vote = [t if i % 2 == 0 else (f"{t}:{wrong[t]}" if i % 4 == 1 else wrong[t]) for i, t in enumerate(true)]
    votes = pd.DataFrame({"file": [n[:-4] for n in names], "voice_vote": vote})
    table = analysis.baseline_table(analysis.human_baseline(preds, votes)).set_index("who")
    model_right = np.array([i % 3 != 0 for i in range(60)], dtype=float)
    for rule in ("split", "strict", "lenient"):
        people = np.array([analysis.vote_score(v, t, rule) for v, t in zip(vote, true)])
        row = table.loc[f"listeners, voice only ({rule})"]
        assert row["difference_points"] == pytest.approx(100 * (model_right - people).mean())
        assert row["p"] == pytest.approx(stats.signflip_pvalue((model_right - people) * 2))
        assert row["lo_points"] < row["difference_points"] < row["hi_points"]
