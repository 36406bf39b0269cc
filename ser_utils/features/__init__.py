"""The features layer: what the numbers of one clip are, and the cache that holds a corpus's.

=================== ==================================================================================
module              what it holds
=================== ==================================================================================
``dsp``             signal primitives: Hann window, power spectrogram, dB, ZCR and RMS rows, fixing a
                    clip's length, resizing an image (numpy/scipy, no librosa per call)
``definitions``     the report's features: ``frames_1d`` (27 x 301), ``features_2d`` (64 x 64 log-mel),
                    their row labels, ``stats_1d`` and ``extract`` (a whole manifest, cached)
``cache``           the worker pool that fills memory-mapped arrays, the on-disk cache keyed by every
                    parameter and each file's identity, ``FeatureSet``, ``prune``
``wave_cache``      K augmented copies of the training clips (``--augment wave``), cached like the features
=================== ==================================================================================

Imports go one way: ``dsp`` <- ``cache`` <- ``definitions``. Everything public is re-exported
here, so ``from ser_utils import features`` and ``features.frames_1d(signal)`` are all a caller
needs. This layer reads :mod:`ser_utils.data` (the preprocessing) and never models or training.
"""

from __future__ import annotations

from ser_utils.features.cache import (CLIP_COLUMNS, FEATURES_VERSION, STALE_TEMP_S, VAR_DTYPE, ClipFeatures,
                                      FeatureSet, cache_is_complete, cache_key, large_cache_warning, load_cache,
                                      manifest_paths, prune)
from ser_utils.features.definitions import (CHROMA_TUNING, MFCC_N_MELS, chroma_rows, clip_features, extract,
                                            features_1d, features_2d, fixed_samples, frames_1d, logmel_scaled,
                                            mfcc_rows, row_labels, row_slices, stats_1d)
from ser_utils.features.dsp import (FIX_CROP, FIX_EXACT, FIX_PAD, ZCR_THRESHOLD, fix_length, power_spectrogram,
                                    power_to_db, resize_image, rms_row, zcr_row)

__all__ = [
    # definitions: the report's features
    "CHROMA_TUNING", "MFCC_N_MELS", "chroma_rows", "clip_features", "extract", "features_1d", "features_2d",
    "fixed_samples", "frames_1d", "logmel_scaled", "mfcc_rows", "row_labels", "row_slices", "stats_1d",
    # dsp: signal primitives
    "FIX_CROP", "FIX_EXACT", "FIX_PAD", "ZCR_THRESHOLD", "fix_length", "power_spectrogram", "power_to_db",
    "resize_image", "rms_row", "zcr_row",
    # cache
    "CLIP_COLUMNS", "FEATURES_VERSION", "STALE_TEMP_S", "VAR_DTYPE", "ClipFeatures", "FeatureSet",
    "cache_is_complete", "cache_key", "large_cache_warning", "load_cache", "manifest_paths", "prune",
]
