"""Reading any recording a user has: libsndfile first, FFmpeg (through PyAV) for what it cannot read.

Why two decoders: libsndfile (``soundfile``) reads the lossless formats exactly and fast (WAV,
FLAC, AIFF, ...) and also Ogg Vorbis/Opus and MP3, but not the formats people record in today:
a browser's MediaRecorder writes WebM/Opus, a phone's voice memo is M4A/AAC, and a video's sound
sits in an MP4/MOV/MKV container. FFmpeg reads all of these; the ``av`` wheel bundles it, so
nothing is installed system-wide. libsndfile stays first so that the corpus' WAV clips decode
exactly as before (and without the cost of opening a container); FFmpeg is only asked when
libsndfile refuses the file.

* Multi-stream files (a video with sound, several audio tracks): the first audio stream.
* A file without an audio stream (a silent video) is a :class:`BadClipError` naming it.
* A file whose audio stream declares its duration but holds clearly less audio (a download cut
  short) is a :class:`BadClipError` too, not a shorter clip: FFmpeg decodes what is present without a
  word, as libsndfile does for WAV (:mod:`ser_utils.data.audio` checks those headers).

:data:`AUDIO_SUFFIXES` (every file name ending either decoder reads) is what a folder search
keeps; :func:`audio_files` also returns what it left out, so a caller can list it once.
docs/formats.md has the table of formats and decoders.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

#: File name endings libsndfile reads.
SNDFILE_SUFFIXES = (".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au",
                    ".snd", ".caf", ".w64", ".rf64")
#: File name endings left to FFmpeg: phone and browser recordings, the audio tracks of videos.
FFMPEG_SUFFIXES = (".m4a", ".m4b", ".aac", ".mp4", ".m4v", ".mov", ".3gp", ".3g2", ".webm", ".weba", ".mkv",
                   ".mka", ".amr", ".awb", ".wma", ".wmv", ".asf", ".avi", ".flv", ".ac3", ".spx")
#: Every ending a folder search keeps.
AUDIO_SUFFIXES = SNDFILE_SUFFIXES + FFMPEG_SUFFIXES

#: What :func:`encode` writes for a file name ending: (FFmpeg container, audio codec, codec's rate or None = the signal's).
ENCODINGS = {".webm": ("webm", "libopus", 48_000), ".ogg": ("ogg", "libopus", 48_000),
             ".opus": ("ogg", "libopus", 48_000), ".m4a": ("ipod", "aac", None), ".mp4": ("mp4", "aac", None),
             ".mov": ("mov", "aac", None), ".mkv": ("matroska", "libopus", 48_000), ".mp3": ("mp3", "libmp3lame", None)}

#: At most this much decoded audio after the last packet's end is taken for encoder padding and dropped.
MAX_PADDING_S = 0.1
#: A container's declared duration is trusted to this much (encoder padding, priming samples).
TRUNCATION_TOLERANCE_S = 0.1
TRUNCATION_TOLERANCE_FRACTION = 0.05


class BadClipError(ValueError):
    """An unusable audio file; ``str(err)`` is ``"<file>: <reason>"`` on one line."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # keep both fields when sent between processes
        return (type(self), (self.path, self.reason))


