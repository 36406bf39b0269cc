"""The training layer: from cached features to a finished run folder.

=================== ==================================================================================
module              what it holds
=================== ==================================================================================
``data``            ``TrainingData``: features, labels and the split as arrays; standardisation with
                    training-split statistics only
``runtime``         the device, seeds, and process-wide torch settings for a run
``batching``        a model's inputs as device tensors, per-batch gathering, length buckets, batched
                    evaluation
``metrics``         the test metrics (torchmetrics): accuracy, weighted F1, UAR, per-class F1, confusion
``checkpoint``      the self-contained checkpoint (schema 3), ``load_model``, ``predict``
``augment``         ``--augment``: SpecAugment-style masks per training batch, the per-epoch draw of the
                    cached augmented copies (``wave``)
``loop``            the warm-up + cosine schedule, the epoch loop, divergence handling, and ``run``
                    (writes the run folder; reuses a finished run with identical settings)
=================== ==================================================================================

Imports go one way: ``data``, ``runtime``, ``metrics`` <- ``batching`` <- ``checkpoint`` <- ``loop``.
The loop's public names are re-exported here, so a notebook calls ``training.run(cfg, data)``.
This layer reads models, features and data, never analysis, experiments or prediction.
"""

from __future__ import annotations

from ser_utils.training.loop import (DIVERGENCE_LOSS_FACTOR, FitResult, RunExistsError, as_training_data,
                                     chance_probs, is_diverged, lr_lambda, make_scheduler, run, schedule_steps,
                                     test_intervals, train_epoch)

__all__ = [
    "DIVERGENCE_LOSS_FACTOR", "FitResult", "RunExistsError", "as_training_data", "chance_probs", "is_diverged",
    "lr_lambda", "make_scheduler", "run", "schedule_steps", "test_intervals", "train_epoch",
]
