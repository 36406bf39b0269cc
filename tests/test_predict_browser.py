"""Notebook 10 in a real JupyterLab (headless Chromium): Run All, then a WAV uploaded through its widget.

Papermill (tests/test_predict.py) runs the notebook headless, where nobody can upload anything;
here a user's path is driven with :mod:`tests.jupyterlab_driver`: a temporary copy of the clone
gets a corpus (recorded as ``make demo`` records it) and one trained run, JupyterLab opens
``notebooks/10_predict.ipynb``, Run > Run All Cells, and Playwright hands a WAV to the FileUpload
widget's file input (the widget keeps that input out of the DOM and clicks it from its button, so
the file chooser the click opens is the way to it; ``set_files`` is ``set_input_files`` on it).
The kernel must then play it back and draw the probability chart into the widget's result area.
Skipped, with the reason, when Playwright or a Chromium cannot start.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ser_utils import config
from ser_utils.predict.view import RESULT_CLASS
from tests import jupyterlab_driver as driver

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NOTEBOOK = "notebooks/10_predict.ipynb"
RUN_ALL_TIMEOUT_S = 300
UPLOAD_TIMEOUT_S = 120

TRAIN = textwrap.dedent("""
    import sys
    from ser_utils import config, features, training
    from ser_utils.data import discovery, dataset
    corpus = sys.argv[1]
    clips, _ = dataset.scan(corpus)
    feature_set = features.extract(clips, progress=False)
    discovery.record_corpus(corpus, config.OUTPUTS_DIR, by="the browser test")
    training.run(config.TrainConfig(model="1d", epochs=1, device="cpu"), feature_set, progress=False)
""")


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory):
    """A Playwright page on the system Chromium, or a skip saying why there is none."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: pip install -e '.[dev]'")
    executable = driver.find_chromium()
    if executable is None:
        pytest.skip("no headless browser: install Debian's chromium (apt-get install -y chromium; .ci/run does)")
    with sync_api.sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=executable, headless=True,
                                                 args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        except Exception as err:  # the browser exists but cannot start here (sandbox, missing libraries)
            pytest.skip(f"{executable} cannot start: {' '.join(str(err).split())[:200]}")
        yield browser.new_page(viewport={"width": 1400, "height": 1000})
        browser.close()


@pytest.fixture(scope="module")
def clone(tiny_corpus, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A copy of the clone with a recorded corpus and one trained run in its own outputs/."""
    root = tmp_path_factory.mktemp("clone")
    ignore = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints")
    shutil.copytree(config.REPO_ROOT / "ser_utils", root / "ser_utils", ignore=ignore)
    shutil.copytree(config.NOTEBOOKS_DIR, root / "notebooks", ignore=ignore)
    env = driver.lab_environment(root, tmp_path_factory.mktemp("jupyter"))
    done = subprocess.run([sys.executable, "-c", TRAIN, str(tiny_corpus)], env=env, cwd=root, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert list((root / "outputs" / "runs").glob("*/best.pt")), "no run was trained in the copy"
    return root, env


def test_upload_a_wav_in_jupyterlab(browser_page, clone, tiny_corpus, tmp_path):
    root, env = clone
    page = browser_page
    wav = tmp_path / "my recording.wav"
    shutil.copy(next((tiny_corpus / "AudioWAV").glob("*_ANG_*.wav")), wav)
    with driver.JupyterLab(root, env, tmp_path / "jupyterlab.log") as lab:
        try:
            driver.open_notebook(page, lab, NOTEBOOK)
            driver.run_all_cells(page, NOTEBOOK, RUN_ALL_TIMEOUT_S)
            button = page.locator(".widget-upload")
            assert button.count() == 1, "the FileUpload widget did not render"
            # ipywidgets keeps the widget's <input type=file> out of the DOM and clicks it from the button:
            # the file chooser it opens hands us that input, and set_files is set_input_files on it
            with page.expect_file_chooser(timeout=30_000) as chooser:
                button.click()
            chooser.value.set_files(str(wav))
            result = page.locator(f".{RESULT_CLASS}")
            result.locator("img").first.wait_for(timeout=UPLOAD_TIMEOUT_S * 1000)
            assert result.locator("audio").count() == 1, "no audio player for the uploaded recording"
            shown = result.inner_text()
            assert "error" not in shown.lower(), shown
            assert "my recording.wav" in shown
            driver.save(page, NOTEBOOK)
        except Exception as err:  # a driver wait, a Playwright timeout or an assertion: keep a screenshot
            shot = tmp_path / "10_predict.png"
            page.screenshot(path=str(shot), full_page=True)
            raise AssertionError(f"{err}; screenshot {shot}; JupyterLab log:\n{lab.log_tail()}") from None
        finally:
            lab.shutdown_kernels()
    problems = driver.problems(driver.read_saved(root, NOTEBOOK))
    assert not problems, "notebook 10 after Run All in JupyterLab:\n" + "\n".join(problems)
