"""Bayesian hyper-parameter tuning with Optuna: one study, many workers, every trial a run folder.

Exists for the report's Future Work 6 ("batch size, optimizer, dropout rates could be further
optimized using ... Bayesian optimization"). :func:`tune` runs or resumes a study:

* the objective is the best epoch's validation loss (the protocol's own selection rule); every
  epoch reports the best loss so far to the pruner; the test set is never read while tuning
  (trials are trained with ``test=False`` and end ``validated``);
* each trial is a run folder ``<out>/tuning/<study>/runs/tune-<study>-tNNNN/`` written by
  :func:`ser_utils.training.run`, its parameters and run id recorded on the Optuna trial;
* ``jobs`` worker processes on this machine (or SLURM array tasks, or anyone running the same
  command against the same ``storage``) share the study; ``trials`` is the study's target of
  finished (complete or pruned) trials, so rerunning with a larger number adds the difference;
* when the target is reached, :func:`finish` tests the best trial once, trains the report's
  configuration of the same model with the same budget, and compares the two on the same test
  clips (exact McNemar test, paired bootstrap interval); ``study.json`` records it all.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ser_utils import config, fileio, runs, stats
from ser_utils.errors import UserError
from ser_utils.experiments import search_space, study_storage

SAMPLERS = ("tpe", "random", "gp")
PRUNERS = ("median", "hyperband", "none")
DEFAULT_EPOCHS = 20
STUDY_FILE = "study.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass
class TuneRequest:
    """Everything a worker needs to join a study (plain data: it crosses process boundaries)."""

    data: str
    model: str = "2d"
    trials: int = 20
    study: str = ""
    storage: str = ""
    sampler: str = "tpe"
    pruner: str = "median"
    epochs: int = DEFAULT_EPOCHS
    split: str = "random"
    seed: int = config.SEED
    timeout: float | None = None
    device: str = "auto"
    out: str = str(config.OUTPUTS_DIR)
    features_dir: str = str(config.FEATURES_DIR)
    space: dict[str, Any] = field(default_factory=search_space.default_space)
    heartbeat_s: int = study_storage.HEARTBEAT_S
    grace_s: int | None = None

    @property
    def folder(self) -> Path:
        return Path(self.out) / "tuning" / self.study

    @property
    def runs_dir(self) -> Path:
        return self.folder / "runs"

    @property
    def url(self) -> str:
        return self.storage or study_storage.default_url(self.folder)


def default_study_name(model: str, split: str) -> str:
    return f"{model}-{split}"


def make_request(data: str | Path | None, **options: Any) -> TuneRequest:
    """A checked request: names, numbers and choices, with one-line errors naming the fix."""
    from ser_utils.models import MODEL_REGISTRY

    request = TuneRequest(data=str(data if data is not None else config.default_data_dir()),
                          **{k: v for k, v in options.items() if v is not None})
    if request.model not in MODEL_REGISTRY:
        raise UserError(f"--model {request.model}: unknown; choose from {', '.join(MODEL_REGISTRY)}")
    request.study = request.study or default_study_name(request.model, request.split)
    if not _NAME.match(request.study):
        raise UserError(f"--study {request.study!r}: use letters, digits, '.', '_' or '-' (up to 64)")
    if request.sampler not in SAMPLERS or request.pruner not in PRUNERS:
        raise UserError(f"--sampler {request.sampler} / --pruner {request.pruner}: samplers are "
                        f"{', '.join(SAMPLERS)}, pruners {', '.join(PRUNERS)}")
    if request.trials < 1 or request.epochs < 1:
        raise UserError(f"--trials {request.trials} --epochs {request.epochs}: both must be at least 1")
    if request.split not in config.SPLITS:
        raise UserError(f"--split {request.split}: choose from {', '.join(config.SPLITS)}")
    request.space = search_space.validate(dict(request.space))
    return request


# ----------------------------------------------------------------------------- the study
#: What a study is about: a rerun or another worker with other values would mix two experiments.
STUDY_IDENTITY = ("model", "epochs", "split", "seed", "space")


def open_study(request: TuneRequest, worker: int = 0) -> Any:
    """Create or load the study; refuse one that was started with other settings."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = study_storage.open_storage(request.url, request.heartbeat_s, request.grace_s)
    study = optuna.create_study(study_name=request.study, storage=storage, direction="minimize",
                                load_if_exists=True, pruner=_pruner(request))
    identity = fileio.jsonable({k: getattr(request, k) for k in STUDY_IDENTITY})
    recorded = study.user_attrs.get("identity")
    if recorded is None:
        study.set_user_attr("identity", identity)
    elif recorded != identity:
        diffs = [k for k in STUDY_IDENTITY if recorded.get(k) != identity.get(k)]
        raise UserError(f"study {request.study} in {study_storage.masked(request.url)} was started with other "
                        f"settings ({', '.join(diffs)}); rerun with the same ones or choose another --study")
    # seeded by the study's state and the worker, so a resumed study never replays its first draws
    seed = request.seed + 1000 * worker + len(study.trials)
    study.sampler = _sampler(request.sampler, seed)
    return study


