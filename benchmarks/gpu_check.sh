#!/usr/bin/env bash
# The prepared GPU check: one table of what a card does with this project, in at most 8 minutes
# on one GPU, with no network. It measures training throughput per model (clips/s, peak memory,
# bf16 against fp32), the 27-configuration sweep (3 epochs, full 91-actor demo corpus) with 1, 2
# and 4 runs per GPU, and projects the report's protocol (27 x 150 epochs on 7,442 clips).
#
#   bash benchmarks/gpu_check.sh            # the check (see benchmarks/gpu_check.py for the stages)
#   bash benchmarks/gpu_check.sh --plan     # the stages and their time limits; runs nothing
#   PYTHON=/path/to/python bash benchmarks/gpu_check.sh   # an environment prepared another way
#
# Environment: .venv (from `make setup`) unless PYTHON names an interpreter. Without .venv the
# script runs `make setup`, which needs the package index or a pip cache; with a CUDA build of
# torch already in the machine's python3, `python3 -m venv --system-site-packages .venv` first
# makes setup keep it. Results: outputs/gpu-check/gpu_check.txt (the table) and gpu_check.json.
set -euo pipefail
cd "$(dirname "$0")/.."

LIMIT_S="${GPU_CHECK_LIMIT_S:-480}"   # hard wall-clock cap of the whole check (8 minutes)
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    if [ ! -x .venv/bin/python ] || [ ! -f .venv/.installed ]; then
        echo "gpu_check: no prepared .venv; running make setup (needs the package index or a pip cache)" >&2
        make setup >&2 || { echo "error: make setup failed; prepare .venv on a machine with network, or set PYTHON" >&2; exit 2; }
    fi
    PY=.venv/bin/python
fi

# Everything the check imports, before any time is spent: one line naming what is missing.
"$PY" - <<'EOF' || exit 2
import importlib.util
import sys

needed = ["torch", "numpy", "pandas", "papermill", "nbformat", "librosa", "soxr", "soundfile", "webrtcvad",
          "espeakng_loader", "torchmetrics", "matplotlib", "tqdm", "ser_utils"]
missing = [name for name in needed if importlib.util.find_spec(name) is None]
if missing:
    print(f"error: {sys.executable} lacks {', '.join(missing)}; run `make setup` (or pip install -e .) in it",
          file=sys.stderr)
    raise SystemExit(2)
EOF

exec timeout --signal=TERM --kill-after=30 "$LIMIT_S" "$PY" benchmarks/gpu_check.py "$@"
