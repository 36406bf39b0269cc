"""Notebook support: what the notebooks call that is about notebooks rather than speech.

=================== ==================================================================================
module              what it holds
=================== ==================================================================================
``context``         ``setup``: the one-call setup section every notebook opens with (finds the corpus,
                    the synthetic banner, the figure folder, the cached features)
``explore``         notebook 01's data-tour helpers (tables, players, the explorer widget)
``source``          ``show_source``: a notebook displays the package's real code of an algorithm
``exercises``       ``check`` (an exercise's verdict) and ``agree`` (a derive-then-assert line)
=================== ==================================================================================

``setup`` and the context's names are re-exported, so a notebook opens with
``ctx = notebook.setup("03_feature_extraction", data_dir)``.
"""

from __future__ import annotations

from ser_utils.notebook.context import (SYNTHETIC_BANNER, NoCorpusError, NotebookContext, default_device,
                                        in_papermill, setup)

__all__ = ["SYNTHETIC_BANNER", "NoCorpusError", "NotebookContext", "default_device", "in_papermill", "setup"]
