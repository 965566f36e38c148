"""The offline fallback audio feature used when no DeepSpeech model is configured.

**This is not DeepSpeech.** It has the same layout as the DeepSpeech logits
(one 29-vector per 20 ms, windowed exactly like them into (N, 16, 29)) so the
rest of the pipeline runs without the 490 MB model, but it carries only
spectral-envelope information, not phonetic posteriors. Definition:

1. The DeepSpeech front end's signal and MFCCs (:mod:`hfagp.audio.mfcc`: 16 kHz
   int16, ``python_speech_features.mfcc(numcep=26)`` at 100 fps; column 0 is the
   log frame energy).
2. Columns 26-28: the first-order deltas of MFCC columns 0, 1, 2
   (``python_speech_features.delta(N=2)``, i.e. the regression over +-2 frames).
3. Every 2nd frame (50 fps, the DeepSpeech timeline: ceil(n/2) rows).
4. Each column standardised over the utterance (mean 0, population std 1; a
   constant column is only centred).

The sidecar JSON of the output says ``"feature": "mfcc-fallback"``.
"""

from __future__ import annotations

import numpy as np

FALLBACK_DIM = 29
FEATURE_NAME = "mfcc-fallback"


def fallback_features(mfcc: np.ndarray) -> np.ndarray:
    """(ceil(n/2), 29) float32 fallback features from the 100 fps MFCC frames (n, 26)."""
    from python_speech_features import delta

    mfcc = np.asarray(mfcc, dtype=np.float64)
    deltas = delta(mfcc[:, :3], 2) if mfcc.shape[0] else np.zeros((0, 3))
    feats = np.concatenate([mfcc, deltas], axis=1)[::2]
    mean = feats.mean(axis=0) if feats.shape[0] else np.zeros(FALLBACK_DIM)
    std = feats.std(axis=0) if feats.shape[0] else np.ones(FALLBACK_DIM)
    std = np.where(std > 1e-12, std, 1.0)
    return ((feats - mean) / std).astype(np.float32)
