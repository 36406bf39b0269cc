"""Constants from CREMA-D and the course report, and the single source of defaults.

Every default the pipeline uses lives here, so that a notebook's parameter cell, the
command line and the tests all agree. Paths resolve from the repository root, never
from the current directory, so notebooks run from ``notebooks/`` and the command line
run from anywhere write to the same ``outputs/``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

# --------------------------------------------------------------------------- paths
REPO_ROOT = Path(__file__).resolve().parent.parent
#: ``$SER_OUTPUTS_DIR`` moves everything the pipeline writes (the tests use it to keep
#: ``outputs/`` clean); by default it is ``outputs/`` in the repository.
OUTPUTS_DIR = Path(os.environ.get("SER_OUTPUTS_DIR") or REPO_ROOT / "outputs").resolve()
FEATURES_DIR = OUTPUTS_DIR / "features"
RUNS_DIR = OUTPUTS_DIR / "runs"
FIGURES_DIR = OUTPUTS_DIR / "figures"
REPORT_DIR = OUTPUTS_DIR / "report"
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
DEMO_CORPUS_DIR = REPO_ROOT / "data" / "demo-corpus"
#: The quick profile's demo corpus (``make demo``, ``make lab``, notebooks with no corpus).
QUICK_DEMO_CORPUS_DIR = REPO_ROOT / "data" / "demo-corpus-quick"
QUICK_DEMO_ACTORS = 8
DATA_ENV_VAR = "CREMA_D_DIR"

# ------------------------------------------------------------------------ CREMA-D facts
SAMPLE_RATE = 16_000
EMOTIONS: tuple[str, ...] = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
EMOTION_NAMES: dict[str, str] = {
    "ANG": "anger",
    "DIS": "disgust",
    "FEA": "fear",
    "HAP": "happy",
    "NEU": "neutral",
    "SAD": "sad",
}
#: The single letters the listeners' votes use (summaryTable.csv), mapped to our codes.
VOTE_LETTERS: dict[str, str] = {"A": "ANG", "D": "DIS", "F": "FEA", "H": "HAP", "N": "NEU", "S": "SAD"}
LEVELS: tuple[str, ...] = ("LO", "MD", "HI", "XX")
SENTENCES: dict[str, str] = {
    "IEO": "It's eleven o'clock",
    "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting",
    "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full",
    "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock",
    "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket",
    "ITS": "I think I've seen this before",
    "TSI": "The surface is slick",
    "WSI": "We'll stop in a couple of minutes",
}
FIRST_ACTOR, LAST_ACTOR = 1001, 1091
N_ACTORS = LAST_ACTOR - FIRST_ACTOR + 1
#: Sentence recorded at three intensity levels (the others at XX; NEU always at XX).
LEVELLED_SENTENCE = "IEO"
N_CLIPS_RELEASED = 7_442
N_CLIPS_GRID = 7_462
#: Voice-only human recognition of the intended emotion as *published* by Cao et al. (2014): 40.9%.
#: Not computed here. What the suite computes from the released votes (summaryTable.csv, one majority
#: vote per clip) is :func:`ser_utils.analysis.tables.human_accuracy`: 41.6% on the 7,442 clips when a
#: tie counts as wrong; the two count differently, so they need not agree.
PUBLISHED_HUMAN_VOICE_ACCURACY = 0.409

# ----------------------------------------------------------------- experiment grid
MODELS: tuple[str, ...] = ("1d", "2d", "combined")
ACTIVATIONS: tuple[str, ...] = ("relu", "silu", "elu")
LEARNING_RATES: tuple[float, ...] = (0.001, 0.01, 0.1)
SPLITS: tuple[str, ...] = ("random", "speaker")
SEED = 42
#: Data augmentation of a run (``--augment``): none (the report's), SpecAugment-style masks on the
#: features (``spec``), augmented waveforms (``wave``), or both (docs/future-work.md).
AUGMENTS: tuple[str, ...] = ("none", "spec", "wave", "both")

#: How every number from the synthetic demo corpus is labelled (tables, figures, banners, logs).
SYNTHETIC_LABEL = "synthetic demo corpus — not CREMA-D"
#: Our parameter counts of the report's three models with 6 classes, built from its pseudocode under
#: two choices the pseudocode leaves open (conv bias on, affine GroupNorm with 8 groups; see
#: ``models.layers``). The report itself gives no parameter counts. Pinned by a test.
PSEUDOCODE_PARAMETERS: dict[str, int] = {"1d": 507_654, "2d": 5_043_270, "combined": 5_739_462}


# -------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class SpecAugmentConfig:
    """SpecAugment-style masks (Park et al. 2019) drawn per training clip and batch (``--augment spec``).

    Each mask zeroes a band of random width ``0..max_width`` at a random position: on the 64 x 64
    log-mel ``freq_masks`` mel bands and ``time_masks`` frames; on the 27 x 301 frames
    ``time_masks`` spans of frames (the 27 rows are different features, not a frequency axis, so
    they are never masked). Zero is the log-mel's floor and, after standardisation, the 1D rows' mean.
    """

    freq_masks: int = 2
    freq_width: int = 8  # of 64 mel bands
    time_masks: int = 2
    time_width_2d: int = 8  # of 64 log-mel frames
    time_width_1d: int = 30  # of 301 frames (0.3 s)


@dataclass(frozen=True)
class WaveAugmentConfig:
    """Waveform augmentation before feature extraction (``--augment wave``): one draw per copy.

    Speed perturbation as Kaldi recipes (factor 0.9, 1.0 or 1.1: tempo and pitch change together,
    by resampling), a gain in dB, then additive noise at an SNR drawn in ``snr_db``: coloured noise
    (power spectrum 1/f^exponent: white 0, pink 1, brown 2) or, with probability ``p_babble``, the
    non-speech parts of other training clips (their room and noise floor). ``copies`` augmented
    copies of every training clip are cached; training draws one per clip and epoch.
    """

    copies: int = 2
    speeds: tuple[float, ...] = (0.9, 1.0, 1.1)
    gain_db: tuple[float, float] = (-6.0, 6.0)
    snr_db: tuple[float, float] = (5.0, 20.0)
    noise_exponents: tuple[float, ...] = (0.0, 1.0, 2.0)
    p_babble: float = 0.5
    bank_clips: int = 64  # training clips whose non-speech parts make the noise bank


@dataclass(frozen=True)
class PreprocessConfig:
    """Mono -> 16 kHz -> VAD trim -> z-score (report section 2)."""

    sample_rate: int = SAMPLE_RATE
    vad: str = "webrtc"  # "webrtc" (webrtcvad-wheels), "energy", or "none"
    vad_aggressiveness: int = 2  # webrtcvad mode 0-3
    vad_frame_ms: int = 30
    vad_padding_ms: int = 90  # speech kept either side of the detected region
    zscore: bool = True


@dataclass(frozen=True)
class Feature1DConfig:
    """ZCR + 12 chroma + 13 MFCC + RMS per frame: [27, 301] for 3.0 s (report section 3.1)."""

    frame_length: int = 512
    hop_length: int = 160
    duration_s: float = 3.0
    n_chroma: int = 12
    n_mfcc: int = 13

    @property
    def n_rows(self) -> int:
        return 1 + self.n_chroma + self.n_mfcc + 1

    def n_frames(self, sample_rate: int = SAMPLE_RATE) -> int:
        return int(round(self.duration_s * sample_rate)) // self.hop_length + 1


@dataclass(frozen=True)
class Feature2DConfig:
    """Log-mel image [1, 64, 64] scaled to [0, 1] (report section 3.2).

    The report asks for fmax = 10 kHz, above the 8 kHz Nyquist limit of 16 kHz audio;
    :meth:`effective_fmax` uses min(fmax, sr / 2).
    """

    n_fft: int = 1024
    hop_length: int = 256
    n_mels: int = 64
    fmax: float = 10_000.0
    size: int = 64

    def effective_fmax(self, sample_rate: int = SAMPLE_RATE) -> float:
        return float(min(self.fmax, sample_rate / 2))


#: TrainConfig fields that change a run's result: two runs agreeing on all of them (and on the
#: corpus) are the same run; the device is left out (it changes speed, not the protocol).
RESULT_FIELDS: tuple[str, ...] = ("model", "activation", "lr", "epochs", "batch_size", "weight_decay", "warmup_epochs",
                                  "final_lr_fraction", "dropout_conv", "dropout_head", "seed", "split", "split_seed",
                                  "numeric_precision", "augment")
#: Result fields added after runs were first recorded, with the value those older runs were trained
#: with: a run folder that does not record the field is read as having this value (``runs.recorded_settings``).
LATER_RESULT_FIELDS: dict[str, object] = {"augment": "none"}


@dataclass
class TrainConfig:
    """One training configuration (report section 5). Defaults are the report's protocol.

    ``seed`` draws the weights and the batch order; ``split_seed`` draws the train/validation/test
    split. Keeping them apart lets repetitions with several seeds share one test set (the report's,
    split seed 42), so their differences are paired comparisons on the same clips.
    """

    model: str = "combined"
    activation: str = "relu"
    lr: float = 0.001
    epochs: int = 150
    batch_size: int = 64
    weight_decay: float = 1e-4
    warmup_epochs: int = 5
    final_lr_fraction: float = 1e-3  # cosine decays to 0.1% of the rate
    dropout_conv: float = 0.3
    dropout_head: float = 0.5
    seed: int = SEED
    split: str = "random"
    split_seed: int = SEED
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", ...
    # "auto" (bf16 on CUDA, fp32 on the CPU), "bf16" or "fp32" (not "precision": that is a metric's name)
    numeric_precision: str = "auto"
    augment: str = "none"  # AUGMENTS: none | spec | wave | both
    wandb: bool = False
    #: The run folder's name instead of the one derived from the settings (a tuning trial is
    #: ``tune-<study>-t0003``); not a result setting: the reuse check still compares every setting.
    run_name: str = ""

    @property
    def run_id(self) -> str:
        """Folder name from the settings, e.g. ``2d-silu-lr0.001`` for the report's protocol.

        Every result-affecting setting (:data:`RESULT_FIELDS`) that differs from the report's
        protocol is named, so two different runs never share a folder: ``-e12`` (epochs),
        ``-speaker`` (split), ``-seed43``, ``-split43`` (split seed), ``-bs32`` (batch size), and
        ``-bf16``/``-fp32`` (precision), ``-aug-spec`` (augmentation), and ``-h`` plus a 6-character hash for the rest (weight decay, warm-up, final rate, dropout).
        """
        if self.run_name:
            return self.run_name
        default = TrainConfig()
        run_id = f"{self.model}-{self.activation}-lr{self.lr:g}"
        named = (("epochs", "e"), ("split", ""), ("seed", "seed"), ("split_seed", "split"), ("batch_size", "bs"),
                 ("numeric_precision", ""), ("augment", "aug-"))
        for name, prefix in named:
            if getattr(self, name) != getattr(default, name):
                run_id += f"-{prefix}{getattr(self, name)}"
        rest = {k: getattr(self, k) for k in RESULT_FIELDS
                if k not in dict(named) and k not in ("model", "activation", "lr") and getattr(self, k) != getattr(default, k)}
        if rest:
            digest = hashlib.sha1(json.dumps(rest, sort_keys=True).encode()).hexdigest()[:6]
            run_id += f"-h{digest}"
        return run_id

    def result_settings(self) -> dict:
        """The settings that define the run's result (:data:`RESULT_FIELDS`), for reuse checks."""
        return {k: getattr(self, k) for k in RESULT_FIELDS}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def default_data_dir() -> Path:
    """``$CREMA_D_DIR`` when set, else the demo corpus folder inside the repository."""
    env = os.environ.get(DATA_ENV_VAR)
    return Path(env).expanduser() if env else DEMO_CORPUS_DIR
