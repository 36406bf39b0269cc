"""The test metrics of a run, computed with torchmetrics (the report's, plus macro F1 and UAR)."""

from __future__ import annotations

from typing import Any

import torch


def classification_metrics(y_true: torch.Tensor, probs: torch.Tensor, classes: tuple[str, ...]) -> dict[str, Any]:
    """The report's test metrics (torchmetrics) plus macro F1, UAR and per-class F1.

    accuracy is micro (plain) accuracy; f1/precision/recall are support-weighted, as in the
    report; uar is the unweighted average recall (mean per-class recall), the usual SER metric
    that is not flattered by class imbalance.
    """
    from torchmetrics.classification import (MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score,
                                             MulticlassPrecision, MulticlassRecall)

    k = len(classes)
    y_true = y_true.cpu()
    probs = probs.cpu().float()

    def score(metric: Any) -> torch.Tensor:
        return metric(probs, y_true)

    per_class = score(MulticlassF1Score(num_classes=k, average=None))
    return {
        "accuracy": float(score(MulticlassAccuracy(num_classes=k, average="micro"))),
        "f1": float(score(MulticlassF1Score(num_classes=k, average="weighted"))),
        "precision": float(score(MulticlassPrecision(num_classes=k, average="weighted"))),
        "recall": float(score(MulticlassRecall(num_classes=k, average="weighted"))),
        "f1_macro": float(score(MulticlassF1Score(num_classes=k, average="macro"))),
        "uar": float(score(MulticlassRecall(num_classes=k, average="macro"))),
        "per_class_f1": {c: float(v) for c, v in zip(classes, per_class)},
        "confusion": score(MulticlassConfusionMatrix(num_classes=k)).numpy(),
    }


