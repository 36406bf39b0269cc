"""Notebook 08's error analysis: calibration, the confusion read by code, occlusion/saliency, embeddings, exercises."""

from __future__ import annotations

import nbformat
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from ser_utils import config, runs
from ser_utils.analysis import attribution, error_analysis
from tests.test_analysis import write_fake_run

EMOTIONS = list(config.EMOTIONS)


# ------------------------------------------------------------------------------ calibration
def test_ece_of_a_hand_computed_micro_example():
    probs, labels = error_analysis.probs_from_confidence([0.95, 0.85, 0.62, 0.55, 0.30],
                                                         [True, False, True, True, False])
    assert probs.argmax(1).tolist() == [0] * 5 and np.allclose(probs.sum(1), 1)
    # 2 bins: [0, .5) {0.30 wrong}; [.5, 1] {4 clips, 3 right, mean confidence 0.7425}
    assert error_analysis.expected_calibration_error(probs, labels, n_bins=2) == pytest.approx(
        0.2 * 0.30 + 0.8 * abs(0.75 - 0.7425))
    # 5 bins: [.8, 1] {0.95 right, 0.85 wrong}, [.6, .8) {0.62 right}, [.4, .6) {0.55 right}, [.2, .4) {0.30 wrong}
    assert error_analysis.expected_calibration_error(probs, labels, n_bins=5) == pytest.approx(
        0.4 * 0.4 + 0.2 * 0.38 + 0.2 * 0.45 + 0.2 * 0.30)
    table = error_analysis.reliability_table(probs, labels, n_bins=5)
    assert table["n"].tolist() == [0, 1, 1, 1, 2] and table["weight"].sum() == pytest.approx(1)
    assert table.loc[4, "accuracy"] == 0.5 and table.loc[4, "confidence"] == pytest.approx(0.9)


def test_ece_matches_torchmetrics():
    from torchmetrics.functional.classification import multiclass_calibration_error

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(400, 6)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = np.where(rng.random(400) < 0.5, probs.argmax(1), rng.integers(0, 6, 400))
    for n_bins in (5, 10, 15):
        ours = error_analysis.expected_calibration_error(probs, labels, n_bins=n_bins)
        theirs = multiclass_calibration_error(torch.tensor(probs, dtype=torch.float64), torch.tensor(labels),
                                              num_classes=6, n_bins=n_bins, norm="l1").item()
        assert ours == pytest.approx(theirs, abs=1e-6)  # torchmetrics bins in float32
    overconfident = error_analysis.calibration_findings(probs, labels)
    assert f"{error_analysis.expected_calibration_error(probs, labels):.3f}" in overconfident


def test_calibration_findings_say_the_direction():
    sure_and_wrong, labels = error_analysis.probs_from_confidence([0.9] * 10, [True] * 5 + [False] * 5)
    assert "overconfident" in error_analysis.calibration_findings(sure_and_wrong, labels)
    unsure_and_right, labels = error_analysis.probs_from_confidence([0.3] * 10, [True] * 10)
    assert "underconfident" in error_analysis.calibration_findings(unsure_and_right, labels)


def test_probabilities_come_from_predictions_csv_or_none():
    frame = pd.DataFrame({"true": ["ANG", "SAD"], "predicted": ["ANG", "ANG"],
                          **{f"p_{e}": [1 / 6, 1 / 6] for e in EMOTIONS}})
    probs, labels, classes = error_analysis.probabilities(frame)
    assert probs.shape == (2, 6) and classes == EMOTIONS and labels.tolist() == [0, EMOTIONS.index("SAD")]
    assert error_analysis.probabilities(frame[["true", "predicted"]]) is None


