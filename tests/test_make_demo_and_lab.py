"""What a user does first: ``make demo`` (the main job end to end), and every notebook Run All in a
real JupyterLab driven by headless Chromium, before and after it (what a grader does).

The main job runs once, for real, into a temporary copy of the clone (:func:`main_job`): its
outputs are checked (:func:`test_main_job_end_to_end`) and are the state the JupyterLab test
after ``make demo`` opens. One JupyterLab server (headless, free localhost port, no token; stopped by its process id) and
one browser page serve two states of a clone:

* ``make lab`` first, no ``make demo`` (:func:`test_make_lab_first`): no corpus, no outputs.
  Notebook 04 stops at its setup cell with the one line that says how to get a corpus.
  Notebook 01 generates the quick demo corpus (8 actors) with its progress bar, and its
  explorer's widgets render and answer; then 02 (the first feature extraction, which records the
  corpus) and 08 (no runs yet) run clean, and ``python -m ser_utils.data.discovery`` (what
  ``make lab`` runs before JupyterLab) finds that corpus instead of generating another. The
  other notebooks are left to the second test, which runs them on a corpus 3x smaller: here they
  would see the same thing (a demo corpus, its cached features) with no sweep run to collide
  with, so they would only cost minutes of CPU.
* after ``make demo`` (:func:`test_after_make_demo`): the state the main job left, on the tiny
  3-actor corpus (``python -m ser_utils all`` with a 1-epoch sweep of 1d, 2d and combined at relu,
  lr 0.001; the features command inside it records the corpus in ``outputs/corpus.json``), which
  is what notebooks 08 and 09 read. Every notebook runs clean with ``data_dir`` empty on
  the recorded tiny corpus (not on the 8-actor demo corpus the first test left under ``data/``).
  Notebook 07's defaults (4 epochs) differ from the sweep's 1d run (1 epoch): it trains into its
  own folder and leaves the sweep's untouched; a second Run All loads that run, not retraining it.

A notebook passes when its saved file (the front end's record) has no error output and an
execution count on every code cell. Everything happens in a temporary copy of the clone
(``ser_utils/`` and ``notebooks/``; ``PYTHONPATH`` puts the copy first, so ``data/`` and
``outputs/`` are the copy's): the repository's own folders are never read or written.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from ser_utils import config
from ser_utils.data import discovery as corpus_discovery, demo_corpus
from tests import jupyterlab_driver as driver
from tests.test_teaching import assert_taught

pytestmark = [pytest.mark.slow]
browser = pytest.mark.browser

NOTEBOOKS = [p.stem for p in sorted(config.NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))]
RUN_ALL_TIMEOUT_S = 300  # per notebook; the slowest (09 on the tiny corpus) takes about a minute on 2 busy cores
SWEEP_RUN = config.TrainConfig(model="1d", activation="relu", lr=0.001, epochs=1).run_id
NOTEBOOK_07_RUN = config.TrainConfig(model="1d", activation="relu", lr=0.001, epochs=4).run_id  # 07's defaults


@pytest.fixture(scope="module")
def chromium() -> str:
    pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: pip install -e '.[dev]'")
    path = driver.find_chromium()
    if path is None:
        pytest.skip("no headless browser: install Debian's chromium (apt-get install -y chromium; .ci/run does)")
    return path


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A temporary copy of the clone whose ``ser_utils`` the server, its kernels and the commands import."""
    root = tmp_path_factory.mktemp("clone").resolve()
    ignore = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints")
    shutil.copytree(config.REPO_ROOT / "ser_utils", root / "ser_utils", ignore=ignore)
    shutil.copytree(config.NOTEBOOKS_DIR, root / "notebooks", ignore=ignore)
    return root


