"""Audio stage: extraction, DeepSpeech v0.1.0 features (TensorFlow-free) and windowing.

Modules:

- :mod:`hfagp.audio.extract`: decode the first audio stream of a wav/video file
  (channel 0) and write 16 kHz mono int16 wavs.
- :mod:`hfagp.audio.mfcc`: the DeepSpeech v0.1.0 / AD-NeRF front end (resampling,
  MFCC, stride-2, 9-frame context, global whitening).
- :mod:`hfagp.audio.graphdef`: parse a frozen TensorFlow GraphDef with
  tensorboard's compiled protos and read its Const weights.
- :mod:`hfagp.audio.deepspeech`: the v0.1.0 BiRNN in PyTorch.
- :mod:`hfagp.audio.windows`: per-video-frame 16-row windows (AD-NeRF ``aud.npy``).
- :mod:`hfagp.audio.fallback`: the offline MFCC fallback feature (not DeepSpeech).
- :mod:`hfagp.audio.cli`: the ``hfagp audio-extract`` / ``hfagp audio-features`` commands.
"""
