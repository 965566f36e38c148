"""Camera geometry: labels, pose solve, conventions (hfagp.face3d.geometry, hfagp.face3d.face_model)."""

from __future__ import annotations

import numpy as np
import pytest

from hfagp.eg3d import camera
from hfagp.face3d import geometry as geo
from hfagp.face3d.face_model import INNER_51, LM3D_STD_5, MIRROR_68, extract_5p, landmark_model_68, umeyama_similarity

SPEC_FRONTAL = np.array(
    [1, 0, 0, 0, 0, -1, 0, 0, 0, 0, -1, 2.7, 0, 0, 0, 1, 4.2647, 0, 0.5, 0, 4.2647, 0.5, 0, 0, 1], dtype=float
)


def synthetic_pose(pitch: float, yaw: float, roll: float, translation=(0.05, -0.1, 10.5)) -> geo.HeadPose:
    return geo.HeadPose(geo.rotation_from_euler(pitch, yaw, roll), np.asarray(translation, float), 0.0)


def test_frontal_label_matches_spec():
    np.testing.assert_array_equal(camera.frontal_camera_label(), SPEC_FRONTAL)
    np.testing.assert_allclose(camera.camera_label(camera.look_at_cam2world(0.0, 0.0)), SPEC_FRONTAL, atol=1e-12)


def test_look_at_yaw_moves_camera_toward_plus_x_and_looks_at_pivot():
    cam2world = camera.look_at_cam2world(yaw_deg=30.0)
    assert cam2world[0, 3] > 1.0
    assert np.linalg.norm(cam2world[:3, 3]) == pytest.approx(2.7)
    to_pivot = camera.CAMERA_PIVOT - cam2world[:3, 3]
    np.testing.assert_allclose(cam2world[:3, 2], to_pivot / np.linalg.norm(to_pivot), atol=1e-12)
    np.testing.assert_allclose(cam2world[:3, :3] @ cam2world[:3, :3].T, np.eye(3), atol=1e-12)


@pytest.mark.parametrize("angles", [(0, 0, 0), (10, -25, 5), (-15, 30, -12), (20, 10, 25)])
def test_euler_round_trip(angles):
    rotation = geo.rotation_from_euler(*angles)
    np.testing.assert_allclose(geo.euler_from_rotation(rotation), angles, atol=1e-9)
    assert np.linalg.det(rotation) == pytest.approx(1.0)


def test_model_is_in_the_bfm_frame():
    model = landmark_model_68()
    assert model.shape == (68, 3)
    # The 5 derived points sit on the standard 3D points within a few millimetres
    # (units are about a decimetre), and the 68-point centroid matches the one
    # of Deep3DFaceRecon's similarity_Lm3D_all table.
    assert np.abs(extract_5p(model) - LM3D_STD_5).max() < 0.005
    np.testing.assert_allclose(model.mean(axis=0), [0.0007, -0.084, 0.130], atol=0.003)


def test_umeyama_recovers_a_similarity():
    rng = np.random.default_rng(0)
    source = rng.normal(size=(20, 3))
    rotation = geo.rotation_from_euler(12, -40, 7)
    target = 2.5 * source @ rotation.T + np.array([0.3, -1.0, 2.0])
    scale, found, translation = umeyama_similarity(source, target)
    assert scale == pytest.approx(2.5)
    np.testing.assert_allclose(found, rotation, atol=1e-10)
    np.testing.assert_allclose(translation, [0.3, -1.0, 2.0], atol=1e-10)


def test_pos_fit_recovers_weak_perspective():
    points_3d = LM3D_STD_5
    scale, t = 123.0, np.array([40.0, 55.0])
    points_2d = scale * points_3d[:, :2] + t
    found_t, found_scale = geo.pos_fit(points_2d, points_3d)
    np.testing.assert_allclose(found_t, t, atol=1e-9)
    assert found_scale == pytest.approx(scale)


@pytest.mark.parametrize("angles", [(0, 0, 0), (-10, 20, 5), (15, -30, -10), (5, 35, 15), (-20, -10, 20)])
def test_pose_solve_recovers_known_pose(angles):
    model = landmark_model_68()
    truth = synthetic_pose(*angles)
    points = geo.project_points(truth, model)
    solved = geo.solve_head_pose(points[INNER_51], model[INNER_51])
    np.testing.assert_allclose(geo.euler_from_rotation(solved.rotation), angles, atol=0.5)
    np.testing.assert_allclose(solved.translation, truth.translation, atol=0.01)
    assert solved.reprojection_error < 0.01