@pytest.fixture(scope="module")
def lab_env(clone, tmp_path_factory) -> dict[str, str]:
    env = driver.lab_environment(clone, tmp_path_factory.mktemp("jupyter"))
    imported = subprocess.run([sys.executable, "-c", "from ser_utils import config; print(config.REPO_ROOT)"],
                              env=env, cwd=clone, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(imported).resolve() == clone, f"the copy's ser_utils is not imported first ({imported}); the test would touch the repo"
    return env


@pytest.fixture(scope="module")
def lab(chromium, clone, lab_env, tmp_path_factory):
    server = driver.JupyterLab(clone, lab_env, tmp_path_factory.mktemp("lab-log") / "jupyterlab.log")
    with server:
        yield server


@pytest.fixture(scope="module")
def page(chromium, lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True,
                                             args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        yield page
        browser.close()


def run_notebook(page, lab, clone: Path, name: str, tmp_path: Path, live_checks=None, clean: bool = True):
    """Open ``notebooks/<name>.ipynb``, Run All, save; assert a clean run (unless ``clean=False``);
    return the saved notebook.

    ``live_checks(page)`` runs after Run All, while the kernel is still alive (widgets need it).
    """
    relpath = f"notebooks/{name}.ipynb"
    started = time.monotonic()
    try:
        driver.open_notebook(page, lab, relpath)
        opened = time.monotonic()
        ran = driver.run_all_cells(page, relpath, RUN_ALL_TIMEOUT_S)
        print(f"{name}: opened in {opened - started:.1f} s, Run All took {ran:.1f} s")
        driver.save(page, relpath)
        if live_checks is not None:
            live_checks(page)
    except Exception as err:  # a stalled run, a widget that never rendered: keep what the browser showed
        shot = tmp_path / f"{name}.png"
        page.screenshot(path=str(shot), full_page=True)
        raise AssertionError(f"{name}: {err}\nscreenshot: {shot}\nJupyterLab log:\n{lab.log_tail()}") from err
    finally:
        lab.shutdown_kernels()
    saved = driver.read_saved(clone, relpath)
    problems = driver.problems(saved)
    assert not clean or not problems, f"{name} after Run All in JupyterLab:\n" + "\n".join(problems)
    return saved


def text_of(cell) -> str:
    """Everything a cell's outputs show as text or HTML."""
    parts = []
    for output in cell.outputs:
        parts.append(output.get("text", ""))
        data = output.get("data", {})
        parts += [str(data.get("text/plain", "")), str(data.get("text/html", ""))]
    return "\n".join(parts)


def setup_cell(nb):
    return next(c for c in nb.cells if c.cell_type == "code" and "notebook.setup(" in c.source)


def check_explorer(page) -> None:
    """Notebook 01's explorer: three dropdowns render; picking another emotion draws into its output."""
    dropdowns = page.locator(".jp-OutputArea-output .widget-dropdown select")
    assert dropdowns.count() == 3, "the explorer's three dropdowns did not render"
    assert page.get_by_text("Error displaying widget").count() == 0
    dropdowns.nth(0).select_option("SAD")
    page.locator(".jp-OutputArea-output .widget-output img").first.wait_for(timeout=60_000)


def check_generation_and_explorer(page) -> None:
    """Notebook 01 on a fresh clone: the generation's progress bar rendered, then the explorer works."""
    bar = page.locator(".jp-OutputArea-output .widget-hbox", has=page.locator(".widget-hprogress")).first
    assert bar.count() == 1, "no progress bar while generating the demo corpus"
    shown = " ".join(bar.text_content().split())  # tqdm pads with figure spaces
    n_clips = len(demo_corpus.clip_names(corpus_discovery.quick_demo_corpus()[1]))
    assert f"demo corpus: 100% {n_clips}/{n_clips}" in shown, shown
    check_explorer(page)


def reset(*folders: Path) -> None:
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)


@browser
def test_make_lab_first(page, lab, clone, lab_env, tmp_path):
    """A fresh clone opened with ``make lab``, no ``make demo``: 01 makes the corpus, the rest follow."""
    reset(clone / "data", clone / "outputs")

    # Before any corpus exists, a notebook other than 01 stops at its setup cell with one line, not a traceback.
    stopped = run_notebook(page, lab, clone, "04_model_cnn1d", tmp_path, clean=False)
    errors = [o for c in stopped.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert [e.ename for e in errors] == ["NoCorpusError"], errors
    assert len(errors[0].traceback) == 1 and "01_data_tour" in errors[0].traceback[0], errors[0].traceback
    assert not (clone / "data" / "demo-corpus-quick").exists()

    nb01 = run_notebook(page, lab, clone, "01_data_tour", tmp_path, live_checks=check_generation_and_explorer)
    quick = clone / "data" / "demo-corpus-quick"
    assert (quick / "demo_corpus.json").is_file(), "notebook 01 did not generate the demo corpus"
    setup_text = text_of(setup_cell(nb01))
    assert "generated just now" in setup_text and str(quick) in setup_text

    run_notebook(page, lab, clone, "02_preprocessing", tmp_path)
    record = json.loads((clone / "outputs" / "corpus.json").read_text())
    assert record["data_dir"] == str(quick)
    nb08 = run_notebook(page, lab, clone, "08_analysis", tmp_path)
    assert "synthetic" in text_of(setup_cell(nb08)).lower()

    make_lab = subprocess.run([sys.executable, "-m", "ser_utils.data.discovery"], env=lab_env, cwd=clone,
                              capture_output=True, text=True, timeout=120)
    assert make_lab.returncode == 0, make_lab.stderr
    assert str(quick) in make_lab.stdout and "generated" not in make_lab.stdout


@pytest.fixture(scope="module")
def main_job(clone, lab_env, tiny_corpus) -> subprocess.CompletedProcess:
    """``make demo``'s main job, for real, on the tiny corpus into the clone's ``outputs/``: what the
    end-to-end checks read and the state JupyterLab opens afterwards. It runs after the ``make lab``
    first test (file order), which empties ``outputs/`` before it starts."""
    cmd = [sys.executable, "-m", "ser_utils", "all", "--data", str(tiny_corpus), "--out", str(clone / "outputs"),
           "--epochs", "1", "--models", "1d,2d,combined", "--activations", "relu", "--lrs", "0.001"]
    started = time.monotonic()
    done = subprocess.run(cmd, env=lab_env, cwd=clone, capture_output=True, text=True, timeout=900)  # never hangs CI
    print(f"main job: {time.monotonic() - started:.1f} s")
    assert done.returncode == 0, f"the main job failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


def test_main_job_end_to_end(main_job, clone, tiny_corpus):
    out = clone / "outputs"
    summary = json.loads((out / "main_job.json").read_text())
    assert summary["corpus"] == "synthetic" and summary["runs"] == 3 and not summary["failed"]
    assert config.SYNTHETIC_LABEL in main_job.stdout
    executed = sorted(p.stem for p in (out / "executed").glob("*.ipynb"))
    assert executed == ["01_data_tour", "02_preprocessing", "03_feature_extraction", "04_model_cnn1d",
                        "05_model_cnn2d", "06_model_combined", "08_analysis", "10_predict", "11_augmentation",
                        "12_attention_transformer", "13_tuning"]
    results = pd.read_csv(out / "results.csv")
    expected = [config.TrainConfig(model=m, activation="relu", lr=0.001, epochs=1).run_id
                for m in ("1d", "2d", "combined")]
    assert sorted(results["run_id"]) == expected == ["1d-relu-lr0.001-e1", "2d-relu-lr0.001-e1",
                                                     "combined-relu-lr0.001-e1"]
    assert (results["status"] == "complete").all()
    assert (out / "report" / "index.html").is_file()
    study = json.loads((out / "tuning" / "1d-random" / "study.json").read_text())  # notebook 13's quick study
    assert study["corpus_label"] == config.SYNTHETIC_LABEL and study["comparison"]["n_clips"] == 74
    manifest = pd.read_csv(out / "manifest.csv")
    assert len(manifest) == 246 and set(manifest["split"]) == {"train", "val", "test"}
    assert len(list((out / "report" / "runs").glob("*.html"))) == 3
    assert list((out / "figures" / "07_train").glob("*.png"))  # the kernels wrote under --out
    trained = sorted((out / "runs").glob("*/07_train.ipynb"))
    assert len(trained) == 3
    for path in trained:  # notebook 07's derivations and exercises ran in every run
        assert_taught("07_train", nbformat.read(path, as_version=4))
    # notebooks opened later in JupyterLab find the corpus the job used
    assert corpus_discovery.recorded_corpus(out) == Path(tiny_corpus).resolve()


@browser
def test_after_make_demo(main_job, page, lab, clone, lab_env, tiny_corpus, tmp_path):
    """After ``make demo``: every notebook runs top to bottom on the corpus the job used."""
    record = clone / "outputs" / "corpus.json"
    assert record.is_file(), ("the main job did not record its corpus in outputs/corpus.json"
                              " (it must call ser_utils.data.discovery.record_corpus)")
    sweep_metrics = clone / "outputs" / "runs" / SWEEP_RUN / "metrics.json"
    sweep_written = sweep_metrics.stat().st_mtime_ns

    for name in NOTEBOOKS:
        nb = run_notebook(page, lab, clone, name, tmp_path, live_checks=check_explorer if name == "01_data_tour" else None)
        if name == "01_data_tour":
            assert str(tiny_corpus.resolve()) in text_of(setup_cell(nb)), "01 did not use the corpus make demo used"

    own_run = clone / "outputs" / "runs" / NOTEBOOK_07_RUN
    assert (own_run / "metrics.json").is_file(), f"notebook 07 did not train into its own folder {own_run.name}"
    assert sweep_metrics.stat().st_mtime_ns == sweep_written, "notebook 07 touched the sweep's run"
    trained = (own_run / "metrics.json").stat().st_mtime_ns
    again = run_notebook(page, lab, clone, "07_train", tmp_path)
    assert "not retrained" in "\n".join(text_of(c) for c in again.cells if c.cell_type == "code")
    assert (own_run / "metrics.json").stat().st_mtime_ns == trained, "the second Run All of 07 retrained the run"
