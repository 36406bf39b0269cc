"""Drive a real JupyterLab from headless Chromium, the way a user steps through the notebooks.

Why a real client: papermill (tests/test_notebooks.py) executes a notebook without a front end,
so it cannot see what only breaks in JupyterLab: a kernel that never goes idle, widgets that do
not render, a notebook that needs parameters a user never passes. Here a JupyterLab server runs on
a free localhost port without a token, Chromium (Debian's, through Playwright's
``executable_path``: browser downloads are impossible here) opens a notebook, clicks
Run > Run All Cells, waits for the kernel to go idle, saves, and the saved file is what the test
reads back (the front end's own record of every output and execution count).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: Environment a user's shell would not have in JupyterLab: the tests' own settings.
TEST_ONLY_ENV = ("SER_OUTPUTS_DIR", "CREMA_D_DIR", "MPLBACKEND", "PAPERMILL_EXECUTION", "PYTEST_CURRENT_TEST")


def find_chromium() -> str | None:
    """The system Chromium (or Chrome), or None."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def lab_environment(root: Path, scratch: Path) -> dict[str, str]:
    """A user's environment for a JupyterLab in ``root``: its ``ser_utils`` first on the path,
    Jupyter's per-user folders in ``scratch`` (no settings, workspaces or kernels of the machine)."""
    env = {k: v for k, v in os.environ.items() if k not in TEST_ONLY_ENV}
    env["PYTHONPATH"] = str(root)
    for var, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"), ("JUPYTER_RUNTIME_DIR", "runtime"),
                     ("JUPYTERLAB_SETTINGS_DIR", "settings"), ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"),
                     ("IPYTHONDIR", "ipython")):
        env[var] = str(scratch / sub)
        (scratch / sub).mkdir(parents=True, exist_ok=True)
    # No "official Jupyter news?" toast over the notebook (it would fetch from the internet, too).
    page_config = scratch / "config" / "labconfig" / "page_config.json"
    page_config.parent.mkdir(parents=True, exist_ok=True)
    page_config.write_text(json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    return env


class JupyterLab:
    """A JupyterLab server on ``root``: started headless, stopped by its process id."""

    def __init__(self, root: Path, env: dict[str, str], log: Path, start_timeout_s: float = 90):
        self.root, self.env, self.log_path = Path(root), env, Path(log)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen | None = None

    def start(self) -> JupyterLab:
        args = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0", "--IdentityProvider.token=",
                "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True", f"--ServerApp.root_dir={self.root}",
                "--ServerApp.terminals_enabled=False", "--LabApp.news_url=None",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI containers run as root
            args.append("--allow-root")
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(args, cwd=self.root, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.proc.returncode} at start:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status", timeout=2):
                    return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"JupyterLab did not answer on {self.url} within {self.start_timeout_s:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM to the server's process id (it shuts its kernels down); after 30 s, SIGKILL to the
        process group it was started in (the server and any kernel it left)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def __enter__(self) -> JupyterLab:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def _api(self, method: str, path: str):
        request = urllib.request.Request(f"{self.url}{path}", method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    def kernel_state(self, relpath: str) -> str | None:
        """The server's execution state of the kernel of the notebook at ``relpath``, or None."""
        for session in self._api("GET", "/api/sessions") or []:
            if session.get("path") == relpath and session.get("kernel"):
                return session["kernel"].get("execution_state")
        return None

    def shutdown_kernels(self) -> None:
        """End every session (and its kernel), so one notebook's kernel never outlives its test step."""
        for session in self._api("GET", "/api/sessions") or []:
            self._api("DELETE", f"/api/sessions/{session['id']}")


class NotebookRunFailed(AssertionError):
    pass


def open_notebook(page, lab: JupyterLab, relpath: str, timeout_s: float = 90) -> None:
    """Open ``relpath`` alone (``?reset`` drops the previous workspace) and wait until its kernel is idle.

    The toolbar's indicator reads ``idle`` for a moment before the kernel even starts, so the
    server's own session list must also show this notebook's kernel idle.
    """
    page.goto(f"{lab.url}/lab/tree/{relpath}?reset", wait_until="domcontentloaded")
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=timeout_s * 1000)

    def ready(s: dict) -> bool:
        return s["kernel"] == "idle" and lab.kernel_state(relpath) == "idle"

    _wait(page, ready, timeout_s, f"{relpath}: the kernel never became idle after opening", stable=2)


def menu(page, top: str, item: str) -> None:
    """Click ``top`` in the menu bar, then ``item`` (exact labels, as a user reads them)."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{re.escape(top)}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).click()


def run_all_cells(page, relpath: str, timeout_s: float) -> float:
    """Run > Run All Cells, then wait until no cell is queued or running and the kernel is idle; seconds taken."""
    started = time.monotonic()
    menu(page, "Run", "Run All Cells")
    # done: the first code cell has run, nothing is queued or running ([*]), the kernel is idle, twice in a row
    _wait(page, lambda s: s["ran_first"] and not s["pending"] and s["kernel"] == "idle", timeout_s,
          f"{relpath}: Run All did not finish within {timeout_s:.0f} s", stable=2)
    return time.monotonic() - started


def save(page, relpath: str, timeout_s: float = 30) -> None:
    """File > Save Notebook, then wait until the tab is no longer marked dirty."""
    menu(page, "File", "Save Notebook")
    _wait(page, lambda s: not s["dirty"], timeout_s, f"{relpath}: the notebook was not saved")


def read_saved(root: Path, relpath: str) -> nbformat.NotebookNode:
    return nbformat.read(root / relpath, as_version=4)


def problems(nb: nbformat.NotebookNode) -> list[str]:
    """Every code cell with an error output or without an execution count, described in one line each."""
    found = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for output in cell.outputs:
            if output.output_type == "error":
                found.append(f"cell {index}: {output.ename}: {output.evalue}\n" + "\n".join(output.traceback[-8:]))
        if cell.execution_count is None:
            found.append(f"cell {index}: not executed ({cell.source.splitlines()[0][:80] if cell.source else ''})")
    return found


_STATE_JS = """() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  if (!panel) return {kernel: 'none', pending: true, ran_first: false, dirty: true};
  const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map(p => p.textContent.trim());
  const indicator = document.querySelector('.jp-Notebook-ExecutionIndicator');
  const tab = document.querySelector('.lm-TabBar-tab.jp-mod-current');
  return {
    kernel: indicator ? (indicator.getAttribute('data-status') || '') : '',
    pending: prompts.some(p => p.includes('*')),
    ran_first: prompts.length > 0 && /\\[\\s*[0-9*]+\\s*\\]/.test(prompts[0]),
    dirty: tab ? tab.classList.contains('jp-mod-dirty') : true,
  };
}"""


def state(page) -> dict:
    return page.evaluate(_STATE_JS)


def _wait(page, ready, timeout_s: float, message: str, stable: int = 1, poll_s: float = 0.5) -> None:
    deadline = time.monotonic() + timeout_s
    streak, last = 0, {}
    while time.monotonic() < deadline:
        last = state(page)
        streak = streak + 1 if ready(last) else 0
        if streak >= stable:
            return
        page.wait_for_timeout(poll_s * 1000)
    raise NotebookRunFailed(f"{message} (last state {last})")
