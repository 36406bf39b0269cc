"""audio.py: every WAV flavour loads to 16 kHz mono, VAD trims, z-score, bad clips fail clearly."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import soundfile as sf

from ser_utils.data import audio
from ser_utils.config import PreprocessConfig

SR = 16_000


def tone(freq: float, seconds: float, sr: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(signal: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    return float(np.fft.rfftfreq(len(signal), 1 / sr)[np.argmax(spectrum)])


def voiced_in_silence(noise: float, seed: int = 0) -> tuple[np.ndarray, int, int]:
    """0.5 s quiet, 1 s of a modulated harmonic tone, 1 s quiet -> (signal, tone_start, tone_end)."""
    rng = np.random.default_rng(seed)
    t = np.arange(SR) / SR
    voice = sum(np.sin(2 * np.pi * 180 * k * t) / k for k in range(1, 6)) * 0.2 * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    signal = np.concatenate([np.zeros(SR // 2), voice, np.zeros(SR)])
    signal = signal + noise * rng.standard_normal(len(signal))
    return signal.astype(np.float32), SR // 2, SR // 2 + SR


# ------------------------------------------------------------------------- load
@pytest.mark.parametrize("subtype, rate, channels", [
    ("PCM_16", 16_000, 1),
    ("PCM_16", 44_100, 2),
    ("FLOAT", 48_000, 1),
    ("PCM_U8", 8_000, 1),
    ("PCM_24", 22_050, 2),
    ("PCM_32", 32_000, 1),
    ("DOUBLE", 11_025, 3),
])
def test_load_any_wav_to_16k_mono(tmp_path, subtype, rate, channels):
    signal = tone(440, 1.0, rate)
    data = np.stack([signal] * channels, axis=1) if channels > 1 else signal
    path = tmp_path / f"{subtype}_{rate}_{channels}.wav"
    sf.write(path, data, rate, subtype=subtype)
    out = audio.load(path)
    assert out.dtype == np.float32 and out.ndim == 1
    assert abs(len(out) - SR) <= 2
    assert peak_hz(out, SR) == pytest.approx(440, abs=2)  # 1 Hz bins: the pitch survives resampling
    assert np.sqrt(np.mean(out[1000:-1000] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.03)


def test_load_averages_channels(tmp_path):
    left, right = tone(440, 1.0, SR, 0.6), tone(440, 1.0, SR, 0.2)
    sf.write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), SR, subtype="FLOAT")
    np.testing.assert_allclose(audio.load(tmp_path / "stereo.wav"), (left + right) / 2, atol=1e-6)


# -------------------------------------------------------------------------- VAD
@pytest.mark.parametrize("method", ["webrtc", "energy"])
@pytest.mark.parametrize("noise", [0.0, 1e-4, 3e-3])
def test_vad_trims_leading_and_trailing_quiet(method, noise):
    """Noise 3e-3 (-50 dBFS) checks the WebRTC priming: unprimed, it calls the first frames speech."""
    signal, start, end = voiced_in_silence(noise)
    cfg = PreprocessConfig(vad=method)
    out = audio.preprocess(signal, cfg, sr=SR)
    pad = cfg.vad_padding_ms * SR // 1000
    slack = 2 * cfg.vad_frame_ms * SR // 1000
    assert not out.vad_fallback
    assert start - pad - slack <= out.speech_start <= start + slack
    assert end - slack <= out.speech_end <= end + pad + 0.3 * SR  # WebRTC adds its own hang-over
    assert out.duration_in_s == pytest.approx(2.5)
    assert out.duration_out_s == pytest.approx(len(out.signal) / SR)
    assert out.duration_out_s < 1.8


def test_vad_keeps_pauses_inside_speech():
    signal, start, end = voiced_in_silence(0.0)
    gap = np.zeros(SR // 2, np.float32)
    signal = np.concatenate([signal[:end], gap, signal[start:end], signal[end:]])
    out = audio.preprocess(signal, PreprocessConfig(vad="energy"), sr=SR)
    assert out.speech_end - out.speech_start >= 2.5 * SR  # both bursts and the pause between


@pytest.mark.parametrize("method, noise", [("energy", 0.05), ("energy", 1e-3), ("webrtc", 1e-4), ("webrtc", 1e-2)])
def test_vad_falls_back_to_the_whole_clip_on_noise(method, noise):
    signal = (noise * np.random.default_rng(1).standard_normal(2 * SR)).astype(np.float32)
    out = audio.preprocess(signal, PreprocessConfig(vad=method), sr=SR)
    assert out.vad_fallback
    assert (out.speech_start, out.speech_end) == (0, len(signal))
    assert len(out.signal) == len(signal)


def test_no_vad_keeps_everything():
    signal, _, _ = voiced_in_silence(1e-3)
    out = audio.preprocess(signal, PreprocessConfig(vad="none"), sr=SR)
    assert (out.speech_start, out.speech_end, out.vad_fallback) == (0, len(signal), False)


def test_vad_registry_and_unknown_method():
    assert set(audio.VAD_FUNCTIONS) == {"webrtc", "energy", "none"}
    signal, _, _ = voiced_in_silence(0.0)
    for name in audio.VAD_FUNCTIONS:
        flags = audio.speech_frames(signal, SR, method=name)
        assert flags.dtype == bool and len(flags) == len(signal) // (SR * 30 // 1000)
    with pytest.raises(ValueError, match="unknown VAD method"):
        audio.preprocess(signal, PreprocessConfig(vad="silero"), sr=SR)


def test_smoothing_drops_an_isolated_click():
    flags = np.array([0, 1, 0, 0, 0, 1, 1, 0, 1, 1, 1, 0, 0], dtype=bool)
    np.testing.assert_array_equal(audio.smooth_flags(flags), [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0])


# ---------------------------------------------------------------------- z-score
def test_zscore_and_region_refer_to_the_untrimmed_signal():
    signal, _, _ = voiced_in_silence(1e-4)
    out = audio.preprocess(3.0 * signal, sr=SR)
    assert out.signal.dtype == np.float32
    assert abs(float(out.signal.mean())) < 1e-6
    assert float(out.signal.std()) == pytest.approx(1.0, abs=1e-5)
    region = out.untrimmed[out.speech_start:out.speech_end].astype(np.float64)
    np.testing.assert_allclose(out.signal, (region - region.mean()) / region.std(), atol=1e-5)


def test_zscore_off_keeps_the_level():
    signal, _, _ = voiced_in_silence(0.0)
    out = audio.preprocess(signal, PreprocessConfig(zscore=False), sr=SR)
    np.testing.assert_array_equal(out.signal, signal[out.speech_start:out.speech_end])


def test_preprocess_resamples_a_signal_and_needs_its_rate():
    out = audio.preprocess(tone(440, 1.0, 44_100), PreprocessConfig(vad="none"), sr=44_100)
    assert out.sample_rate == SR and abs(len(out.signal) - SR) <= 2
    with pytest.raises(ValueError, match="sr="):
        audio.preprocess(tone(440, 1.0, SR))


# -------------------------------------------------------------------- bad clips
def _wav_bytes(tmp_path) -> bytes:
    path = tmp_path / "good.wav"
    sf.write(path, tone(440, 1.0, SR), SR, subtype="PCM_16")
    return path.read_bytes()


BAD_CLIPS = {
    "zero-length": (lambda good: b"", "empty file"),
    "truncated": (lambda good: good[: len(good) // 2], "truncated"),
    "header cut": (lambda good: good[:30], "unreadable"),
    "garbage": (lambda good: bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8)), "unreadable"),
    "lfs pointer": (lambda good: (b"version https://git-lfs.github.com/spec/v1\n"
                                  b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
                                  b"size 78814\n"), "git lfs pull"),
}


@pytest.mark.parametrize("kind", BAD_CLIPS)
def test_bad_files_raise_naming_the_file(tmp_path, kind):
    make, reason = BAD_CLIPS[kind]
    path = tmp_path / "1001_DFA_ANG_XX.wav"
    path.write_bytes(make(_wav_bytes(tmp_path)))
    with pytest.raises(audio.BadClipError) as caught:
        audio.preprocess(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert reason.lower() in message.lower()
    assert caught.value.path == str(path)


@pytest.mark.parametrize("samples, reason", [
    (np.zeros(SR, np.float32), "all silence"),
    (np.full(SR, 0.25, np.float32), "constant"),
    (np.zeros(0, np.float32), "no audio"),
])
def test_silent_and_empty_audio_raise(tmp_path, samples, reason):
    path = tmp_path / "clip.wav"
    sf.write(path, samples, SR, subtype="PCM_16")
    with pytest.raises(audio.BadClipError, match=reason):
        audio.preprocess(path)


def test_missing_file_is_a_bad_clip(tmp_path):
    with pytest.raises(audio.BadClipError, match="not found"):
        audio.load(tmp_path / "nope.wav")


def test_non_finite_signal_is_a_bad_clip():
    signal = tone(440, 1.0, SR)
    signal[100] = np.nan
    with pytest.raises(audio.BadClipError, match="NaN"):
        audio.preprocess(signal, sr=SR)


def test_bad_clip_error_is_a_value_error_that_pickles():
    err = audio.BadClipError("/data/x.wav", "empty file")
    assert isinstance(err, ValueError)
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.path, copy.reason, str(copy)) == ("/data/x.wav", "empty file", "/data/x.wav: empty file")


# ------------------------------------------------------------------- FFmpeg formats
@pytest.mark.parametrize("name", ["browser.webm", "memo.m4a", "video.mp4", "clip.mkv"])
def test_ffmpeg_formats_decode_sample_aligned_to_the_original(tmp_path, name):
    """What libsndfile refuses, FFmpeg reads: the same length and timing as the signal encoded (AAC's
    priming and end padding dropped), the samples close to it (lossy), the first audio stream of a video."""
    from ser_utils.data import decoders

    x, _, _ = voiced_in_silence(noise=1e-3)
    path = decoders.encode(tmp_path / name, x, SR, video=name == "video.mp4")
    with pytest.raises(sf.LibsndfileError):
        sf.info(str(path))
    y = audio.load(path)
    assert len(y) == len(x)
    snr_db = 10 * np.log10(np.sum(x**2) / np.sum((x - y) ** 2))
    assert snr_db > 15, f"{name}: {snr_db:.1f} dB"


def test_folder_search_lists_what_it_skips(tmp_path):
    from ser_utils.data import decoders

    for name in ("a.wav", "b.M4A", "c.webm", "notes.txt", "cover.jpg", ".hidden.txt"):
        (tmp_path / name).write_bytes(b"")
    found, skipped = decoders.audio_files(tmp_path)
    assert [p.name for p in found] == ["a.wav", "b.M4A", "c.webm"]
    assert decoders.skipped_message(skipped) == "skipped 2 files that are not audio: cover.jpg, notes.txt"
    assert decoders.skipped_message([]) is None
    many = decoders.skipped_message([f"{i}.txt" for i in range(8)])
    assert many == "skipped 8 files that are not audio: 0.txt, 1.txt, 2.txt, 3.txt, 4.txt, ... (3 more)"


def test_a_video_whose_sound_ends_before_its_picture_is_not_truncated(tmp_path):
    """Only the audio stream's declared length counts: 1 s of sound in a 3 s video is whole."""
    import av

    from ser_utils.data import decoders

    x, _, _ = voiced_in_silence(noise=1e-3)
    sound = decoders.encode(tmp_path / "sound.m4a", x, SR)
    with av.open(str(tmp_path / "video.mp4"), "w", format="mp4") as out, av.open(str(sound)) as src:
        picture = out.add_stream("mpeg4", rate=10)
        picture.width, picture.height, picture.pix_fmt = 64, 64, "yuv420p"
        track = out.add_stream_from_template(src.streams.audio[0])
        for packet in src.demux(src.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = track
                out.mux(packet)
        black = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
        for _ in range(int(len(x) / SR * 10) + 20):  # two seconds more picture than sound
            out.mux(picture.encode(black))
        out.mux(picture.encode(None))
    np.testing.assert_allclose(audio.load(tmp_path / "video.mp4"), audio.load(sound), atol=1e-6)
