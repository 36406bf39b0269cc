"""A worker process killed mid-run (out of memory, kill -9) ends the command with one line, never a hang.

Both pools that were ``multiprocessing.Pool`` (which waits forever for a lost task) now run on
``concurrent.futures`` (:func:`ser_utils.workers.imap_unordered`): the feature extraction's and the
demo corpus's. Each test runs the real command in a subprocess, kills one of its pool workers with
SIGKILL, checks the exit (status 2, one line naming the item and what to do) and runs the command
again to completion.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ser_utils import config, workers
from ser_utils.data import demo_corpus
from tests.processes import pool_workers

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc to find the workers")

#: Seconds the command may take to exit once a worker is dead: a hang would run into the minutes.
EXIT_WITHIN_S = 20


def run_and_kill_a_worker(args: list[str], wait_s: float = 0.0) -> tuple[subprocess.CompletedProcess, float]:
    """Start ``python -m ser_utils ARGS``, SIGKILL one pool worker once there is one (after
    ``wait_s`` more seconds), and return the finished process and the seconds from kill to exit."""
    process = subprocess.Popen([sys.executable, "-m", "ser_utils", *args], cwd=config.REPO_ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None and not pool_workers(process.pid):
        time.sleep(0.02)
    found = pool_workers(process.pid)
    assert found, "the command finished or never started a pool worker"
    time.sleep(wait_s)
    os.kill(found[0], signal.SIGKILL)
    killed_at = time.monotonic()
    try:
        stdout, stderr = process.communicate(timeout=EXIT_WITHIN_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail(f"the command hung for {EXIT_WITHIN_S} s after a worker was killed")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr), time.monotonic() - killed_at


def error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, stderr[-2000:]
    return lines[0]


def test_a_killed_feature_worker_is_one_line_and_the_next_run_completes(tiny_corpus, tmp_path):
    cache_root = tmp_path / "features"
    args = ["features", "--data", str(tiny_corpus), "--out", str(cache_root), "--jobs", "2"]
    result, seconds = run_and_kill_a_worker(args)
    assert result.returncode == 2, result.stderr[-2000:]
    line = error_line(result.stderr)
    assert "a worker process died" in line and "run the same command again" in line
    assert ".wav: a worker process died" in line  # names the clip being worked on
    assert "Traceback" not in result.stderr
    assert not [p for p in cache_root.glob("*") if (p / "meta.json").is_file()]  # nothing published half
    assert seconds < EXIT_WITHIN_S

    again = subprocess.run([sys.executable, "-m", "ser_utils", *args], cwd=config.REPO_ROOT,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    complete = [p for p in cache_root.glob("*") if (p / "meta.json").is_file()]
    assert len(complete) == 1


def test_a_killed_demo_corpus_worker_is_one_line_and_the_next_run_resumes(tmp_path):
    out = tmp_path / "demo"
    args = ["demo-data", "--out", str(out), "--actors", "3", "--jobs", "2"]
    result, seconds = run_and_kill_a_worker(args, wait_s=0.5)
    assert result.returncode == 2, result.stderr[-2000:]
    line = error_line(result.stderr)
    assert "actor 10" in line and "a worker process died" in line and "run the same command again" in line
    assert not (out / demo_corpus.CORPUS_MARKER).exists() and (out / demo_corpus.PARTIAL_MARKER).exists()
    assert seconds < EXIT_WITHIN_S

    again = subprocess.run([sys.executable, "-m", "ser_utils", *args], cwd=config.REPO_ROOT,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (out / demo_corpus.CORPUS_MARKER).is_file() and not (out / demo_corpus.PARTIAL_MARKER).exists()
    assert len(list((out / demo_corpus.AUDIO_SUBDIR).glob("*.wav"))) == len(demo_corpus.clip_names(3))


def _square(x: int) -> int:
    return x * x


def test_imap_unordered_returns_every_result_once():
    assert sorted(workers.imap_unordered(_square, list(range(50)), jobs=2, chunksize=4)) == [x * x for x in range(50)]


def test_an_interrupted_demo_corpus_resumes_byte_identical(tmp_path):
    """A re-run keeps the actors an interrupted run with the same seed finished, renders the rest, and
    the files are the ones an uninterrupted run writes (eSpeak state is per actor, so whole actors only)."""
    whole = demo_corpus.generate(tmp_path / "whole", n_actors=2, seed=7, jobs=1, progress=False)
    resumed = tmp_path / "resumed"
    demo_corpus.generate(resumed, n_actors=2, seed=7, jobs=1, progress=False)
    first_actor = demo_corpus.actor_clip_names(config.FIRST_ACTOR)
    second_actor = demo_corpus.actor_clip_names(config.FIRST_ACTOR + 1)
    audio = resumed / demo_corpus.AUDIO_SUBDIR
    kept = (audio / first_actor[0]).stat().st_mtime_ns
    # as an interrupted run leaves it: the partial marker lists the first actor; the second has half its clips
    (resumed / demo_corpus.CORPUS_MARKER).unlink()
    import json

    (resumed / demo_corpus.PARTIAL_MARKER).write_text(json.dumps(
        {"seed": 7, "version": demo_corpus.GENERATOR_VERSION, "finished": [config.FIRST_ACTOR]}))
    for name in second_actor[len(second_actor) // 2:]:
        (audio / name).unlink()
    demo_corpus.generate(resumed, n_actors=2, seed=7, jobs=1, progress=False)
    assert (audio / first_actor[0]).stat().st_mtime_ns == kept  # not rendered again
    for name in first_actor + second_actor:
        assert (audio / name).read_bytes() == (whole / demo_corpus.AUDIO_SUBDIR / name).read_bytes(), name
    assert (resumed / demo_corpus.CORPUS_MARKER).read_bytes() == (whole / demo_corpus.CORPUS_MARKER).read_bytes()
