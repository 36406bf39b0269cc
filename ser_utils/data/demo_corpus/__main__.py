"""``python -m ser_utils.data.demo_corpus [DIR]``: write the demo corpus (``python -m ser_utils
demo-data`` is the full command, with --actors, --seed and --jobs)."""

from __future__ import annotations

import sys

from ser_utils.data.demo_corpus.writer import DEFAULT_OUT_DIR, generate

if __name__ == "__main__":  # pragma: no cover - convenience
    generate(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUT_DIR)
