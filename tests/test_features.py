"""features (+ dsp, feature_cache): shapes, row order, agreement with librosa, training statistics,
and the cache.

Tolerances against direct librosa calls on the same signal: ZCR and RMS are the same
arithmetic (|diff| <= 1e-7); chroma (tuning=0) and the 2D image <= 1e-5; MFCC <= 1e-5 x its
largest magnitude (values in the hundreds; float32 FFT round-off is relative to a frame's
loudest bin, so bins 60-80 dB below it differ by a fraction of a dB between FFT libraries).
"""

from __future__ import annotations

import json
import os
import warnings

import librosa
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from ser_utils import config, features
from ser_utils.data import audio
from ser_utils.config import Feature1DConfig, Feature2DConfig, PreprocessConfig

SR = 16_000
F1, F2 = Feature1DConfig(), Feature2DConfig()


def voice(seconds: float, f0: float = 150.0, seed: int = 0) -> np.ndarray:
    """A z-scored harmonic 'voice' with a pitch glide, syllable envelope and a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.1 * np.sin(2 * np.pi * 0.7 * t))) / SR
    y = sum(np.sin(k * phase) / k for k in range(1, 10)) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
    return audio.zscore((y + 0.01 * rng.standard_normal(len(t))).astype(np.float32))


def write_clip(path, seconds: float, seed: int) -> str:
    rng = np.random.default_rng(seed)
    quiet = 1e-4 * rng.standard_normal(SR // 4)
    y = np.concatenate([quiet, 0.2 * voice(seconds, 120 + 20 * seed, seed), quiet])
    sf.write(path, y, SR, subtype="PCM_16")
    return str(path)


# -------------------------------------------------------------------- 1D rows
@pytest.fixture(scope="module")
def signal():
    return voice(2.2)


def test_shapes_and_dtypes(signal):
    assert features.features_1d(signal, SR, F1).shape == (27, 301)
    assert features.features_1d(signal, SR, F1).dtype == np.float32
    x2d = features.features_2d(signal, SR, F2)
    assert x2d.shape == (1, 64, 64) and x2d.dtype == np.float32
    assert x2d.min() >= 0.0 and x2d.max() <= 1.0 and x2d.max() > 0.9


def test_rows_are_librosa_features_in_report_order(signal):
    fixed, flag = features.fix_length(signal, 48_000)
    assert flag == "pad"
    x = features.features_1d(signal, SR, F1)
    kw = dict(n_fft=512, hop_length=160)
    zcr = librosa.feature.zero_crossing_rate(fixed, frame_length=512, hop_length=160)[0]
    chroma = librosa.feature.chroma_stft(y=fixed, sr=SR, tuning=0.0, **kw)
    mfcc = librosa.feature.mfcc(y=fixed, sr=SR, n_mfcc=13, **kw)
    rms = librosa.feature.rms(y=fixed, frame_length=512, hop_length=160)[0]
    np.testing.assert_allclose(x[0], zcr, atol=1e-7)
    np.testing.assert_allclose(x[1:13], chroma, atol=1e-5)
    np.testing.assert_allclose(x[13:26], mfcc, atol=1e-5 * np.abs(mfcc).max())
    np.testing.assert_allclose(x[26], rms, atol=1e-7)
    labels = features.row_labels(F1)
    assert len(labels) == 27 and (labels[0], labels[1], labels[13], labels[26]) == ("ZCR", "chroma C", "MFCC 0", "RMS")
    assert features.row_slices(F1) == {"zcr": slice(0, 1), "chroma": slice(1, 13), "mfcc": slice(13, 26),
                                       "rms": slice(26, 27)}


def test_rms_row_of_a_known_tone():
    t = np.arange(3 * SR) / SR
    y = (0.5 * np.sin(2 * np.pi * 500 * t)).astype(np.float32)
    x = features.features_1d(y, SR, F1)
    np.testing.assert_allclose(x[26, 2:-2], 0.5 / np.sqrt(2), rtol=1e-3)  # interior frames
    np.testing.assert_allclose(x[0, 2:-2], 2 * 500 / SR, atol=2 / 512)  # two crossings per period


def test_fix_length_pads_or_crops_the_end():
    y = np.arange(10, dtype=np.float32)
    padded, flag = features.fix_length(y, 12)
    assert flag == "pad" and padded.tolist() == list(range(10)) + [0, 0]
    cropped, flag = features.fix_length(y, 4)
    assert flag == "crop" and cropped.tolist() == [0, 1, 2, 3]
    assert features.fix_length(y, 10)[1] == "exact"
    assert features.features_1d(voice(4.0), SR, F1).shape == (27, 301)


def test_power_spectrogram_matches_librosa_stft(signal):
    ours = features.power_spectrogram(signal, 512, 160)
    ref = np.abs(librosa.stft(signal, n_fft=512, hop_length=160)) ** 2
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-6 * ref.max())


@pytest.mark.parametrize("ref_max", [False, True])
def test_power_to_db_matches_librosa(signal, ref_max):
    power = features.power_spectrogram(signal, 512, 160)
    ref = librosa.power_to_db(power, ref=np.max if ref_max else 1.0)
    np.testing.assert_allclose(features.power_to_db(power, ref_max=ref_max), ref, atol=1e-4)


def test_zcr_row_matches_librosa_with_exact_zeros():
    y = np.array([0.0, -0.0, 1e-11, -1e-11, -0.5, 0.3, 0.0, -2e-10, 0.4] * 200, dtype=np.float32)
    ref = librosa.feature.zero_crossing_rate(y, frame_length=512, hop_length=160)[0]
    np.testing.assert_array_equal(features.zcr_row(y, 512, 160), ref)


# ---------------------------------------------------------------------------- 2D
def test_2d_is_scaled_log_mel_resized_like_torch(signal):
    import torch

    mel = librosa.feature.melspectrogram(y=signal, sr=SR, n_fft=1024, hop_length=256, n_mels=64, fmax=8000)
    db = librosa.power_to_db(mel, ref=np.max)
    scaled = (db - db.min()) / (db.max() - db.min())
    np.testing.assert_allclose(features.logmel_scaled(signal, SR, F2), scaled, atol=1e-5)
    resized = torch.nn.functional.interpolate(torch.from_numpy(scaled.astype(np.float32))[None, None], size=(64, 64),
                                              mode="bilinear", antialias=True, align_corners=False)[0].numpy()
    np.testing.assert_allclose(features.features_2d(signal, SR, F2), resized, atol=1e-5)


@pytest.mark.parametrize("n_in", [20, 64, 150, 313])
def test_resize_matches_torch_antialiased_bilinear(n_in):
    import torch

    image = np.random.default_rng(n_in).random((64, n_in)).astype(np.float32)
    ref = torch.nn.functional.interpolate(torch.from_numpy(image)[None, None], size=(64, 64), mode="bilinear",
                                          antialias=True, align_corners=False)[0, 0].numpy()
    np.testing.assert_allclose(features.resize_image(image, 64, 64), ref, atol=1e-6)


def test_fmax_is_clamped_to_nyquist(signal):
    assert F2.fmax == 10_000 and F2.effective_fmax(SR) == 8_000
    at_nyquist = features.logmel_scaled(signal, SR, Feature2DConfig(fmax=8_000))
    np.testing.assert_array_equal(features.logmel_scaled(signal, SR, F2), at_nyquist)
    bank = features.definitions._bank_2d(SR, 1024, 64, F2.effective_fmax(SR))
    assert bank.mel.toarray()[-1].any()  # the top band is not empty (it would be above Nyquist)
    assert F2.effective_fmax(32_000) == 10_000


# ------------------------------------------------------------- variable length
@pytest.mark.parametrize("seconds", [1.3, 3.0, 4.2])
def test_variable_length_features_match_direct_computation(seconds):
    y = voice(seconds, seed=3)
    pre = audio.Preprocessed(y, SR, 0, len(y), False, seconds, seconds, y)
    clip = features.clip_features(pre, F1, F2)
    assert clip.info["fix"] == {1.3: "pad", 3.0: "exact", 4.2: "crop"}[seconds]
    direct = features.frames_1d(y, SR, F1)
    assert clip.frames_var.shape == (1 + len(y) // 160, 27)
    np.testing.assert_allclose(clip.frames_var.astype(np.float32).T, direct, rtol=2e-3, atol=2e-3)  # float16
    np.testing.assert_allclose(clip.mel_var.astype(np.float32).T, features.logmel_scaled(y, SR, F2), atol=1e-3)
    np.testing.assert_array_equal(clip.x1d, features.features_1d(y, SR, F1))
    np.testing.assert_array_equal(clip.x2d, features.features_2d(y, SR, F2))


# ------------------------------------------------------------------ standardise
def test_stats_1d_use_training_clips_only():
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 2.0, size=(10, 27, 301)).astype(np.float32)
    train = np.arange(10) < 7
    x[~train] = 1000.0  # wildly different test clips must not move the statistics
    mean, std = features.stats_1d(x, train)
    assert mean.dtype == std.dtype == np.float32 and mean.shape == std.shape == (27,)
    np.testing.assert_allclose(mean, x[train].astype(np.float64).mean(axis=(0, 2)), rtol=1e-6)
    np.testing.assert_allclose(std, x[train].astype(np.float64).std(axis=(0, 2)), rtol=1e-6)
    standardized = (x[train] - mean[None, :, None]) / std[None, :, None]
    np.testing.assert_allclose(standardized.mean(axis=(0, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(standardized.std(axis=(0, 2)), 1.0, atol=1e-4)
    x2 = x.copy()
    x2[~train] = -3.0
    for a, b in zip(features.stats_1d(x2, train), (mean, std)):
        np.testing.assert_array_equal(a, b)
    constant = np.ones((4, 27, 5), np.float32)
    assert (features.stats_1d(constant, np.array([1, 1, 0, 0], bool))[1] == np.float32(1e-8)).all()  # std floor
    with pytest.raises(ValueError, match="one flag per clip"):
        features.stats_1d(x, train[:5])
    with pytest.raises(ValueError, match="selects no clip"):
        features.stats_1d(x, np.zeros(10, bool))


# ----------------------------------------------------------------------- extract
@pytest.fixture
def corpus(tmp_path):
    """Four good clips (1.2-3.6 s, so both padded and cropped) and three bad ones."""
    folder = tmp_path / "AudioWAV"
    folder.mkdir()
    names = ["1001_DFA_ANG_XX", "1001_IEO_HAP_HI", "1002_TIE_SAD_XX", "1002_WSI_NEU_XX"]
    good = [write_clip(folder / f"{n}.wav", s, i) for i, (n, s) in enumerate(zip(names, [1.2, 2.0, 3.6, 2.4]))]
    bad = {"1003_DFA_FEA_XX": b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 9\n",
           "1003_IEO_DIS_LO": b"",
           "1003_TIE_ANG_XX": open(good[0], "rb").read()[:2000]}
    for name, content in bad.items():
        (folder / f"{name}.wav").write_bytes(content)
    paths = sorted(str(p) for p in folder.glob("*.wav"))
    manifest = pd.DataFrame({"path": paths, "actor": [int(os.path.basename(p)[:4]) for p in paths],
                             "emotion": [os.path.basename(p)[9:12] for p in paths]})
    manifest["split"] = ["train", "test"] * 3 + ["train"]
    return manifest, good, tmp_path / "cache"


@pytest.fixture
def counter(monkeypatch):
    """Counts clip extractions in this process (extract(jobs=1) runs them here)."""
    calls = []
    original = features.definitions._extract_one

    def counting(path, *args):
        calls.append(path)
        return original(path, *args)

    monkeypatch.setattr(features.definitions, "_extract_one", counting)
    return calls


def _extract(manifest, cache, **kw):
    kw.setdefault("jobs", 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return features.extract(manifest, cache, progress=False, **kw)


def test_extract_skips_bad_clips_and_warns(corpus):
    manifest, good, cache = corpus
    with pytest.warns(UserWarning, match="3 of 7 clips skipped"):
        fs = features.extract(manifest, cache, jobs=1, progress=False)
    assert fs.x1d.shape == (4, 27, 301) and fs.x2d.shape == (4, 1, 64, 64)
    assert fs.manifest["path"].tolist() == good and list(fs.manifest.columns) == list(manifest.columns)
    assert len(fs.skipped) == 3 and set(fs.skipped.columns) == {"path", "reason"}
    reasons = dict(zip(fs.skipped["path"].map(os.path.basename), fs.skipped["reason"]))
    assert "git lfs pull" in reasons["1003_DFA_FEA_XX.wav"]
    assert "empty" in reasons["1003_IEO_DIS_LO.wav"] and "truncated" in reasons["1003_TIE_ANG_XX.wav"]
    assert (fs.cache_dir / "skipped.csv").is_file() and (fs.cache_dir / "meta.json").is_file()
    np.testing.assert_array_equal(fs.x1d[0], features.features_1d(audio.preprocess(good[0]).signal, SR, F1))
    assert fs.padded.tolist() == [True, True, False, True] and fs.cropped.tolist() == [False, False, True, False]
    assert fs.vad_fallback.tolist() == [False] * 4
    assert (fs.clips["duration_out_s"] < fs.clips["duration_in_s"]).all()
    for i in range(len(fs)):
        assert fs.mel_var(i).shape == (64, fs.mel_lengths[i])
        assert fs.frames_var(i).shape == (27, fs.frames_lengths[i])
    batch, lengths = fs.var_batch("mel", [0, 2])
    assert batch.shape == (2, 64, lengths.max()) and (batch[0, :, lengths[0]:] == 0).all()


def test_cache_hit_loads_without_recomputing(corpus, counter):
    manifest, good, cache = corpus
    first = _extract(manifest, cache)
    assert len(counter) == 7 and not first.from_cache
    counter.clear()
    resplit = manifest.assign(split="test")  # a re-split keeps the cache
    second = _extract(resplit, cache)
    assert counter == [] and second.from_cache and second.key == first.key
    np.testing.assert_array_equal(second.x1d, first.x1d)
    np.testing.assert_array_equal(second.x2d, first.x2d)
    np.testing.assert_array_equal(second.mel_var(1), first.mel_var(1))
    assert (second.manifest["split"] == "test").all()
    reordered = _extract(manifest.iloc[::-1], cache)  # same files, another order: still a hit, rows aligned
    assert counter == [] and reordered.manifest["path"].tolist() == good[::-1]
    np.testing.assert_array_equal(reordered.x1d, first.x1d[::-1])
    np.testing.assert_array_equal(reordered.frames_var(0), first.frames_var(3))


def test_changed_parameter_misses(corpus, counter):
    manifest, _, cache = corpus
    base = _extract(manifest, cache)
    counter.clear()
    other = _extract(manifest, cache, pre=PreprocessConfig(vad="energy"))
    assert len(counter) == 7 and other.key != base.key
    counter.clear()
    assert _extract(manifest, cache, f2=Feature2DConfig(n_mels=32, size=32)).x2d.shape == (4, 1, 32, 32)
    assert len(counter) == 7


def test_changed_file_invalidates(corpus, counter):
    manifest, good, cache = corpus
    base = _extract(manifest, cache)
    write_clip(good[1], 2.5, seed=9)
    stat = os.stat(good[1])
    os.utime(good[1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    counter.clear()
    changed = _extract(manifest, cache)
    assert len(counter) == 7 and changed.key != base.key
    assert not np.array_equal(changed.x1d[1], base.x1d[1])
    np.testing.assert_array_equal(changed.x1d[0], base.x1d[0])


def test_interrupted_extraction_leaves_no_complete_looking_cache(corpus, monkeypatch):
    manifest, _, cache = corpus
    original, calls = features.definitions._extract_one, []

    def crash_on_third(path, *args):
        calls.append(path)
        if len(calls) == 3:
            raise RuntimeError("simulated crash")
        return original(path, *args)

    monkeypatch.setattr(features.definitions, "_extract_one", crash_on_third)
    with pytest.raises(RuntimeError, match="simulated crash"):
        _extract(manifest, cache)
    leftovers = list(cache.iterdir()) if cache.exists() else []
    assert leftovers == []  # the temporary folder is removed, nothing was renamed into place
    monkeypatch.setattr(features.definitions, "_extract_one", original)
    assert not _extract(manifest, cache).from_cache


def test_folder_without_meta_is_recomputed(corpus, counter):
    manifest, _, cache = corpus
    first = _extract(manifest, cache)
    (first.cache_dir / "meta.json").unlink()
    np.save(first.cache_dir / "x1d.npy", np.zeros(3))  # a half-written folder
    counter.clear()
    again = _extract(manifest, cache)
    assert len(counter) == 7 and not again.from_cache and again.x1d.shape == (4, 27, 301)
    assert json.loads((again.cache_dir / "meta.json").read_text())["n_clips"] == 4


def test_force_recomputes(corpus, counter):
    manifest, _, cache = corpus
    _extract(manifest, cache)
    counter.clear()
    assert not _extract(manifest, cache, force=True).from_cache and len(counter) == 7


def test_parallel_matches_in_process(corpus):
    manifest, _, cache = corpus
    serial = _extract(manifest, cache / "serial")
    pooled = _extract(manifest, cache / "pooled", jobs=2)
    assert pooled.key == serial.key
    np.testing.assert_array_equal(pooled.x1d, serial.x1d)
    np.testing.assert_array_equal(pooled.x2d, serial.x2d)
    pd.testing.assert_frame_equal(pooled.skipped, serial.skipped)


def test_manifest_errors(tmp_path):
    with pytest.raises(ValueError, match="'path' column"):
        features.extract(pd.DataFrame({"file": ["a"]}), tmp_path)
    with pytest.raises(ValueError, match="twice"):
        features.extract(pd.DataFrame({"path": ["/a.wav", "/a.wav"]}), tmp_path)


def test_cache_is_complete_needs_this_folders_key_and_our_version(tmp_path):
    folder = tmp_path / f"v{features.FEATURES_VERSION}-3-0123456789abcdef"
    folder.mkdir()
    assert not features.cache_is_complete(folder)  # no meta.json yet
    for meta, complete in [({"key": folder.name, "version": features.FEATURES_VERSION}, True),
                           ({"key": "v1-3-another", "version": features.FEATURES_VERSION}, False),
                           ({"key": folder.name, "version": features.FEATURES_VERSION + 1}, False),
                           (["not", "an", "object"], False)]:
        (folder / "meta.json").write_text(json.dumps(meta))
        assert features.cache_is_complete(folder) is complete
    (folder / "meta.json").write_text('{"key": "')  # half-written
    assert not features.cache_is_complete(folder)


# ---------------------------------------------------------- start method, hygiene
def _torch_imported(_):
    import sys

    return "torch" in sys.modules


def test_pool_never_forks_the_caller():
    """Workers start from a clean fork server (or spawn), not as forks of the caller: a Jupyter
    kernel that imported torch has thread pools whose locks a fork could copy held."""
    import torch  # noqa: F401 - the caller has torch, as notebook 03's kernel does

    from ser_utils import workers

    assert workers.START_METHOD_OVERRIDE is None and workers.start_method() in ("forkserver", "spawn")
    assert list(workers.imap_unordered(_torch_imported, [0], jobs=1)) == [False]


def _fake_cache(folder, size: int, meta: bool = True):
    folder.mkdir(parents=True)
    (folder / "x1d.npy").write_bytes(b"\0" * size)
    if meta:
        (folder / "meta.json").write_text(json.dumps({"key": folder.name, "version": features.FEATURES_VERSION}))
    return folder


def test_prune_removes_other_parameter_sets_only(tmp_path):
    from ser_utils.features import cache as feature_cache

    root = tmp_path / "features"
    keep = _fake_cache(root / "v1-7-0123456789abcdef", 1000)
    other = _fake_cache(root / "v1-7-fedcba9876543210", 3000)
    old_version = _fake_cache(root / "v0-9-00000000000000aa", 500)
    replaced = _fake_cache(root / ".v1-7-0123456789abcdef.old-1234abcd", 200, meta=False)
    live_tmp = _fake_cache(root / ".v1-7-0123456789abcdef.tmp-99-aaaa0000", 100, meta=False)
    stale_tmp = _fake_cache(root / ".v1-7-fedcba9876543210.tmp-98-bbbb0000", 50, meta=False)
    past = stale_tmp.stat().st_mtime - feature_cache.STALE_TEMP_S - 10
    os.utime(stale_tmp, (past, past))
    unrelated = _fake_cache(root / "my-notes", 10, meta=False)  # not named like a cache: never touched
    (root / "README").write_text("mine")

    sizes = {path: sum(f.stat().st_size for f in path.iterdir()) for path in (other, old_version)}
    removed = dict(features.prune(root, keep=keep.name))
    assert removed == {other: sizes[other], old_version: sizes[old_version], replaced: 200, stale_tmp: 50}
    assert keep.is_dir() and live_tmp.is_dir() and unrelated.is_dir() and (root / "README").is_file()
    assert not other.exists() and not old_version.exists() and not replaced.exists() and not stale_tmp.exists()
    assert features.prune(root, keep=keep.name) == []  # nothing left to remove
    with pytest.raises(ValueError, match="not a feature-cache key"):
        features.prune(root, keep="my-notes")


def test_large_cache_warning_names_the_size_and_the_fix(tmp_path):
    root = tmp_path / "features"
    _fake_cache(root / "v1-7-0123456789abcdef", 4000)
    _fake_cache(root / "v1-7-fedcba9876543210", 4000)
    assert features.large_cache_warning(root, limit=10_000) is None
    text = features.large_cache_warning(root, limit=5_000)
    assert text and str(root) in text and "--prune" in text and "GB" in text
    assert features.large_cache_warning(tmp_path / "missing", limit=0) is None


def test_features_command_prunes_and_reports_space_freed(corpus, capsys, monkeypatch, tmp_path):
    from ser_utils import cli

    outputs = tmp_path / "outputs"
    monkeypatch.setattr(config, "OUTPUTS_DIR", outputs)

    _, good, cache = corpus
    data = cache.parent / "good"
    data.mkdir()
    for path in good:  # the fixture's bad clips include a Git LFS pointer, which the scan refuses
        os.link(path, data / os.path.basename(path))
    stale = _fake_cache(cache / "v1-3-00000000000000ff", 2_000_000)
    assert cli.main(["features", "--data", str(data), "--out", str(cache), "--jobs", "1", "--prune"]) == 0
    out = capsys.readouterr().out
    kept = [p.name for p in cache.iterdir()]
    assert not stale.exists() and len(kept) == 1 and features.cache_is_complete(cache / kept[0])
    assert f"removed {stale}" in out and "freed 2.0 MB" in out and f"kept {kept[0]}" in out
    # a cache of its own (--out) is not the one the notebooks read: the corpus record is left alone
    assert not (outputs / "corpus.json").exists()
