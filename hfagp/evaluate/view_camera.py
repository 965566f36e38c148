"""The live viewer's camera: a browser camera (OpenCV convention, as viser reports it) -> an EG3D label.

The browser orbits freely; the avatar is rendered from the same direction around EG3D's pivot, clamped to
the range the generator supports (yaw / pitch / distance), always looking at the pivot with the world's +y
up, so panning or rolling in the browser cannot aim the generator off the head. Pure numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hfagp.eg3d import camera

# EG3D's FFHQ prior covers roughly +-45 degrees of yaw; a person fitted from a near-frontal video far less.
YAW_LIMIT_DEG = 45.0
PITCH_LIMIT_DEG = 25.0
# Distance from the pivot: EG3D's cameras sit 2.7 from the origin, 2.5 from the pivot when frontal.
DEFAULT_DISTANCE = camera.DEFAULT_RADIUS - float(camera.CAMERA_PIVOT[2])
RADIUS_RANGE = (1.8, 3.4)


@dataclass(frozen=True)
class Orbit:
    """A camera on a sphere about the pivot: yaw toward +x, pitch toward +y (degrees), distance from the pivot."""

    yaw_deg: float
    pitch_deg: float
    radius: float
    clamped: bool = False


def orbit_of_position(position: np.ndarray, pivot: np.ndarray = camera.CAMERA_PIVOT) -> Orbit:
    """The (clamped) orbit of a camera at ``position``; ``clamped`` says whether a limit was hit."""
    offset = np.asarray(position, dtype=np.float64) - pivot
    radius = float(np.linalg.norm(offset))
    if radius < 1e-9:
        return Orbit(0.0, 0.0, DEFAULT_DISTANCE, True)
    yaw = math.degrees(math.atan2(offset[0], offset[2]))
    pitch = math.degrees(math.asin(max(-1.0, min(1.0, offset[1] / radius))))
    clamped_yaw = max(-YAW_LIMIT_DEG, min(YAW_LIMIT_DEG, yaw))
    clamped_pitch = max(-PITCH_LIMIT_DEG, min(PITCH_LIMIT_DEG, pitch))
    clamped_radius = max(RADIUS_RANGE[0], min(RADIUS_RANGE[1], radius))
    hit = (clamped_yaw, clamped_pitch, clamped_radius) != (yaw, pitch, radius)
    return Orbit(clamped_yaw, clamped_pitch, clamped_radius, hit)


def orbit_position(orbit: Orbit, pivot: np.ndarray = camera.CAMERA_PIVOT) -> np.ndarray:
    """The camera position of ``orbit`` (world coordinates)."""
    return np.asarray(pivot, dtype=np.float64) + orbit.radius * camera.orbit_direction(orbit.yaw_deg, orbit.pitch_deg)


def orbit_label(orbit: Orbit, pivot: np.ndarray = camera.CAMERA_PIVOT) -> np.ndarray:
    """The 25-float EG3D label of a camera at ``orbit`` looking at the pivot (OpenCV axes, +y up)."""
    return camera.camera_label(camera.cam2world_looking_at(orbit_position(orbit, pivot), pivot))


def orbit_of_label(label: np.ndarray, pivot: np.ndarray = camera.CAMERA_PIVOT) -> Orbit:
    """The orbit of a tracked camera label (its position about the pivot), for the viewer's reset."""
    return orbit_of_position(np.asarray(label, dtype=np.float64)[:16].reshape(4, 4)[:3, 3], pivot)


def fit_aspect(image: np.ndarray, aspect: float, fill: int = 0) -> np.ndarray:
    """Pad an (H, W, 3) image with ``fill`` to width / height = ``aspect``, centred (the viewport's shape)."""
    height, width = image.shape[:2]
    if aspect <= 0 or not math.isfinite(aspect):
        return image
    target_width = int(round(height * aspect))
    if target_width >= width:
        pad = target_width - width
        return np.pad(image, ((0, 0), (pad // 2, pad - pad // 2), (0, 0)), constant_values=fill)
    target_height = int(round(width / aspect))
    pad = target_height - height
    return np.pad(image, ((pad // 2, pad - pad // 2), (0, 0), (0, 0)), constant_values=fill)
