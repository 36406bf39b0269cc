"""Shared fixtures: fake CREMA-D folders (names only) and the real metadata when present."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from ser_utils import config

# ../shared/crema-d holds real CREMA-D metadata on the development machines and in CI;
# a user's clone lacks it and the tests that need it are skipped.
SHARED_CREMA_D = config.REPO_ROOT.parent / "shared" / "crema-d"

os.environ.setdefault("MPLBACKEND", "Agg")


def real_clip_names() -> list[str]:
    """The 7,442 released CREMA-D names, from the shared summaryTable.csv."""
    table = SHARED_CREMA_D / "summaryTable.csv"
    if not table.is_file():
        pytest.skip(f"{table} not present (real CREMA-D metadata is only on the development machines)")
    with open(table, newline="") as handle:
        return [row["FileName"] + ".wav" for row in csv.DictReader(handle)]


def make_name_folder(folder: Path, names: list[str], content: bytes = b"") -> Path:
    """A folder of empty files with the given names: enough for manifest and split tests."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(content)
    return folder


@pytest.fixture(scope="session")
def real_names_root(tmp_path_factory) -> Path:
    """A CREMA-D-like root: AudioWAV/ with the 7,442 real names and the real demographics."""
    root = tmp_path_factory.mktemp("crema-d")
    make_name_folder(root / "AudioWAV", real_clip_names())
    (root / "VideoDemographics.csv").write_bytes((SHARED_CREMA_D / "VideoDemographics.csv").read_bytes())
    return root


TINY_ACTORS = 3  # 246 clips: the smallest corpus every split and notebook accepts


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """A 3-actor demo corpus (real synthetic speech), generated once per test session."""
    from ser_utils.data import demo_corpus

    root = tmp_path_factory.mktemp("tiny-corpus")
    demo_corpus.generate(root, n_actors=TINY_ACTORS, seed=42, progress=False)
    return root


@pytest.fixture(scope="session")
def notebook_outputs(tmp_path_factory) -> Path:
    """Where notebooks executed by the tests write (via $SER_OUTPUTS_DIR), not outputs/."""
    folder = tmp_path_factory.mktemp("outputs")
    previous = os.environ.get("SER_OUTPUTS_DIR")
    os.environ["SER_OUTPUTS_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("SER_OUTPUTS_DIR", None)
    else:
        os.environ["SER_OUTPUTS_DIR"] = previous


#: Test files that take minutes, slowest first. ``make test`` runs files side by side (pytest-xdist,
#: ``--dist loadfile``) in collection order: starting these first keeps one long file from
#: starting last and holding up the end of the run.
SLOWEST_FILES = ("test_make_demo_and_lab.py", "test_notebooks.py", "test_slurm.py", "test_sweep.py",
                 "test_predict.py", "test_workers.py", "test_report.py", "test_predict_browser.py")


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(SLOWEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: file order kept otherwise
