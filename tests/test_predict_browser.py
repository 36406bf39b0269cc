"""Notebook 10 in a real JupyterLab (headless Chromium): Run All, then a WAV uploaded through its widget,
then a take recorded through its microphone widget.

Papermill (tests/test_predict.py) runs the notebook headless, where nobody can upload anything;
here a user's path is driven with :mod:`tests.jupyterlab_driver`: a temporary copy of the clone
gets a corpus (recorded as ``make demo`` records it) and one trained run, JupyterLab opens
``notebooks/10_predict.ipynb``, Run > Run All Cells, and Playwright hands a WAV to the FileUpload
widget's file input (the widget keeps that input out of the DOM and clicks it from its button, so
the file chooser the click opens is the way to it; ``set_files`` is ``set_input_files`` on it).
The kernel must then play it back and draw the probability chart into the widget's result area.

The microphone is Chromium's fake capture device fed a known WAV (``--use-file-for-fake-audio-capture``
with ``%noloop``: played once from the moment the page opens the microphone, then silence). The WAV
is 0.5 s of digital silence and then a corpus clip, so the take holds the whole clip wherever its
first milliseconds fall: voice activity detection trims the silence before and after it in the take
as in the WAV, and the two are scored on the same speech (alignment measured ~10 ms apart). The
take travels as the browser records it (WebM/Opus) and is decoded by FFmpeg, so its probabilities
match ``predict`` on the WAV to within 0.05, not exactly. The same browser, on a bare page, runs
the recorder's JavaScript with a microphone that refuses, and it must say so in one line.
Skipped, with the reason, when Playwright or a Chromium cannot start.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ser_utils import config
from ser_utils.predict import recorder
from ser_utils.predict.view import RESULT_CLASS
from tests import jupyterlab_driver as driver

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NOTEBOOK = "notebooks/10_predict.ipynb"
RUN_ALL_TIMEOUT_S = 300
UPLOAD_TIMEOUT_S = 120
#: Silence the fake microphone plays before the clip, and what the take records after it.
LEAD_S, TAIL_S = 0.5, 1.0

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
def microphone_wav(tiny_corpus, tmp_path_factory) -> Path:
    """What the fake microphone says: LEAD_S of silence, then an angry corpus clip (16-bit, 16 kHz)."""
    import numpy as np
    import soundfile as sf

    clip = sorted((tiny_corpus / "AudioWAV").glob("*_ANG_*.wav"))[0]
    samples, rate = sf.read(clip, dtype="int16")
    path = tmp_path_factory.mktemp("microphone") / "microphone.wav"
    sf.write(path, np.concatenate([np.zeros(int(LEAD_S * rate), np.int16), samples]), rate, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def browser(microphone_wav):
    """Playwright's Chromium (the system one) with a fake microphone, or a skip saying why there is none."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: pip install -e '.[dev]'")
    executable = driver.find_chromium()
    if executable is None:
        pytest.skip("no headless browser: install Debian's chromium (apt-get install -y chromium; .ci/run does)")
    microphone = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                  f"--use-file-for-fake-audio-capture={microphone_wav}%noloop"]
    with sync_api.sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=executable, headless=True,
                                                 args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                                                       *microphone])
        except Exception as err:  # the browser exists but cannot start here (sandbox, missing libraries)
            pytest.skip(f"{executable} cannot start: {' '.join(str(err).split())[:200]}")
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def browser_page(browser):
    return browser.new_page(viewport={"width": 1400, "height": 1000})


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


@pytest.fixture(scope="module")
def notebook_10(browser_page, clone, tmp_path_factory):
    """JupyterLab on the clone with notebook 10 opened and Run All done: ``(page, lab, root)``."""
    root, env = clone
    page = browser_page
    with driver.JupyterLab(root, env, tmp_path_factory.mktemp("lab") / "jupyterlab.log") as lab:
        try:
            with failure_evidence(page, lab, tmp_path_factory.mktemp("shots")):
                driver.open_notebook(page, lab, NOTEBOOK)
                driver.run_all_cells(page, NOTEBOOK, RUN_ALL_TIMEOUT_S)
            yield page, lab, root
        finally:
            lab.shutdown_kernels()


