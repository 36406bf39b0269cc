"""The data layer: recordings on disk, read and cleaned, and the corpus they belong to.

=================== ==================================================================================
module              what it holds
=================== ==================================================================================
``dataset``         CREMA-D name parsing and the recording grid, locating the data (root, ``AudioWAV/``,
                    flat folder, Git LFS pointers), the manifest, the random and speaker splits,
                    demographics and the listeners' votes
``audio``           loading audio and the preprocessing chain (soxr resampling, WebRTC/energy VAD,
                    z-score); a bad clip is a one-line error
``decoders``        reading any recording: libsndfile first, FFmpeg (PyAV) for M4A/AAC, WebM/Opus and
                    the sound of videos; the folder search's endings and its list of skipped files
``augment``         waveform augmentation for ``--augment wave`` (speed, gain, noise at a random SNR)
``discovery``       where a notebook or command finds its corpus (``$CREMA_D_DIR``, the recorded one,
                    a demo corpus under ``data/``)
``demo_corpus/``    the synthetic CREMA-D-shaped corpus (eSpeak NG speech with acted-emotion prosody)
=================== ==================================================================================

Import the module you need (``from ser_utils.data import dataset, audio``). This is the lowest
layer above the shared modules (``config``, ``errors``, ``fileio``, ``workers``).
"""
