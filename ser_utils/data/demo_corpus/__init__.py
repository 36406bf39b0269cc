"""A CREMA-D-shaped synthetic corpus: the embedded default dataset when CREMA-D is absent.

Real CREMA-D audio cannot be fetched everywhere this project runs (no network, no Git LFS),
yet every notebook, test and command needs audio laid out exactly like CREMA-D. This package
writes such a corpus from nothing: eSpeak NG (through the ``espeakng-loader`` wheel) speaks
the 12 CREMA-D sentences for every actor, emotion and level of the CREMA-D grid, and numpy /
scipy post-processing adds voice quality and recording conditions.

Why it is labelled everywhere: no number computed on it is a CREMA-D result. The corpus
root holds ``README.txt`` (first line ``SYNTHETIC DEMO CORPUS - NOT CREMA-D``) and the marker
``demo_corpus.json`` that the dataset code uses to detect it.

One responsibility per module, imported one way (``writer`` -> the others):

- :mod:`~ser_utils.data.demo_corpus.espeak` -- the eSpeak NG ctypes binding;
- :mod:`~ser_utils.data.demo_corpus.voices` -- the actors, the emotion styles and each clip's plan;
- :mod:`~ser_utils.data.demo_corpus.acoustics` -- voice-quality DSP, room acoustics and noise;
- :mod:`~ser_utils.data.demo_corpus.writer` -- rendering clips, the worker pool, the files;
- :mod:`~ser_utils.data.demo_corpus.seeding` -- the seeded generators all of them draw from.

The same seed gives byte-identical files whatever ``jobs`` is. Because workers are started
with ``forkserver`` (or ``spawn``), a script calling :func:`generate` needs the usual
``if __name__ == "__main__":`` guard (notebooks and ``python -m ser_utils`` are fine).
Importing this package has no side effects: eSpeak is loaded and initialised on first use,
once per process.
"""

from __future__ import annotations

from ser_utils.data.demo_corpus.espeak import espeak_version
from ser_utils.data.demo_corpus.voices import (
    FEMALE_VARIANTS,
    MALE_VARIANTS,
    STYLES,
    ActorProfile,
    ClipPlan,
    EmotionStyle,
    actor_clip_names,
    clip_names,
    make_actors,
    plan_clip,
)
from ser_utils.data.demo_corpus.writer import (
    AUDIO_SUBDIR,
    CORPUS_MARKER,
    DEFAULT_OUT_DIR,
    DEMOGRAPHICS_FILE,
    GENERATOR_VERSION,
    PARTIAL_MARKER,
    README_FIRST_LINE,
    generate,
    is_demo_corpus,
    render_clip,
    write_demographics,
)

__all__ = [
    "AUDIO_SUBDIR",
    "CORPUS_MARKER",
    "DEFAULT_OUT_DIR",
    "DEMOGRAPHICS_FILE",
    "FEMALE_VARIANTS",
    "GENERATOR_VERSION",
    "MALE_VARIANTS",
    "PARTIAL_MARKER",
    "README_FIRST_LINE",
    "ActorProfile",
    "ClipPlan",
    "EmotionStyle",
    "STYLES",
    "actor_clip_names",
    "clip_names",
    "espeak_version",
    "generate",
    "is_demo_corpus",
    "make_actors",
    "plan_clip",
    "render_clip",
    "write_demographics",
]
