"""The analysis layer: finished runs read back as the report's tables, figures, verdicts and pages.

=================== ==================================================================================
module              what it holds
=================== ==================================================================================
``published``       the course report's published numbers (Tables 2-4, per-class F1, confusions)
``paired_runs``     finished runs aligned clip by clip per test split; paired comparisons
``same_budget``     notebook 12: a new model against a report model at one budget, on the same test clips;
                    what attentive pooling weighs over a clip
``claims``          the report's findings and a verdict for each, computed from our runs
``null_simulation`` the false-positive rate of the claims' accuracy test (identical configurations)
``breakdown``       where a model fails (intensity, sex, actor, split), seeds, ties, the listeners
``augmentation``    a run with ``--augment`` against its twin without: the paired test, the verdict
``tables``          the report's tables beside the published numbers, confusions, the human baseline
``plots``           every figure of the report
``teaching``        the figures of the notebooks' derivations (VAD decisions, mel filterbank, the resize,
                    activations and their derivatives, the learning-rate schedule)
``ablation``        a trained two-trunk model scored with each trunk alone (notebook 06)
``error_analysis``  a run's mistakes from its files: confusion read by code, clips, calibration (ECE)
``attribution``     inside a log-mel model: occlusion, saliency (captum), penultimate-layer embeddings
``error_plots``     the error analysis's figures: reliability diagram, occlusion maps, embedding map
``report``          the HTML export (nbconvert) and its index page
=================== ==================================================================================

The table functions (``tables``) are re-exported here, so notebook 08 calls
``analysis.best_per_model(results)``. Nothing here trains: it reads run folders through
:mod:`ser_utils.runs` and statistics from :mod:`ser_utils.stats`.
"""

from __future__ import annotations

from ser_utils.analysis.tables import (PERCENT_COLUMNS, TABLE_COLUMNS, TIE_RULE, TIE_RULES, banner_html,
                                       baseline_table, best_per_model, best_run, caption, clip_file,
                                       comparison_findings, configuration_table, confused_pairs, f1_from_confusion,
                                       histories, human_accuracy, human_baseline, human_confusion, human_summary,
                                       human_vs_model, is_synthetic, model_confusion, over_seeds, per_class_f1,
                                       style_table, sweep_status, top_runs, training_setup, vote_score,
                                       with_intervals)

__all__ = [
    "PERCENT_COLUMNS", "TABLE_COLUMNS", "TIE_RULE", "TIE_RULES", "banner_html", "baseline_table", "best_per_model",
    "best_run", "caption", "clip_file", "comparison_findings", "configuration_table", "confused_pairs",
    "f1_from_confusion", "histories", "human_accuracy", "human_baseline", "human_confusion", "human_summary",
    "human_vs_model", "is_synthetic", "model_confusion", "over_seeds", "per_class_f1", "style_table", "sweep_status",
    "top_runs", "training_setup", "vote_score", "with_intervals",
]
