"""The course report's published numbers, as data, so our results can be shown beside them.

Source: the course report this project reproduces (Tables 2-4 and section 6). Every figure is a
test-set number on the real CREMA-D (7,442 clips) under the report's protocol: a random split
stratified by emotion, 70% / 30%, with 5% of the 70% held out for validation, seed 42, 150
epochs. F1, precision and recall are support-weighted averages over the six emotions (so the
weighted recall equals the accuracy; Table 2 leaves it blank). The report publishes no
per-configuration table for the combined model, only its two Table 2 rows.

The numbers are copied verbatim into :data:`PUBLISHED_CSV`; nothing here is computed from our
runs. Model names follow the project's run ids (``{model}-{activation}-lr{lr:g}``): the
report's combined "fixed-size" row is our ``combined`` and its "variable-length" row our
``combined-varlen``; the report's own wording stays in ``report_model`` and ``variant``.
"""

from __future__ import annotations

import io
import math
from typing import Any

import pandas as pd

from ser_utils import config

#: Tables 2-4 of the report, copied exactly (blank = not published).
PUBLISHED_CSV = """\
table,model,activation,lr,variant,accuracy,f1,precision,recall
table2,2d,silu,0.001,,0.641,0.639,0.643,
table2,combined,silu,0.001,variable-length,0.622,0.619,0.625,
table2,combined,silu,0.001,fixed-size,0.613,0.608,0.614,
table2,1d,elu,0.01,,0.556,0.553,0.557,
table2,resnet38,relu,0.001,,0.308,0.305,0.311,
table2,resnet101,relu,0.001,,0.410,0.382,0.421,
table3,2d,silu,0.001,,0.641,0.639,0.643,0.641
table3,2d,relu,0.001,,0.582,0.581,0.585,0.582
table3,2d,relu,0.01,,0.543,0.541,0.548,0.543
table3,2d,relu,0.1,,0.421,0.412,0.436,0.421
table3,2d,silu,0.01,,0.531,0.529,0.534,0.531
table3,2d,silu,0.1,,0.402,0.395,0.422,0.402
table3,2d,elu,0.001,,0.569,0.568,0.573,0.569
table3,2d,elu,0.01,,0.552,0.551,0.556,0.552
table3,2d,elu,0.1,,0.437,0.429,0.441,0.437
table4,1d,relu,0.001,,0.528,0.526,0.531,0.528
table4,1d,relu,0.01,,0.549,0.547,0.552,0.549
table4,1d,relu,0.1,,0.394,0.385,0.401,0.394
table4,1d,silu,0.001,,0.532,0.530,0.535,0.532
table4,1d,silu,0.01,,0.541,0.539,0.545,0.541
table4,1d,silu,0.1,,0.406,0.396,0.412,0.406
table4,1d,elu,0.001,,0.543,0.541,0.546,0.543
table4,1d,elu,0.01,,0.556,0.553,0.557,0.556
table4,1d,elu,0.1,,0.412,0.403,0.419,0.412
"""

#: What each table shows in the report.
TABLES: dict[str, str] = {
    "table2": "best configuration of each architecture",
    "table3": "2D CNN, every activation and learning rate",
    "table4": "1D CNN, every activation and learning rate",
}
#: The report's combined-model variants -> the project's model names.
VARIANT_MODELS: dict[str, str] = {"variable-length": "combined-varlen", "fixed-size": "combined"}

