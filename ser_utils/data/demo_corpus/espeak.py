"""eSpeak NG through ctypes: text (SSML) in, int16 samples at 22,050 Hz out.

Why ctypes and not a Python wrapper: the ``espeakng-loader`` wheel ships the library and its
data for every platform without a system install, and only a handful of speak_lib.h calls are
needed. Why so careful: eSpeak's synthesis state is process-global (one engine per process,
:func:`engine`), its parameters persist between calls (``synth`` sets all of them every time),
it ignores unknown voice variants silently (``set_voice`` checks first), and it seeds its noise
generator from the clock (``synth`` re-seeds it, so the same call gives the same samples).

Nothing is loaded at import: the library is opened and initialised on first use.
"""

from __future__ import annotations

import ctypes
import os

import numpy as np

#: < 100 leaves headroom: some variants clip inside eSpeak at 100.
ESPEAK_VOLUME = 70


class _EspeakVoice(ctypes.Structure):
    """``espeak_VOICE`` from speak_lib.h."""

    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


# speak_lib.h enums
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_SSML = 0x10
_RATE, _VOLUME, _PITCH, _RANGE, _WORDGAP = 1, 2, 3, 4, 7
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


def _load_library() -> ctypes.CDLL:
    """libespeak-ng from the espeakng-loader wheel, with the speak_lib.h signatures."""
    try:
        import espeakng_loader
    except ImportError as exc:  # pragma: no cover - a dependency of the project
        raise RuntimeError(
            "the demo corpus needs eSpeak NG: pip install espeakng-loader"
        ) from exc
    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
        ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
    ]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Synchronize.restype = ctypes.c_int
    lib.espeak_ListVoices.argtypes = [ctypes.POINTER(_EspeakVoice)]
    lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_EspeakVoice))
    lib.espeak_Info.argtypes = [ctypes.c_void_p]
    lib.espeak_Info.restype = ctypes.c_char_p
    if hasattr(lib, "espeak_ng_SetRandSeed"):
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed.restype = ctypes.c_int
    return lib


def _load_libc() -> ctypes.CDLL | None:
    """The C library, whose rand() eSpeak's wave generator may also draw from."""
    try:
        return ctypes.CDLL(None) if os.name != "nt" else ctypes.cdll.msvcrt
    except (OSError, AttributeError):  # pragma: no cover - exotic platforms
        return None


def espeak_version() -> str:
    """The eSpeak NG version string (loads the library; does not initialise it)."""
    return _load_library().espeak_Info(None).decode()


class _Espeak:
    """eSpeak NG in synchronous mode: text in, int16 samples at 22,050 Hz out.

    eSpeak's state is process-global, so there is one instance per process (:func:`engine`).
    Rate, pitch, range, volume and word gap persist between calls, so :meth:`synth` sets all
    of them every time.
    """

    def __init__(self) -> None:
        import espeakng_loader

        self.lib = _load_library()
        self._libc = _load_libc()
        data = espeakng_loader.get_data_path().encode()
        rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise RuntimeError(f"eSpeak NG failed to initialise with data at {data.decode()}")
        self.sample_rate = rate
        self._chunks: list[np.ndarray] = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # kept alive by this reference
        self.lib.espeak_SetSynthCallback(self._callback)
        self._voices = self._list("")
        self._variants = self._list("variant")
        self._checked: set[str] = set()

    def _collect(self, wav, n_samples, _events) -> int:
        if wav and n_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
        return 0  # 0 = go on synthesising

    def _list(self, languages: str) -> set[str]:
        """Identifiers' last component (``en-us``, ``m3``) of voices or of variants."""
        spec = None
        if languages:
            spec = _EspeakVoice()
            spec.languages = languages.encode()
        found = self.lib.espeak_ListVoices(ctypes.byref(spec) if spec else None)
        names, i = set(), 0
        while found[i]:
            names.add(found[i].contents.identifier.decode().rsplit("/", 1)[-1])
            i += 1
        return names

    def set_voice(self, voice: str) -> None:
        """Select ``base+variant``; eSpeak ignores unknown variants silently, so check first."""
        if voice not in self._checked:
            base, _, variant = voice.partition("+")
            if base.lower() not in {v.lower() for v in self._voices}:
                raise ValueError(f"eSpeak NG has no voice {base!r}")
            if variant and variant not in self._variants:
                raise ValueError(f"eSpeak NG has no voice variant {variant!r}")
            self._checked.add(voice)
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"eSpeak NG could not select voice {voice!r}")

    def seed(self, value: int) -> None:
        """Seed eSpeak's noise generators (breath, aspiration); else they follow the clock."""
        value &= 0x7FFFFFFF
        if hasattr(self.lib, "espeak_ng_SetRandSeed"):
            self.lib.espeak_ng_SetRandSeed(value)
        if self._libc is not None:
            self._libc.srand(ctypes.c_uint(value))

    def synth(self, text: str, voice: str, *, rate: int, pitch: int, pitch_range: int,
              volume: int = ESPEAK_VOLUME, word_gap: int = 0, ssml: bool = True,
              seed: int = 0) -> np.ndarray:
        """Speak ``text`` (SSML when ``ssml``) and return its int16 samples."""
        self.set_voice(voice)
        self.seed(seed)
        for param, value in ((_RATE, rate), (_VOLUME, volume), (_PITCH, pitch),
                             (_RANGE, pitch_range), (_WORDGAP, word_gap)):
            self.lib.espeak_SetParameter(param, int(value), 0)
        self._chunks = []
        data = text.encode() + b"\0"
        flags = _CHARS_UTF8 | (_SSML if ssml else 0)
        status = self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, flags, None, None)
        self.lib.espeak_Synchronize()
        if status != 0:
            raise RuntimeError(f"eSpeak NG failed (status {status}) on {text!r}")
        if not self._chunks:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(self._chunks)


_ENGINE: _Espeak | None = None


def engine() -> _Espeak:
    """This process's eSpeak, initialised on first use."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _Espeak()
    return _ENGINE