def one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def read(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """``(samples, rate)``: float32 samples of shape ``(frames, channels)`` at the file's own rate.

    libsndfile first; when it cannot read the file, FFmpeg's first audio stream. A file neither
    reads raises BadClipError naming it, with both decoders' reasons.
    """
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
        return data, int(rate)
    except (RuntimeError, sf.SoundFileError) as err:  # LibsndfileError is a RuntimeError
        sndfile_reason = one_line(err).replace(f"Error opening {str(path)!r}: ", "")
    return read_ffmpeg(path, sndfile_reason)


def read_ffmpeg(path: str | os.PathLike, sndfile_reason: str = "") -> tuple[np.ndarray, int]:
    """The first audio stream of ``path`` decoded by FFmpeg (PyAV), as :func:`read` returns it."""
    import av  # deferred: WAV corpora never need it

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                kinds = sorted({s.type for s in container.streams}) or ["no"]
                raise BadClipError(path, f"no audio stream in this file ({', '.join(kinds)} streams only); "
                                         "export or record it with sound")
            stream = container.streams.audio[0]
            planar = av.AudioResampler(format="fltp")  # keeps rate and channels, float32 planes
            blocks, first_s, end_s = [], None, None
            for packet in container.demux(stream):
                if packet.pts is not None and packet.duration:
                    end_s = max(end_s or 0.0, float((packet.pts + packet.duration) * packet.time_base))
                for frame in packet.decode():
                    if first_s is None and frame.pts is not None:
                        first_s = float(frame.pts * frame.time_base)
                    blocks += [f.to_ndarray() for f in planar.resample(frame)]
            blocks += [f.to_ndarray() for f in planar.resample(None)]
            rate = int(stream.rate or stream.codec_context.sample_rate)
            declared = _declared_seconds(container, stream)
    except av.FFmpegError as err:
        reason = f"libsndfile: {sndfile_reason}; FFmpeg: {one_line(err)}" if sndfile_reason else one_line(err)
        raise BadClipError(path, f"unreadable audio ({reason}); re-download or re-export it as WAV") from err
    if not blocks:
        raise BadClipError(path, "no audio samples in its audio stream; re-record or re-download it")
    data = np.ascontiguousarray(np.concatenate(blocks, axis=1).T, dtype=np.float32)
    data = _without_end_padding(data, rate, first_s, end_s)
    decoded = len(data) / rate
    if declared and declared - decoded > max(TRUNCATION_TOLERANCE_S, TRUNCATION_TOLERANCE_FRACTION * declared):
        raise BadClipError(path, f"truncated (the file declares {declared:.2f} s, holds {decoded:.2f} s of audio); "
                                 "re-download or re-export it")
    return data, rate


def _declared_seconds(container: Any, stream: Any) -> float | None:
    """How long the file says its audio is: the audio stream's own duration, else the container's when
    the audio is all it holds (a video's sound may end before its picture), else None (unknown)."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration and len(container.streams) == 1:
        return container.duration / 1e6
    return None


def _without_end_padding(data: np.ndarray, rate: int, first_s: float | None, end_s: float | None) -> np.ndarray:
    """Drop the encoder's padding after the last real sample (AAC pads its last frame of 1024 with
    near-silence). The packets' timestamps and durations say where the audio ends; the decoder
    still returns whole frames. Left in, that digital silence becomes the clip's quietest frames,
    which the WebRTC VAD is primed with (:func:`ser_utils.data.audio.webrtc_frames`), and the
    trimming of the room noise around the speech changes. Only a cut of at most MAX_PADDING_S is
    trusted (timestamps of live recordings can be rough)."""
    if first_s is None or end_s is None:
        return data
    keep = int(round((end_s - first_s) * rate))
    return data[:keep] if 0 < len(data) - keep <= MAX_PADDING_S * rate else data


def audio_files(folder: str | os.PathLike) -> tuple[list[Path], list[Path]]:
    """``(audio, skipped)`` under ``folder`` (recursively, sorted, hidden files and folders ignored):
    the files whose ending either decoder reads, and the others."""
    folder = Path(folder)
    keep, skipped = [], []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts):
            (keep if path.suffix.lower() in AUDIO_SUFFIXES else skipped).append(path)
    return keep, skipped


def skipped_message(skipped: Iterable[str | os.PathLike], shown: int = 5) -> str | None:
    """``"skipped 3 files that are not audio: notes.txt, ..."`` (their names), or None when none was."""
    names = [Path(p).name for p in skipped]
    if not names:
        return None
    more = f", ... ({len(names) - shown} more)" if len(names) > shown else ""
    plural = "file that is" if len(names) == 1 else "files that are"
    return f"skipped {len(names)} {plural} not audio: {', '.join(names[:shown])}{more}"


def encode(path: str | os.PathLike, signal: np.ndarray, rate: int, video: bool = False, sound: bool = True) -> Path:
    """Write a mono float signal in the format ``path``'s ending names (:data:`ENCODINGS`) with FFmpeg.

    How the tests and ``benchmarks/bench_predict.py`` make the recordings people have: a browser's
    WebM/Opus, a phone's M4A/AAC, and with ``video=True`` an MP4 whose sound sits beside a video
    track (black frames); ``sound=False`` writes a video without an audio stream.
    """
    import av

    path = Path(path)
    if path.suffix.lower() not in ENCODINGS:
        raise ValueError(f"{path.name}: encode writes {', '.join(ENCODINGS)}")
    fmt, codec, codec_rate = ENCODINGS[path.suffix.lower()]
    codec_rate = codec_rate or rate
    mono = np.ascontiguousarray(np.asarray(signal, dtype=np.float32)[None, :])
    with av.open(str(path), "w", format=fmt) as container:
        picture = container.add_stream("mpeg4", rate=10) if video else None
        if picture is not None:
            picture.width, picture.height, picture.pix_fmt = 64, 64, "yuv420p"
        if sound:
            stream = container.add_stream(codec, rate=codec_rate, layout="mono")
            frame = av.AudioFrame.from_ndarray(mono, format="flt", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)  # timed: AAC's priming
            # samples then get negative timestamps, and the container's edit list tells decoders to drop them
            convert = av.AudioResampler(format=stream.format.name, layout="mono", rate=codec_rate)
            for part in convert.resample(frame) + convert.resample(None) + [None]:
                container.mux(stream.encode(part))
        if picture is not None:
            black = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
            for _ in range(max(1, int(len(mono[0]) / rate * 10))):
                container.mux(picture.encode(black))
            container.mux(picture.encode(None))
    return path