#: Per-class F1 of the best model (2D CNN, SiLU, lr 0.001) that the report states (section 6);
#: the other emotions' values are not published.
PER_CLASS_F1: dict[str, float] = {"ANG": 0.76, "HAP": 0.71, "FEA": 0.55}
#: The emotions the report names as recognised best and worst by that model.
BEST_RECOGNISED: tuple[str, ...] = ("ANG", "HAP")
WORST_RECOGNISED: tuple[str, ...] = ("FEA",)
#: The most confused pairs the report names, in its order (read as unordered pairs).
CONFUSED_PAIRS: tuple[tuple[str, str], ...] = (("FEA", "SAD"), ("DIS", "ANG"), ("NEU", "SAD"))
#: ResNet-101's accuracy on the training and validation sets ("about 0.70 against 0.41").
RESNET101_TRAIN_VAL: dict[str, float] = {"train_acc": 0.70, "val_acc": 0.41}
#: SiLU over ReLU for the 2D CNN at lr 0.001, in accuracy points as the report states it.
SILU_OVER_RELU_2D_POINTS = 5.9
#: The report's split sizes ("about"; ours are 4,948 / 261 / 2,233 on the 7,442 clips).
SPLIT_SIZES: dict[str, int] = {"train": 4960, "val": 260, "test": 2222}
#: The report's Table 1 (training setup): setting -> the report's value, as text.
TRAINING_SETUP: dict[str, str] = {
    "optimiser": "Adam",
    "learning rate": "0.001, 0.01, 0.1 (grid)",
    "epochs": "150",
    "batch size": "64",
    "weight decay": "1e-4",
    "warm-up": "5 epochs, linear from 0 (step / w)",
    "schedule after warm-up": "cosine to 0.1% of the rate",
    "dropout (conv blocks / head)": "0.3 / 0.5",
    "checkpoint tested": "lowest validation loss",
}
#: The protocol every published number comes from.
PROTOCOL: dict[str, Any] = {"corpus": "crema-d", "split": "random", "stratify": "emotion", "test_fraction": 0.30,
                            "val_fraction_of_rest": 0.05, "seed": 42, "epochs": 150}

COLUMNS = ["table", "model", "report_model", "variant", "activation", "lr", "run_id", "accuracy", "f1",
           "precision", "recall"]


def run_id(model: str, activation: str, lr: float) -> str:
    """The project's run id of a configuration, e.g. ``2d-silu-lr0.001``."""
    return f"{model}-{activation}-lr{float(lr):g}"


def all_rows() -> pd.DataFrame:
    """Every published row (Tables 2-4), with the project's model names and run ids (a fresh copy)."""
    frame = pd.read_csv(io.StringIO(PUBLISHED_CSV), dtype={"variant": "string"}, keep_default_na=False,
                        na_values={c: [""] for c in ("accuracy", "f1", "precision", "recall")})
    frame["variant"] = frame["variant"].replace("", pd.NA)
    frame["report_model"] = frame["model"]
    frame["model"] = [VARIANT_MODELS.get(v, m) if isinstance(v, str) else m
                      for m, v in zip(frame["model"], frame["variant"])]
    frame["lr"] = frame["lr"].astype(float)
    frame["run_id"] = [run_id(m, a, lr) for m, a, lr in zip(frame["model"], frame["activation"], frame["lr"])]
    return frame.reindex(columns=COLUMNS)


def table(name: str) -> pd.DataFrame:
    """One published table (``"table2"``, ``"table3"`` or ``"table4"``), rows in the report's order."""
    if name not in TABLES:
        raise ValueError(f"table {name!r} is not published; choose one of {', '.join(TABLES)}")
    rows = all_rows()
    return rows[rows["table"] == name].reset_index(drop=True)


def lookup(model: str, activation: str, lr: float, variant: str | None = None) -> dict[str, Any] | None:
    """The published numbers of one configuration as a dict, or None when the report has none.

    ``model`` is a project name (``"combined-varlen"``) or the report's (``"combined"`` with
    ``variant="variable-length"``). Tables 3 and 4 are preferred over Table 2 where both list a
    configuration (they agree, and carry the recall).
    """
    if variant is not None:
        if variant not in VARIANT_MODELS:
            raise ValueError(f"variant {variant!r}: the report's variants are {', '.join(VARIANT_MODELS)}")
        model = VARIANT_MODELS[variant]
    rows = all_rows()
    hit = rows[(rows["model"] == model) & (rows["activation"] == activation)
               & rows["lr"].map(lambda x: math.isclose(x, float(lr), rel_tol=1e-9))]
    if hit.empty:
        return None
    hit = hit.sort_values("table", ascending=False, kind="stable")  # table4/3 before table2
    return {k: (None if pd.isna(v) else v) for k, v in hit.iloc[0].to_dict().items()}


def best() -> dict[str, Any]:
    """The report's best model: the Table 2 row with the highest test accuracy."""
    rows = table("table2")
    row = rows.loc[rows["accuracy"].idxmax()].to_dict()
    return {k: (None if pd.isna(v) else v) for k, v in row.items()}


def per_class_f1() -> pd.Series:
    """The best model's per-class F1 as published, in emotion order (NaN where not published)."""
    return pd.Series({e: PER_CLASS_F1.get(e, math.nan) for e in config.EMOTIONS}, name="report_f1", dtype=float)
