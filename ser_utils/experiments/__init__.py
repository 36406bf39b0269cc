"""The experiments layer: many trainings run, resumed and spread over cores, GPUs or a cluster.

=================== ==================================================================================
module              what it holds
=================== ==================================================================================
``grid``            the sweep's configurations (model x activation x lr x seed), shards, parsing
``nbexec``          executing notebooks with papermill (partial file then rename, time limits)
``sweep``           planning (run / skip / conflict) and running notebook 07 per configuration
``shards``          the sweep as shard processes side by side: placement and supervision
``slurm``           the sbatch job-array scripts: the sweep, its feature job, a tuning study's workers
``search_space``    the tuning search space: defaults, TOML and --param overrides, suggestions
``study_storage``   a study's storage (SQLite, PostgreSQL, journal file), heartbeats, retries
``tuning``          Bayesian tuning with Optuna: the study, its workers, the best trial's test
=================== ==================================================================================

Import the module you need (``from ser_utils.experiments import sweep``). This layer never
imports :mod:`ser_utils.predict` (an import-linter contract in ``pyproject.toml``).
"""