# ------------------------------------------------------------------------- the confusion
def confusion_of(rows: list[list[int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, index=pd.Index(EMOTIONS, name="true"), columns=EMOTIONS)


def test_confusion_read_by_code():
    matrix = np.diag([9, 8, 7, 6, 5, 2])
    matrix[5, EMOTIONS.index("NEU")] = 7  # SAD -> NEU: the top confusion, 7 of SAD's 9 clips
    for row in range(1, 5):
        matrix[row, 0] = 1  # every class but ANG loses one clip to ANG
    confusion = confusion_of(matrix.tolist())
    facts = error_analysis.read_confusion(confusion)
    assert (facts["best"], facts["worst"], facts["pair"]) == ("ANG", "SAD", ("SAD", "NEU"))
    assert facts["pair_count"] == 7 and facts["pair_rate"] == pytest.approx(7 / 9)
    assert facts["accuracy"] == pytest.approx(37 / 48) and facts["n"] == 48
    text = error_analysis.confusion_findings(confusion, "run-x", synthetic=True)
    assert "**SAD heard as NEU**, 7 clips, 77.8% of the SAD clips" in text and "above chance" in text
    assert config.SYNTHETIC_LABEL in text
    assert error_analysis.most_confused_with(confusion, "SAD") == "NEU"
    chance = confusion_of(np.full((6, 6), 2).tolist())
    assert "not distinguishable from chance" in error_analysis.confusion_findings(chance, "run-y", synthetic=False)


def test_misclassified_clips_most_confident_first_and_found_under_the_root(tmp_path):
    (tmp_path / "AudioWAV").mkdir()
    (tmp_path / "AudioWAV" / "1001_DFA_SAD_XX.wav").write_bytes(b"RIFF")
    frame = pd.DataFrame({"path": ["/elsewhere/1001_DFA_SAD_XX.wav", "/elsewhere/1002_DFA_SAD_XX.wav",
                                   "/elsewhere/1003_DFA_SAD_XX.wav"],
                          "true": ["SAD"] * 3, "predicted": ["NEU", "NEU", "SAD"],
                          "p_NEU": [0.4, 0.7, 0.1], "p_SAD": [0.3, 0.2, 0.8]})
    wrong = error_analysis.misclassified(frame, "SAD", "NEU", root=tmp_path)
    assert wrong["name"].tolist() == ["1002_DFA_SAD_XX.wav", "1001_DFA_SAD_XX.wav"]
    assert wrong["confidence"].tolist() == [0.7, 0.4]
    assert wrong["file"].tolist() == [None, tmp_path / "AudioWAV" / "1001_DFA_SAD_XX.wav"]


# ------------------------------------------------------------------ occlusion and saliency
class PatchReader(nn.Module):
    """A constructed model: class 0's logit reads mostly mel bands 16-23 x frames 40-47."""

    inputs = ("x2d",)

    def __init__(self):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        weight = torch.randn(6, 64 * 64, generator=generator) * 0.01
        hot = torch.zeros(64, 64)
        hot[16:24, 40:48] = 1.0
        weight[0] += hot.flatten()
        self.classifier = nn.Linear(64 * 64, 6)
        with torch.no_grad():
            self.classifier.weight.copy_(weight)

    def forward(self, x2d):
        return self.classifier(torch.tanh(x2d).flatten(1))


def clips_of(images: torch.Tensor, **others: torch.Tensor) -> attribution.Clips:
    return attribution.Clips([f"clip{i}" for i in range(len(images))], np.zeros(len(images), dtype=np.int64),
                             {"x2d": images, **others}, rows=list(range(len(images))))


def test_saliency_finds_the_patch_the_model_reads():
    model = PatchReader().eval()
    clips = clips_of(torch.rand(5, 1, 64, 64, generator=torch.Generator().manual_seed(1)) + 0.5)
    sal = attribution.saliency(model, clips, clips.labels)
    assert sal.shape == (5, 64, 64) and (sal >= 0).all()
    scores = attribution.patch_scores(sal)
    assert scores.shape == (5, 8, 8) and (scores.reshape(5, -1).argmax(1) == 2 * 8 + 5).all()
    effects = attribution.masking_effects(model, clips, clips.labels, sal)
    assert (effects["top_patch"] == 21).all() and (effects["top"] > 5 * effects["random"]).all()
    assert "points at patches the model reads" in attribution.masking_findings(effects)
    noise = np.random.default_rng(3).random((5, 64, 64))  # a map that knows nothing
    blind = attribution.masking_effects(model, clips, clips.labels, noise)
    assert blind["top"].mean() < effects["top"].mean()


def test_occlusion_is_the_logit_drop_of_each_patch():
    model = PatchReader().eval()
    images = torch.rand(2, 1, 64, 64, generator=torch.Generator().manual_seed(2))
    occ = attribution.occlusion(model, clips_of(images), np.array([0, 3]))
    assert occ.shape == (2, 64, 64)
    masked = images.clone()
    masked[:, :, 16:24, 40:48] = 0
    with torch.no_grad():
        drop = model(images) - model(masked)
    assert occ[0, 16, 40] == pytest.approx(drop[0, 0].item(), abs=1e-5)
    assert occ[1, 23, 47] == pytest.approx(drop[1, 3].item(), abs=1e-5)
    assert np.unravel_index(np.abs(occ[0]).argmax(), (64, 64))[0] // 8 == 2


def test_occlusion_of_a_two_input_model_keeps_the_other_input():
    from ser_utils.models.registry import build_model

    torch.manual_seed(0)
    model = build_model("combined").eval()
    clips = clips_of(torch.rand(1, 1, 64, 64), x1d=torch.randn(1, 27, 301))
    occ = attribution.occlusion(model, clips, clips.labels, patch=32)
    masked = clips.inputs["x2d"].clone()
    masked[:, :, :32, :32] = 0
    with torch.no_grad():
        drop = model(clips.inputs["x1d"], clips.inputs["x2d"]) - model(clips.inputs["x1d"], masked)
    assert occ.shape == (1, 64, 64) and occ[0, 0, 0] == pytest.approx(drop[0, 0].item(), abs=1e-5)


# ----------------------------------------------------------------------------- embeddings
def test_embeddings_are_what_the_classifier_reads():
    from ser_utils.models.registry import build_model

    torch.manual_seed(0)
    model = build_model("2d").eval()
    clips = clips_of(torch.rand(3, 1, 64, 64))
    vectors, probs = attribution.embeddings(model, clips, batch_size=2)
    assert vectors.shape == (3, model.classifier.in_features) and probs.shape == (3, 6)
    with torch.no_grad():
        again = model.classifier(torch.as_tensor(vectors)).softmax(1).numpy()
    assert np.allclose(again, probs, atol=1e-6)
    assert not model.classifier._forward_pre_hooks  # the hook is removed


def test_projection_and_neighbours():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 10)
    grouped = rng.normal(size=(30, 16)) * 0.1 + np.eye(16)[labels] * 5
    assert attribution.project_2d(grouped, "pca").shape == (30, 2)
    assert attribution.project_2d(grouped[:4], "tsne").shape == (4, 2)  # too few for t-SNE: PCA
    near = attribution.neighbour_agreement(grouped, labels)
    assert near["agreement"] == 1.0 and near["expected"] == pytest.approx(1 / 3) and near["p"] == pytest.approx(1 / 1000)
    assert "well beyond chance" in attribution.neighbour_findings(near, synthetic=False)
    mixed = attribution.neighbour_agreement(rng.normal(size=(30, 16)), labels)
    assert mixed["p"] > 0.05
    assert "does not group" in attribution.neighbour_findings(mixed, synthetic=False)
    assert "somewhat more than chance" in attribution.neighbour_findings(
        {"k": 5, "agreement": 0.4, "expected": 0.3, "p": 0.01}, synthetic=False)
    assert mixed["agreement"] < 0.6
    with pytest.raises(ValueError, match="tsne"):
        attribution.project_2d(grouped, "umap")


def test_the_best_log_mel_run_with_a_checkpoint_is_picked(tmp_path):
    for model, lr in (("1d", 0.001), ("2d", 0.001), ("2d", 0.01), ("combined", 0.1)):
        write_fake_run(tmp_path, model, "relu", lr)
    results = runs.load_results(tmp_path)
    assert attribution.pick_image_run(results, tmp_path) is None  # no checkpoint anywhere
    for run_id in results["run_id"]:
        (tmp_path / run_id / runs.CHECKPOINT_FILE).write_bytes(b"")
    best_image = results[results["model"] != "1d"].sort_values("accuracy")["run_id"].iloc[-1]
    assert attribution.pick_image_run(results, tmp_path) == best_image
    assert attribution.reads_log_mel("combined") and not attribution.reads_log_mel("combined-varlen")
    assert attribution.pick_image_run(results.iloc[0:0], tmp_path) is None


# ------------------------------------------------------------------------------ exercises
def test_verdicts():
    assert error_analysis.verdict(None, 0.5, "look").startswith("not answered yet. Hint: look")
    assert error_analysis.verdict(0.5004, 0.5, "look") == "right: 0.5"
    assert "Hint: look" in error_analysis.verdict(0.6, 0.5, "look")
    assert error_analysis.verdict(" sad", "SAD", "h") == "right: SAD"
    assert error_analysis.verdict("NEU", "SAD", "h").startswith("not yet")


def test_notebook_08_exercise_solutions_pass_their_checks():
    """Each solution cell of 08, run before its check, makes the check say right (they need no run)."""
    nb = nbformat.read(config.NOTEBOOKS_DIR / "08_analysis.ipynb", as_version=4)
    tagged = [(c.metadata.get("tags", []), c) for c in nb.cells if c.cell_type == "code"]
    checks = [c.source for tags, c in tagged if "check" in tags]
    solutions = [c for tags, c in tagged if "solution" in tags]
    assert 2 <= len(checks) == len(solutions) <= 3
    assert all(c.metadata.get("jupyter", {}).get("source_hidden") for c in solutions)
    setup = next(c.source for c in nb.cells if "micro_probs, micro_labels =" in c.source)
    namespace = {"np": np, "error_analysis": error_analysis, "facts": None}
    exec(setup, namespace)
    for solution, check in zip(solutions[:2], checks[:2]):
        exec(solution.source, namespace)
        printed = []
        exec(check, {**namespace, "print": printed.append})
        assert printed and printed[0].startswith("right"), printed