def _sampler(name: str, seed: int) -> Any:
    import optuna

    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _pruner(request: TuneRequest) -> Any:
    import optuna

    if request.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=1)
    if request.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=request.epochs)
    return optuna.pruners.NopPruner()


def counted(study: Any) -> int:
    """Trials that count towards the target: complete or pruned (failed ones are retried or redone)."""
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def trial_config(request: TuneRequest, number: int, params: dict[str, Any]) -> config.TrainConfig:
    """The TrainConfig of trial ``number``: the report's protocol with the trial's parameters."""
    return config.TrainConfig(model=request.model, epochs=request.epochs, split=request.split, seed=request.seed,
                              device=request.device, run_name=f"tune-{request.study}-t{number:04d}", **params)


def objective(request: TuneRequest, data: Any, trial: Any) -> float:
    """Train one trial without reading the test set; its value is the best epoch's validation loss."""
    import optuna

    from ser_utils import training

    cfg = trial_config(request, trial.number, search_space.suggest(trial, request.space))
    trial.set_user_attr("run_id", cfg.run_id)

    def on_epoch(row: dict[str, float]) -> bool:
        trial.report(row["best_val_loss"], step=int(row["epoch"]))
        return trial.should_prune()

    metrics = training.run(cfg, data, out_dir=request.runs_dir, progress=False, on_epoch=on_epoch, test=False)
    trial.set_user_attr("status", metrics["status"])
    if metrics["status"] == runs.STATUS_STOPPED:
        raise optuna.TrialPruned(f"pruned after epoch {metrics['epochs_run']}")
    value = float(metrics["best_val_loss"])
    return value if math.isfinite(value) else float("inf")  # diverged before any clean epoch


def load_data(request: TuneRequest) -> Any:
    """The corpus's features (the cache when current) and its split for this study."""
    from ser_utils import features
    from ser_utils.data import dataset
    from ser_utils.training.data import TrainingData

    clips, _ = dataset.scan(request.data)
    feature_set = features.extract(clips, cache_root=Path(request.features_dir), progress=False)
    return TrainingData.from_features(feature_set, split_method=request.split, seed=config.SEED)


def work(request: TuneRequest, worker: int = 0, cpus: list[int] | None = None) -> int:
    """One worker: ask, train, tell, until the study holds ``request.trials`` counted trials.

    Returns the number of trials this worker ran. Failed trials (an exception in training) are
    recorded in the study and in their run folder, and the worker goes on.
    """
    import optuna

    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cpus)
    study = open_study(request, worker)
    remaining = request.trials - counted(study)
    if remaining <= 0:
        return 0
    data = load_data(request)
    before = len(study.trials)
    stop = optuna.study.MaxTrialsCallback(request.trials, states=(optuna.trial.TrialState.COMPLETE,
                                                                   optuna.trial.TrialState.PRUNED))
    study.optimize(lambda trial: objective(request, data, trial), n_trials=remaining, timeout=request.timeout,
                   callbacks=[stop], catch=(Exception,), gc_after_trial=False)
    return len(study.trials) - before


def _work_task(args: tuple[TuneRequest, int, list[int] | None]) -> int:
    return work(*args)


