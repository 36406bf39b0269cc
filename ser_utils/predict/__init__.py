"""The prediction layer: a trained run scoring recordings it has never seen.

=================== ==================================================================================
module              what it holds
=================== ==================================================================================
``windowing``       how a new recording is cut (whole, or 3 s windows every ``hop_s``) and each
                    window's model inputs
``predictor``       ``Predictor.from_run`` / ``from_runs``, ``.predict(paths)``, ``.predict_array``;
                    the kept pool of scoring workers
``output``          the ``predict`` command's work, its table/csv/json formats and exit statuses
``view``            notebook 10's probability bars, per-window timeline and upload panel
=================== ==================================================================================

Import the module you need (``from ser_utils.predict.predictor import Predictor``). This layer
never imports :mod:`ser_utils.experiments` (an import-linter contract in ``pyproject.toml``).
"""
