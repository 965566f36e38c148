"""The live viewer's camera mapping (hfagp.evaluate.view_camera)."""

from __future__ import annotations

import numpy as np
import pytest

from hfagp.eg3d import camera
from hfagp.evaluate import view_camera as vc


def test_frontal_orbit_is_eg3ds_frontal_camera():
    label = vc.orbit_label(vc.Orbit(0.0, 0.0, vc.DEFAULT_DISTANCE))
    np.testing.assert_allclose(label, camera.camera_label(camera.look_at_cam2world(0.0, 0.0)), atol=1e-12)


@pytest.mark.parametrize("yaw, pitch", [(20.0, 0.0), (-30.0, 10.0), (0.0, -15.0)])
def test_orbit_round_trips_and_looks_at_the_pivot(yaw, pitch):
    orbit = vc.Orbit(yaw, pitch, 2.6)
    back = vc.orbit_of_position(vc.orbit_position(orbit))
    assert back.yaw_deg == pytest.approx(yaw) and back.pitch_deg == pytest.approx(pitch) and back.radius == pytest.approx(2.6)
    assert not back.clamped
    cam2world = vc.orbit_label(orbit)[:16].reshape(4, 4)
    to_pivot = camera.CAMERA_PIVOT - cam2world[:3, 3]
    np.testing.assert_allclose(cam2world[:3, 2], to_pivot / np.linalg.norm(to_pivot), atol=1e-12)  # +z looks at it
    assert cam2world[1, 1] < 0  # image down is world down (+y is up)
    np.testing.assert_allclose(cam2world[:3, :3] @ cam2world[:3, :3].T, np.eye(3), atol=1e-12)
    # Yaw toward +x as in the render stage's sweep: same direction as EG3D's look-at camera.
    eg3d = camera.look_at_cam2world(yaw, pitch)
    assert np.sign(eg3d[0, 3]) == np.sign(cam2world[0, 3]) or yaw == 0


def test_positions_beyond_the_generators_range_are_clamped():
    far = vc.orbit_position(vc.Orbit(80.0, 40.0, 9.0))
    orbit = vc.orbit_of_position(far)
    assert orbit.clamped
    assert orbit.yaw_deg == vc.YAW_LIMIT_DEG and orbit.pitch_deg == vc.PITCH_LIMIT_DEG and orbit.radius == vc.RADIUS_RANGE[1]
    assert vc.orbit_of_position(camera.CAMERA_PIVOT).clamped  # at the pivot itself: the default view


def test_reset_orbit_of_a_tracked_label():
    label = camera.camera_label(camera.look_at_cam2world(12.0, -4.0))
    orbit = vc.orbit_of_label(label)
    assert orbit.yaw_deg == pytest.approx(12.0, abs=1.0) and orbit.pitch_deg == pytest.approx(-4.0, abs=1.0)


@pytest.mark.parametrize("aspect, shape", [(16 / 9, (90, 160, 3)), (1.0, (90, 90, 3)), (0.5, (180, 90, 3))])
def test_fit_aspect_pads_to_the_viewport(aspect, shape):
    image = np.full((90, 90, 3), 200, np.uint8)
    out = vc.fit_aspect(image, aspect)
    assert out.shape == shape
    assert (out == 200).sum() == image.size  # the render itself is untouched, only padded
