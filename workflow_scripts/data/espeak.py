"""Offline Vietnamese speech synthesis through libespeak-ng (the ``espeakng-loader`` wheel).

The wheel ships the shared library and its voice data, so no system package is needed.
The library keeps global state, so one :class:`EspeakSynthesizer` per process is enough. That state
carries over between utterances (its pitch-flutter phase, for one), so the samples of an utterance
depend on what the process synthesised before it: output is reproducible for the same sequence of
calls in a fresh process, which is how the demo corpus is built.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np

# espeak_AUDIO_OUTPUT: synchronous retrieval, the callback receives every chunk.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
# espeak_PARAMETER
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


@dataclass(frozen=True)
class Prosody:
    """espeak-ng prosody settings: words per minute, 0-100 pitch and range, 0-200 volume."""

    rate: int = 160
    pitch: int = 50
    pitch_range: int = 50
    volume: int = 100


class EspeakSynthesizer:
    """Synthesise text to 16-bit mono samples with a named espeak-ng voice (e.g. ``vi+f2``)."""

    def __init__(self) -> None:
        import espeakng_loader

        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self._libc = ctypes.CDLL(None)  # espeak-ng also draws from the C library's rand()
        self._lib.espeak_Initialize.restype = ctypes.c_int
        self._lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self._lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self._lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        data_path = espeakng_loader.get_data_path().encode()
        self.sample_rate = self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, 0)
        if self.sample_rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed with data path {data_path!r}")
        self._chunks: list[np.ndarray] = []
        # Keep a reference: ctypes callbacks are freed when garbage-collected.
        self._callback = _CALLBACK(self._collect)
        self._lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, n_samples, _events) -> int:
        if n_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
        return 0

    def synthesize(self, text: str, voice: str, prosody: Prosody, seed: int = 0) -> np.ndarray:
        """Return int16 samples at :attr:`sample_rate` for ``text`` spoken by ``voice``.

        ``seed`` fixes espeak-ng's noise sources (breathiness, jitter) so output is reproducible.
        """
        self._lib.espeak_ng_SetRandSeed(ctypes.c_long(seed))
        self._libc.srand(ctypes.c_uint(seed & 0xFFFFFFFF))
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice named {voice!r}")
        for parameter, value in (
            (_RATE, prosody.rate),
            (_PITCH, prosody.pitch),
            (_RANGE, prosody.pitch_range),
            (_VOLUME, prosody.volume),
        ):
            self._lib.espeak_SetParameter(parameter, int(value), 0)
        encoded = text.encode("utf-8") + b"\0"
        self._chunks = []
        status = self._lib.espeak_Synth(encoded, len(encoded), 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None)
        if status != 0:
            raise RuntimeError(f"espeak_Synth failed (status {status}) for text {text!r}")
        if not self._chunks:
            raise RuntimeError(f"espeak-ng produced no audio for text {text!r}")
        return np.concatenate(self._chunks).astype(np.int16)
