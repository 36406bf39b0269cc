"""The setup section every notebook opens with, in one call.

``ctx = notebook.setup("03_feature_extraction", data_dir)`` finds the data, says which
corpus it is (and stamps a banner when it is the synthetic demo corpus), styles the
figures, and gives the notebook one place to save figures and load the manifest and the
cached features, so no notebook carries a copy-pasted setup block.

With ``data_dir`` empty the corpus is found by :mod:`ser_utils.data.discovery` (the one
``make demo`` used, else any demo corpus); notebook 01 generates the demo corpus when there is
none. Missing or bad data is the user's to fix, not a bug: in a kernel it stops the notebook with
one line naming the fix, never a traceback.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path

from ser_utils import config
from ser_utils.data.dataset import DataError
from ser_utils.errors import UserError

SYNTHETIC_BANNER = (
    "<div style='border:2px solid #c0392b;padding:6px 10px;color:#c0392b;font-weight:bold'>"
    "Synthetic demo corpus: every number and figure below comes from generated speech, "
    "not from CREMA-D. Point <code>data_dir</code> (or $CREMA_D_DIR) at CREMA-D for real results."
    "</div>"
)


class NoCorpusError(DataError):
    """No corpus named and none found; the message says which command makes one."""


@dataclass
class NotebookContext:
    """What a notebook needs to know about where it runs and what data it sees."""

    name: str
    data_dir: Path
    root: Path
    synthetic: bool
    figures_dir: Path
    source: str = "data_dir"  # how the corpus was chosen (the banner shows it)
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def corpus(self) -> str:
        return "synthetic" if self.synthetic else "crema-d"

    def save(self, fig, name: str) -> Path:
        """Save a figure under ``outputs/figures/<notebook>/<name>.png`` (stamped if synthetic)."""
        from ser_utils.analysis import plots

        plots.corpus_banner(fig, self.synthetic)
        return plots.save_figure(fig, self.name, name, root=self.figures_dir.parent)

    def clips(self, split_method: str = "random", seed: int = config.SEED):
        """The manifest with its split (cached per split method and seed)."""
        from ser_utils.data import dataset

        key = ("clips", split_method, seed)
        if key not in self._cache:
            self._cache[key] = dataset.manifest(self.data_dir, split_method=split_method, seed=seed)
        return self._cache[key]

    def features(self, features_dir: str | Path | None = None, jobs: int | None = None, progress: bool = True):
        """The cached 1D/2D features of the whole corpus (computed once, then loaded).

        With the default cache (``outputs/features``) the corpus is recorded in
        ``outputs/corpus.json``, so the next notebook opened without ``data_dir`` uses it too.
        """
        from ser_utils import features
        from ser_utils.data import discovery as corpus_discovery, dataset

        key = ("features", str(features_dir))
        if key not in self._cache:
            clips, _ = dataset.scan(self.data_dir)
            self._cache[key] = features.extract(
                clips, cache_root=Path(features_dir) if features_dir else config.FEATURES_DIR,
                jobs=jobs, progress=progress)
            if not features_dir:
                corpus_discovery.record_corpus(self.root, config.OUTPUTS_DIR, by=f"notebook {self.name}")
        return self._cache[key]


def setup(name: str, data_dir: str | Path | None = None, figures_root: str | Path | None = None,
          show: bool = True, generate: bool = False) -> NotebookContext:
    """Open a notebook: locate the data, style plots, and show which corpus this is.

    ``data_dir`` empty or None: :func:`ser_utils.data.discovery.find_corpus` chooses; when it
    finds nothing, ``generate=True`` (notebook 01) makes the quick demo corpus with a progress
    bar, otherwise :class:`NoCorpusError` says in one line which command makes it.
    """
    from ser_utils.data import discovery as corpus_discovery, dataset

    _data_errors_in_one_line()
    source = "data_dir"
    if not data_dir:
        found = corpus_discovery.ensure_corpus() if generate else corpus_discovery.find_corpus()
        if found is None:
            raise NoCorpusError(corpus_discovery.missing_corpus_message())
        data_dir, source = found.path, found.source
    location = dataset.locate(data_dir)
    synthetic = dataset.is_synthetic(location.root)
    ctx = NotebookContext(
        name=name, data_dir=location.audio_dir, root=location.root, synthetic=synthetic,
        figures_dir=Path(figures_root or config.FIGURES_DIR) / name, source=source)
    _style_plots()
    if show:
        _show_banner(ctx)
    return ctx


def _data_errors_in_one_line() -> None:
    """In a kernel, show a :class:`~ser_utils.errors.UserError` (missing or bad data, a bad parameter,
    a refused checkpoint) as its one-line message, as the command line does.

    The error still stops "Run All" (the cells below need the data), but the user sees the fix,
    not a traceback through the package. Outside IPython nothing changes.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return

    def one_line(self, etype, value, tb, tb_offset=None):
        self._showtraceback(etype, value, [f"{etype.__name__}: {value}"])

    shell.set_custom_exc((UserError,), one_line)


def _style_plots() -> None:
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", palette="deep")


def _show_banner(ctx: NotebookContext) -> None:
    text = f"Data: {ctx.root} ({config.SYNTHETIC_LABEL if ctx.synthetic else 'CREMA-D'})"
    if ctx.source != "data_dir":
        text += f"; data_dir is empty, so this is {ctx.source}"
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display

        if get_ipython() is not None:
            display(HTML((SYNTHETIC_BANNER if ctx.synthetic else "") + f"<p><code>{html.escape(text)}</code></p>"))
            return
    except ImportError:  # plain Python without IPython
        pass
    print(text)


def default_device() -> str:
    """``cuda`` when a GPU is visible, else ``cpu`` (the notebooks' ``device="auto"``)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def in_papermill() -> bool:
    """True when papermill executes the notebook (it sets this variable in the kernel)."""
    return "PAPERMILL_EXECUTION" in os.environ