def run_workers(request: TuneRequest, jobs: int) -> int:
    """``jobs`` workers on this machine against one study, each pinned to its share of the cores."""
    from ser_utils import workers

    if jobs < 1:
        raise UserError(f"--jobs {jobs}: give a positive number of worker processes")
    if jobs == 1:
        return work(request)
    open_study(request)  # create the database and the study once, before the workers race to
    load_data(request)  # extract once here, so the workers all read the cache
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    slices = [cores[k::jobs] or None for k in range(jobs)] if len(cores) >= jobs else [None] * jobs
    with workers.process_pool(jobs, initializer=None) as pool:
        return sum(pool.map(_work_task, [(request, k, slices[k]) for k in range(jobs)]))


# ------------------------------------------------------------------------- the finished study
def report_config(request: TuneRequest) -> config.TrainConfig:
    """The report's configuration of the study's model (Table 2) with the study's budget and split."""
    from ser_utils.analysis import published

    rows = published.table("table2")
    rows = rows[rows["model"] == request.model]
    activation, lr = (rows.iloc[0]["activation"], float(rows.iloc[0]["lr"])) if len(rows) else ("relu", 0.001)
    return config.TrainConfig(model=request.model, activation=activation, lr=lr, epochs=request.epochs,
                              split=request.split, seed=request.seed, device=request.device)


def paired_comparison(run_a: Path, run_b: Path, seed: int = config.SEED) -> dict[str, Any]:
    """Test accuracy of run A minus run B on their common test clips: paired bootstrap interval and
    the exact McNemar test (:mod:`ser_utils.stats`)."""
    a = pd.read_csv(Path(run_a) / runs.PREDICTIONS_FILE).set_index("path")
    b = pd.read_csv(Path(run_b) / runs.PREDICTIONS_FILE).set_index("path")
    common = a.index.intersection(b.index).sort_values()
    if len(common) == 0 or (a.loc[common, "true"] != b.loc[common, "true"]).any():
        raise ValueError(f"{run_a.name} and {run_b.name} were not tested on the same clips")
    truth, pred_a, pred_b = (a.loc[common, "true"].to_numpy(), a.loc[common, "predicted"].to_numpy(),
                             b.loc[common, "predicted"].to_numpy())
    boot = stats.paired_bootstrap(truth, pred_a, pred_b, metric="accuracy", seed=seed)
    test = stats.mcnemar_exact(pred_a == truth, pred_b == truth)
    return {"a": run_a.name, "b": run_b.name, "accuracy_a": float((pred_a == truth).mean()),
            "accuracy_b": float((pred_b == truth).mean()), "difference": boot.diff, "lo": boot.lo, "hi": boot.hi,
            "p": test.pvalue, "only_a_right": test.b, "only_b_right": test.c, "n_clips": int(len(common)),
            "test": "McNemar exact"}


def finish(request: TuneRequest) -> dict[str, Any]:
    """Test the best trial once, train the report's configuration alike, compare; write study.json."""
    from optuna.trial import TrialState

    from ser_utils import training

    study = open_study(request)
    states = pd.Series([t.state.name for t in study.trials]).value_counts().to_dict() if study.trials else {}
    summary: dict[str, Any] = {"study": request.study, "storage": study_storage.masked(request.url),
                               "request": asdict(request),
                               "trials": states, "target": request.trials}
    summary["request"]["storage"] = summary["storage"]
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not any(math.isfinite(t.value) for t in complete):
        summary["best"] = None
        fileio.write_json(request.folder / STUDY_FILE, summary)
        return summary
    best = study.best_trial
    data = load_data(request)
    summary["corpus"] = str(data.corpus)
    summary["corpus_label"] = config.SYNTHETIC_LABEL if data.corpus == "synthetic" else str(data.corpus)
    best_dir = request.runs_dir / best.user_attrs["run_id"]
    tested = training.evaluate_test(best_dir, data)
    baseline = report_config(request)
    base = training.run(baseline, data, out_dir=request.runs_dir, progress=False)
    summary["best"] = {"number": best.number, "value": best.value, "params": best.params,
                       "run_id": best_dir.name, "run_dir": str(best_dir),
                       **{k: tested.get(k) for k in ("accuracy", "accuracy_lo", "accuracy_hi", "f1", "uar")}}
    summary["baseline"] = {"run_id": baseline.run_id, "run_dir": str(request.runs_dir / baseline.run_id),
                           "activation": baseline.activation, "lr": baseline.lr,
                           **{k: base.get(k) for k in ("best_val_loss", "accuracy", "accuracy_lo", "accuracy_hi", "f1")}}
    summary["comparison"] = paired_comparison(best_dir, request.runs_dir / baseline.run_id, request.seed)
    fileio.write_json(request.folder / STUDY_FILE, summary)
    return summary


