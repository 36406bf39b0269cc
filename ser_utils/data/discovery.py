"""Which corpus a notebook uses when it is given none, and the record that makes the choice stick.

Why: a notebook opened in JupyterLab has no command line. With ``data_dir`` empty it must land on
the corpus whose features and runs are already in ``outputs/`` (what ``make demo`` or the last
feature extraction used), not on a fixed folder nobody wrote. The order is fixed, and the notebook
banner names the step that decided:

1. ``$CREMA_D_DIR``: an explicit choice, used even when it is wrong, so the error names it;
2. the corpus recorded in ``outputs/corpus.json`` (:func:`record_corpus`, called by the main job
   and by feature extractions), while that folder still exists;
3. a complete demo corpus under ``data/``: the quick one (``make demo``, ``make lab``) first, then
   the full one (``make data``), then any other;
4. nothing: :func:`ensure_corpus` generates the quick demo corpus (notebook 01, ``make lab``);
   every other notebook says in one line which command makes it (:func:`missing_corpus_message`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ser_utils import config, fileio

CORPUS_RECORD = "corpus.json"


@dataclass(frozen=True)
class FoundCorpus:
    """A corpus folder and the discovery step that chose it (shown in the notebook banner)."""

    path: Path
    source: str


def quick_demo_corpus() -> tuple[Path, int]:
    """Where the quick demo corpus lives and how many actors it has."""
    return config.QUICK_DEMO_CORPUS_DIR, config.QUICK_DEMO_ACTORS


def record_path(outputs_dir: str | Path | None = None) -> Path:
    """``<outputs>/corpus.json`` (``outputs/`` or ``$SER_OUTPUTS_DIR`` by default)."""
    return Path(outputs_dir or config.OUTPUTS_DIR) / CORPUS_RECORD


def record_corpus(data_dir: str | Path, outputs_dir: str | Path | None = None, by: str = "") -> Path:
    """Write ``<outputs>/corpus.json`` naming the corpus root ``data_dir`` (absolute); returns the file.

    ``by`` says who used it ("main job", "features", ...). Nothing is written when the record already
    names the same folder, so concurrent sweep shards do not rewrite it.
    """
    from ser_utils.data import dataset

    root = dataset.locate(data_dir).root.resolve()
    path = record_path(outputs_dir)
    previous = fileio.read_json(path) or {}
    if previous.get("data_dir") == str(root):
        return path
    return fileio.write_json(path, {"data_dir": str(root), "corpus": dataset.corpus_label(root), "recorded_by": by})


def recorded_corpus(outputs_dir: str | Path | None = None) -> Path | None:
    """The corpus ``corpus.json`` names, or None when there is no record or its folder is gone."""
    record = fileio.read_json(record_path(outputs_dir)) or {}
    folder = record.get("data_dir")
    if not isinstance(folder, str) or not folder:
        return None
    return Path(folder) if Path(folder).is_dir() else None


def demo_corpora(data_root: str | Path | None = None) -> list[Path]:
    """Complete demo corpora under ``data/``: the quick one, the full one, then the others by name.

    A corpus still being generated has no marker yet and is not listed.
    """
    from ser_utils.data import dataset

    quick, _ = quick_demo_corpus()
    root = Path(data_root) if data_root is not None else quick.parent
    preferred = [root / quick.name, root / config.DEMO_CORPUS_DIR.name]
    others = sorted(p for p in root.iterdir() if p.is_dir() and p not in preferred) if root.is_dir() else []
    return [p for p in [*preferred, *others] if dataset.is_synthetic(p)]


def find_corpus(outputs_dir: str | Path | None = None, data_root: str | Path | None = None) -> FoundCorpus | None:
    """The corpus to use when none is named (the module docstring gives the order), or None."""
    env = os.environ.get(config.DATA_ENV_VAR)
    if env:
        return FoundCorpus(Path(env).expanduser(), f"${config.DATA_ENV_VAR}")
    recorded = recorded_corpus(outputs_dir)
    if recorded is not None:
        return FoundCorpus(recorded, f"the corpus the pipeline used last, recorded in {record_path(outputs_dir)}")
    demos = demo_corpora(data_root)
    if demos:
        return FoundCorpus(demos[0], "the demo corpus found under data/")
    return None


def missing_corpus_message() -> str:
    """One line: there is no corpus, and the commands that make one."""
    quick, actors = quick_demo_corpus()
    return (f"no corpus yet: run notebook 01_data_tour or `make lab` (they generate the synthetic demo corpus),"
            f" or `python -m ser_utils demo-data --out {_shown(quick)} --actors {actors}`; for CREMA-D set"
            f" ${config.DATA_ENV_VAR} or data_dir")


def _shown(path: Path) -> str:
    """``path`` relative to the repository when inside it (what a user types from the clone)."""
    try:
        return str(path.relative_to(config.REPO_ROOT))
    except ValueError:
        return str(path)


def ensure_corpus(outputs_dir: str | Path | None = None, progress: bool = True) -> FoundCorpus:
    """:func:`find_corpus`, else generate the quick demo corpus (with a progress bar) and return it."""
    found = find_corpus(outputs_dir)
    if found is not None:
        return found
    from ser_utils.data import demo_corpus

    quick, actors = quick_demo_corpus()
    demo_corpus.generate(quick, n_actors=actors, seed=config.SEED, progress=progress)
    return FoundCorpus(quick, f"the synthetic demo corpus ({actors} actors), generated just now: none was found")


if __name__ == "__main__":  # `make lab`: have a corpus before JupyterLab opens
    chosen = ensure_corpus()
    print(f"corpus: {chosen.path} ({chosen.source})")
