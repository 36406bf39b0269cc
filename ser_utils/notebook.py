"""The setup section every notebook opens with, in one call.

``ctx = notebook.setup("03_feature_extraction", data_dir)`` finds the data, says which
corpus it is (and stamps a banner when it is the synthetic demo corpus), styles the
figures, and gives the notebook one place to save figures and load the manifest and the
cached features, so no notebook carries a copy-pasted setup block.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ser_utils import config

SYNTHETIC_BANNER = (
    "<div style='border:2px solid #c0392b;padding:6px 10px;color:#c0392b;font-weight:bold'>"
    "Synthetic demo corpus: every number and figure below comes from generated speech, "
    "not from CREMA-D. Point <code>data_dir</code> (or $CREMA_D_DIR) at CREMA-D for real results."
    "</div>"
)


@dataclass
class NotebookContext:
    """What a notebook needs to know about where it runs and what data it sees."""

    name: str
    data_dir: Path
    root: Path
    synthetic: bool
    figures_dir: Path
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def corpus(self) -> str:
        return "synthetic" if self.synthetic else "crema-d"

    def save(self, fig, name: str) -> Path:
        """Save a figure under ``outputs/figures/<notebook>/<name>.png`` (stamped if synthetic)."""
        from ser_utils import plots

        plots.corpus_banner(fig, self.synthetic)
        return plots.save_figure(fig, self.name, name, root=self.figures_dir.parent)

    def clips(self, split_method: str = "random", seed: int = config.SEED):
        """The manifest with its split (cached per split method and seed)."""
        from ser_utils import dataset

        key = ("clips", split_method, seed)
        if key not in self._cache:
            self._cache[key] = dataset.manifest(self.data_dir, split_method=split_method, seed=seed)
        return self._cache[key]

    def features(self, features_dir: str | Path | None = None, jobs: int | None = None, progress: bool = True):
        """The cached 1D/2D features of the whole corpus (computed once, then loaded)."""
        from ser_utils import dataset, features

        key = ("features", str(features_dir))
        if key not in self._cache:
            clips, _ = dataset.scan(self.data_dir)
            self._cache[key] = features.extract(
                clips, cache_root=Path(features_dir) if features_dir else config.FEATURES_DIR,
                jobs=jobs, progress=progress)
        return self._cache[key]


def setup(name: str, data_dir: str | Path | None = None, figures_root: str | Path | None = None,
          show: bool = True) -> NotebookContext:
    """Open a notebook: locate the data, style plots, and show which corpus this is."""
    from ser_utils import dataset

    location = dataset.locate(data_dir)
    synthetic = dataset.is_synthetic(location.root)
    ctx = NotebookContext(
        name=name, data_dir=location.audio_dir, root=location.root, synthetic=synthetic,
        figures_dir=Path(figures_root or config.FIGURES_DIR) / name)
    _style_plots()
    if show:
        _show_banner(ctx)
    return ctx


def _style_plots() -> None:
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", palette="deep")


def _show_banner(ctx: NotebookContext) -> None:
    text = f"Data: {ctx.root} ({'synthetic demo corpus, not CREMA-D' if ctx.synthetic else 'CREMA-D'})"
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display

        if get_ipython() is not None:
            display(HTML((SYNTHETIC_BANNER if ctx.synthetic else "") + f"<p><code>{text}</code></p>"))
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