def test_pose_solve_with_pixel_noise_stays_within_half_a_degree():
    rng = np.random.default_rng(1)
    model = landmark_model_68()
    angles = (8.0, -18.0, 6.0)
    points = geo.project_points(synthetic_pose(*angles), model) + rng.normal(scale=0.5, size=(68, 2))
    solved = geo.solve_head_pose(points[INNER_51], model[INNER_51])
    np.testing.assert_allclose(geo.euler_from_rotation(solved.rotation), angles, atol=0.5)


def test_mirror_map_is_an_involution_that_swaps_sides():
    np.testing.assert_array_equal(MIRROR_68[MIRROR_68], np.arange(68))
    model = landmark_model_68()
    # Mirrored landmarks of the (nearly symmetric) mean face are the face itself.
    mirrored = model[MIRROR_68] * np.array([-1, 1, 1])
    assert np.abs(mirrored - model).max() < 0.03


@pytest.mark.parametrize("angles", [(5, 20, 8), (-10, -28, -5)])
def test_mirrored_landmarks_give_mirrored_yaw_and_roll(angles):
    model = landmark_model_68()
    points = geo.project_points(synthetic_pose(*angles, translation=(0.0, 0.0, 10.5)), model)
    mirrored = points[MIRROR_68].copy()
    mirrored[:, 0] = geo.OUTPUT_SIZE - 1 - mirrored[:, 0]
    pitch, yaw, roll = geo.euler_from_rotation(geo.solve_head_pose(mirrored[INNER_51], model[INNER_51]).rotation)
    # The mean face is not perfectly symmetric, hence 1 degree rather than 0.5.
    assert yaw == pytest.approx(-angles[1], abs=1.0)
    assert roll == pytest.approx(-angles[2], abs=1.0)
    assert pitch == pytest.approx(angles[0], abs=1.0)


def test_cam2world_radius_and_rotation():
    pose = synthetic_pose(5, 15, -5)
    cam2world = geo.pose_to_cam2world(pose, radius=2.7)
    assert np.linalg.norm(cam2world[:3, 3]) == pytest.approx(2.7)
    rotation = cam2world[:3, :3]
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-10)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    # Positive head yaw (face turned toward image-right) puts the camera on -x.
    assert cam2world[0, 3] < 0
    raw = geo.pose_to_cam2world(pose, radius=None)
    assert np.linalg.norm(raw[:3, 3]) == pytest.approx(
        np.linalg.norm(0.27 * (-pose.rotation.T @ pose.translation) + [0, 0.006, 0.161])
    )


def test_frontal_face_gives_the_spec_camera():
    # A frontal face at the distance that EG3D's radius normalisation keeps.
    pose = synthetic_pose(0, 0, 0, translation=(0.0, 0.0, (2.7 - 0.161) / 0.27))
    label = camera.camera_label(geo.pose_to_cam2world(pose, radius=2.7))
    np.testing.assert_allclose(label, SPEC_FRONTAL, atol=0.01)


def test_label_projection_matches_the_solved_pose_without_normalisation():
    model = landmark_model_68()
    pose = synthetic_pose(-7, 12, 4)
    label = camera.camera_label(geo.pose_to_cam2world(pose, radius=None))
    np.testing.assert_allclose(
        camera.project_with_label(label, geo.bfm_to_world(model)), geo.project_points(pose, model), atol=1e-6
    )


def test_cam2world_equals_eg3d_conversion_of_a_deep3dfacerecon_pose():
    """spec/preprocess_audio.md B: R = (Rz Ry Rx)^T, trans[2] -= 10, c = -R trans, c *= 0.27,
    c += (0, 0.006, 0.161), cam2world = [R diag(1,-1,-1) | c]."""
    pitch, yaw, roll = 7.0, -12.0, 3.0
    trans = np.array([0.05, -0.12, 0.3])
    head = np.diag([1.0, -1.0, -1.0]) @ geo.rotation_from_euler(pitch, yaw, roll)  # = Rz Ry Rx
    r = head.T
    shifted = trans - np.array([0.0, 0.0, 10.0])
    centre = 0.27 * (-r @ shifted) + np.array([0.0, 0.006, 0.161])
    expected = np.eye(4)
    expected[:3, :3] = r @ np.diag([1.0, -1.0, -1.0])
    expected[:3, 3] = centre
    # The same pose in OpenCV terms: X_cv = D (M X + trans - 10 z).
    flip = np.diag([1.0, -1.0, -1.0])
    pose = geo.HeadPose(flip @ head, flip @ shifted, 0.0)
    np.testing.assert_allclose(geo.pose_to_cam2world(pose, radius=None), expected, atol=1e-12)