@contextlib.contextmanager
def failure_evidence(page, lab, folder: Path):
    """A driver wait, a Playwright timeout or an assertion inside: keep a screenshot and the server log."""
    try:
        yield
    except Exception as err:
        shot = folder / "10_predict.png"
        page.screenshot(path=str(shot), full_page=True)
        raise AssertionError(f"{err}; screenshot {shot}; JupyterLab log:\n{lab.log_tail()}") from None


def test_upload_a_wav_in_jupyterlab(notebook_10, tiny_corpus, tmp_path):
    page, lab, root = notebook_10
    wav = tmp_path / "my recording.wav"
    shutil.copy(next((tiny_corpus / "AudioWAV").glob("*_ANG_*.wav")), wav)
    with failure_evidence(page, lab, tmp_path):
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
    problems = driver.problems(driver.read_saved(root, NOTEBOOK))
    assert not problems, "notebook 10 after Run All in JupyterLab:\n" + "\n".join(problems)


def test_record_a_take_through_the_microphone_widget(notebook_10, microphone_wav, tmp_path):
    """One take of the fake microphone, scored in the kernel: the same emotion as `predict` on the WAV
    it plays, each probability within 0.05 (see the module docstring for the alignment)."""
    import soundfile as sf

    from ser_utils.predict.predictor import Predictor

    page, lab, root = notebook_10
    with failure_evidence(page, lab, tmp_path):
        widget = page.locator(".ser-recorder")
        assert widget.count() == 1, "the recorder widget did not render"
        widget.locator(".ser-recorder-button").click()
        widget.locator(".ser-recorder-status", has_text="recording").wait_for(timeout=30_000)
        page.wait_for_timeout((sf.info(str(microphone_wav)).duration + TAIL_S) * 1000)
        widget.locator(".ser-recorder-button").click()
        page.wait_for_function("() => document.querySelector('.ser-recorder').dataset.heard",
                               timeout=UPLOAD_TIMEOUT_S * 1000)
        heard = json.loads(widget.get_attribute("data-heard"))
        result = page.locator(f".{recorder.RECORDER_RESULT_CLASS}")
        result.locator("img").first.wait_for(timeout=30_000)
        assert result.locator("audio").count() == 1, "the take is not played back"
        status = widget.locator(".ser-recorder-status").inner_text()
    assert heard, f"the take was not scored: {status}"
    assert heard["take"] == "take 1.webm" and status.startswith("take 1.webm: heard as ")
    with Predictor.from_runs(root / "outputs" / "runs", warn=False, device="cpu") as predictor:
        expected = predictor.predict(str(microphone_wav), progress=False).iloc[0]
    assert heard["predicted"] == expected["predicted"], (heard, expected.to_dict())
    gaps = {c: abs(p - expected[f"p_{c}"]) for c, p in heard["probabilities"].items()}
    print(f"take vs WAV: {heard['emotion']} / {expected['emotion']}, largest probability gap {max(gaps.values()):.3f}, "
          f"speech {heard['speech_s']} s / {expected['speech_s']:.2f} s")
    assert max(gaps.values()) < 0.05, (heard, expected.to_dict())


def test_a_refused_microphone_is_one_line(browser):
    """The recorder's JavaScript on a bare page whose microphone refuses (as a user clicking Block)."""
    page = browser.new_page()
    page.set_content("<div id=widget></div>")
    status = page.evaluate("""async (source) => {
        Object.defineProperty(navigator, 'mediaDevices', {value: {getUserMedia: async () => {
            throw new DOMException('Permission denied', 'NotAllowedError'); }}});
        const url = URL.createObjectURL(new Blob([source], {type: 'text/javascript'}));
        const widget = (await import(url)).default;
        const state = {message: 'ready'};
        const model = {get: (k) => state[k], set: (k, v) => { state[k] = v; }, on: () => {}, save_changes: () => {}};
        const el = document.getElementById('widget');
        widget.render({model, el});
        el.querySelector('button').click();
        await new Promise((done) => setTimeout(done, 200));
        return [el.querySelector('.ser-recorder-status').textContent, state.message];
    }""", recorder.RECORDER_JS)
    page.close()
    assert status[0] == status[1] and "\n" not in status[0]
    assert status[0].startswith("the browser denied the microphone: allow it for this page")
