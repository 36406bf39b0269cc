"""Notebooks find their corpus by themselves: $CREMA_D_DIR, the recorded one, a demo corpus, else a one-line fix."""

from __future__ import annotations

import json
import textwrap

import nbformat
import pytest

from ser_utils import config, notebook
from ser_utils.data import discovery, dataset


def fake_demo(folder):
    """A folder the suite recognises as a complete demo corpus (marker + AudioWAV/)."""
    (folder / "AudioWAV").mkdir(parents=True)
    (folder / dataset.DEMO_MARKER).write_text("{}")
    return folder


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """An empty clone: data/ and outputs/ under tmp_path, no $CREMA_D_DIR."""
    data, outputs = tmp_path / "data", tmp_path / "outputs"
    data.mkdir()
    monkeypatch.delenv(config.DATA_ENV_VAR, raising=False)
    monkeypatch.setattr(config, "OUTPUTS_DIR", outputs)
    monkeypatch.setattr(discovery, "quick_demo_corpus", lambda: (data / "demo-corpus-quick", 1))
    return tmp_path


def test_the_quick_demo_corpus_is_the_one_make_demo_writes():
    from ser_utils.pipeline import PROFILES

    assert (PROFILES["quick"].demo_dir, PROFILES["quick"].actors) == discovery.quick_demo_corpus()


def test_nothing_found_in_an_empty_clone(repo):
    assert discovery.find_corpus() is None


def test_a_demo_corpus_is_found_and_the_quick_one_comes_first(repo):
    fake_demo(repo / "data" / "demo-corpus")
    assert discovery.find_corpus().path == repo / "data" / "demo-corpus"
    fake_demo(repo / "data" / "demo-corpus-quick")
    assert discovery.find_corpus().path == repo / "data" / "demo-corpus-quick"


def test_a_corpus_still_being_generated_is_not_used(repo):
    (repo / "data" / "demo-corpus-quick" / "AudioWAV").mkdir(parents=True)  # no marker yet
    assert discovery.find_corpus() is None


def test_the_recorded_corpus_beats_a_demo_corpus(repo):
    fake_demo(repo / "data" / "demo-corpus-quick")
    used = fake_demo(repo / "elsewhere" / "tiny")
    written = discovery.record_corpus(used / "AudioWAV", by="features")  # AudioWAV/ -> its root
    assert written == repo / "outputs" / discovery.CORPUS_RECORD
    record = json.loads(written.read_text())
    assert record == {"data_dir": str(used.resolve()), "corpus": "synthetic", "recorded_by": "features"}
    found = discovery.find_corpus()
    assert found.path == used.resolve() and "corpus.json" in found.source


def test_a_record_of_a_deleted_corpus_is_skipped(repo):
    quick = fake_demo(repo / "data" / "demo-corpus-quick")
    gone = fake_demo(repo / "gone")
    discovery.record_corpus(gone)
    (gone / dataset.DEMO_MARKER).unlink()
    (gone / "AudioWAV").rmdir()
    gone.rmdir()
    assert discovery.find_corpus().path == quick


def test_recording_the_same_corpus_again_leaves_the_file_alone(repo):
    corpus = fake_demo(repo / "c")
    path = discovery.record_corpus(corpus, by="main job")
    before = path.stat().st_mtime_ns
    discovery.record_corpus(corpus, by="notebook 02")
    assert path.stat().st_mtime_ns == before
    assert json.loads(path.read_text())["recorded_by"] == "main job"


def test_crema_d_dir_wins_even_when_wrong_so_the_error_names_it(repo, monkeypatch):
    fake_demo(repo / "data" / "demo-corpus-quick")
    monkeypatch.setenv(config.DATA_ENV_VAR, str(repo / "no-such-crema-d"))
    assert discovery.find_corpus().path == repo / "no-such-crema-d"
    with pytest.raises(dataset.DataError, match="no-such-crema-d: no such folder"):
        notebook.setup("02_preprocessing", "", show=False)


def test_setup_without_a_corpus_says_which_command_makes_one(repo):
    with pytest.raises(notebook.NoCorpusError) as err:
        notebook.setup("04_model_cnn1d", "", show=False)
    message = str(err.value)
    assert "\n" not in message
    assert "01_data_tour" in message and "make lab" in message and "python -m ser_utils demo-data" in message


def test_setup_with_empty_data_dir_uses_the_found_corpus_and_says_why(repo):
    quick = fake_demo(repo / "data" / "demo-corpus-quick")
    ctx = notebook.setup("08_analysis", "", show=False)
    assert ctx.root == quick and ctx.data_dir == quick / "AudioWAV" and ctx.synthetic
    assert ctx.source == "the demo corpus found under data/"
    assert notebook.setup("08_analysis", str(quick), show=False).source == "data_dir"


@pytest.mark.slow
def test_notebook_01s_setup_generates_the_demo_corpus_when_there_is_none(repo):
    ctx = notebook.setup("01_data_tour", "", show=False, generate=True)
    quick = repo / "data" / "demo-corpus-quick"
    assert ctx.root == quick.resolve() and ctx.synthetic
    assert len(list((quick / "AudioWAV").glob("*.wav"))) == 82  # one actor's CREMA-D grid
    assert discovery.find_corpus().path == quick  # found, not generated, the next time


def _run_in_kernel(tmp_path, source: str) -> nbformat.NotebookNode:
    import nbclient

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(textwrap.dedent(source)),
                                         nbformat.v4.new_code_cell("print('not reached')")])
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=False,
                                     resources={"metadata": {"path": str(tmp_path)}})
    with pytest.raises(nbclient.exceptions.CellExecutionError):
        client.execute()
    return nb


@pytest.mark.slow
def test_missing_data_stops_a_notebook_with_one_line_not_a_traceback(tmp_path):
    nb = _run_in_kernel(tmp_path, f"""
        from ser_utils import notebook
        notebook.setup("02_preprocessing", {str(tmp_path / "missing")!r})
        """)
    (error,) = nb.cells[0].outputs
    assert error.output_type == "error" and error.ename == "DataError"
    assert error.traceback == [f"DataError: {error.evalue}"]
    assert "missing: no such folder" in error.evalue
    assert not nb.cells[1].outputs  # Run All stops there


@pytest.mark.slow
def test_a_refused_run_folder_in_a_notebook_is_one_line_too(tmp_path, tiny_corpus):
    """After setup, any bad input the package refuses (here a folder with no checkpoint, as in
    notebook 10's run_dir) shows the one-line message the command line prints, not a traceback."""
    nb = _run_in_kernel(tmp_path, f"""
        from ser_utils import notebook
        from ser_utils.predict.predictor import Predictor
        notebook.setup("10_predict", {str(tiny_corpus)!r}, show=False)
        Predictor.from_run({str(tmp_path)!r})
        """)
    (error,) = nb.cells[0].outputs
    assert error.ename == "CheckpointError" and error.traceback == [f"CheckpointError: {error.evalue}"]
    assert "best.pt: no checkpoint" in error.evalue