def tune(request: TuneRequest, jobs: int = 1, finish_study: bool = True) -> dict[str, Any]:
    """Run (or resume) the study with ``jobs`` local workers, then :func:`finish` it once the
    target is reached. Returns the summary (``study.json``)."""
    open_study(request)  # one clear error about the storage or a clash before any worker starts
    ran = run_workers(request, jobs)
    study = open_study(request)
    summary = {"study": request.study, "ran": ran, "counted": counted(study), "target": request.trials}
    if finish_study and counted(study) >= request.trials:
        summary.update(finish(request))
        summary["ran"] = ran
    return summary


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """What the ``tune`` command prints."""
    lines = [f"study {summary['study']}: {summary.get('ran', 0)} trial(s) run now, "
             f"{summary.get('counted', '?')}/{summary['target']} counted"
             + (f" ({summary['corpus_label']})" if summary.get("corpus_label") else "")]
    best, comparison = summary.get("best"), summary.get("comparison")
    if best:
        lines.append(f"best trial {best['number']}: validation loss {best['value']:.4f}, test accuracy "
                     f"{best['accuracy']:.3f} [{best['accuracy_lo']:.3f}, {best['accuracy_hi']:.3f}] -> {best['run_dir']}")
        lines.append("  " + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                      for k, v in best["params"].items()))
    if comparison:
        lines.append(f"vs the report's configuration {comparison['b']}: {100 * comparison['difference']:+.1f} points "
                     f"[{100 * comparison['lo']:+.1f}, {100 * comparison['hi']:+.1f}], McNemar p = "
                     f"{comparison['p']:.3g} on {comparison['n_clips']} test clips")
    return lines



def settings_table(request: TuneRequest, summary: dict[str, Any]) -> pd.DataFrame:
    """The best trial's settings beside the report's protocol (Table 1; activation and lr of Table 2)."""
    report = report_config(request)
    best = (summary.get("best") or {}).get("params", {})
    fields = [*search_space.SEARCHABLE, "epochs"]
    return pd.DataFrame({"the report": [getattr(report, f) for f in fields],
                         "best trial": [best.get(f, getattr(report, f) if f == "epochs" else "-") for f in fields]},
                        index=pd.Index(fields, name="setting"))


def conclusion(summary: dict[str, Any]) -> str:
    """The study's outcome in words, computed from its numbers (Markdown)."""
    best, comparison = summary.get("best"), summary.get("comparison")
    if not best or not comparison:
        return "No trial of this study finished with a finite validation loss: nothing to test or compare."
    points, lo, hi = (100 * comparison["difference"], 100 * comparison["lo"], 100 * comparison["hi"])
    p = comparison["p"]
    verdict = ("better than" if lo > 0 else "worse than" if hi < 0 else "not distinguishable from")
    return (f"On {comparison['n_clips']} test clips ({summary.get('corpus_label', '')}), the best of "
            f"{sum(summary.get('trials', {}).values())} trials (trial {best['number']}, validation loss "
            f"{best['value']:.3f}) scores {100 * comparison['accuracy_a']:.1f}% against "
            f"{100 * comparison['accuracy_b']:.1f}% for the report's configuration `{comparison['b']}` trained "
            f"with the same budget: {points:+.1f} points, 95% interval [{lo:+.1f}, {hi:+.1f}], exact McNemar "
            f"p = {p:.3g}. The tuned model is **{verdict}** the report's configuration on these clips.")
