"""EG3D camera labels: the 25 floats the generator is conditioned on and renders from.

A label is the 16 row-major values of an OpenCV cam2world matrix (x right,
y down, z forward) followed by the 9 normalised intrinsics
``[f, 0, 0.5, 0, f, 0.5, 0, 0, 1]`` with f = 4.2647 (EG3D's FFHQ cameras).
Cameras sit on a sphere around the world origin and look at EG3D's pivot
(0, 0, 0.2). Pure numpy: importing this module does not import torch.
"""

from __future__ import annotations

import math

import numpy as np

# Normalised focal length of EG3D's FFHQ cameras (18.837 degree field of view):
# Deep3DFaceRecon's focal 1015 at 224 px carried through the 300/1024/700 crop.
FOCAL_NORMALISED = 4.2647
INTRINSICS_NORMALISED = np.array(
    [FOCAL_NORMALISED, 0.0, 0.5, 0.0, FOCAL_NORMALISED, 0.5, 0.0, 0.0, 1.0], dtype=np.float64
)
DEFAULT_RADIUS = 2.7
CAMERA_PIVOT = np.array([0.0, 0.0, 0.2])


def camera_label(cam2world: np.ndarray) -> np.ndarray:
    """The 25-float EG3D label: row-major cam2world then normalised intrinsics."""
    return np.concatenate([np.asarray(cam2world, dtype=np.float64).reshape(16), INTRINSICS_NORMALISED])


def look_at_cam2world(
    yaw_deg: float = 0.0, pitch_deg: float = 0.0, radius: float = DEFAULT_RADIUS, pivot: np.ndarray = CAMERA_PIVOT
) -> np.ndarray:
    """Cam2world of a camera on the sphere of ``radius`` around the origin, looking at ``pivot``.

    This is EG3D's viewer convention (cameras on a sphere about the world
    origin aimed at the pivot (0, 0, 0.2)). Yaw moves the camera around the
    world y axis toward +x, pitch raises it toward +y. Yaw = pitch = 0 gives
    SPEC's frontal camera: rotation diag(1, -1, -1) at (0, 0, radius).
    """
    return cam2world_looking_at(radius * orbit_direction(yaw_deg, pitch_deg), pivot)


def orbit_direction(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """Unit vector at ``yaw`` (about the world y axis, toward +x) and ``pitch`` (toward +y) from +z."""
    yaw, pitch = np.radians(yaw_deg), np.radians(pitch_deg)
    return np.array([np.cos(pitch) * np.sin(yaw), np.sin(pitch), np.cos(pitch) * np.cos(yaw)])


def cam2world_looking_at(origin: np.ndarray, target: np.ndarray) -> np.ndarray:
    """OpenCV cam2world of a camera at ``origin`` whose +z looks at ``target``, image down = world -y."""
    origin = np.asarray(origin, dtype=np.float64)
    forward = np.asarray(target, dtype=np.float64) - origin
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, np.array([0.0, 1.0, 0.0]))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    cam2world = np.eye(4)
    cam2world[:3, 0], cam2world[:3, 1], cam2world[:3, 2], cam2world[:3, 3] = right, down, forward, origin
    return cam2world


def frontal_camera_label(radius: float = DEFAULT_RADIUS) -> np.ndarray:
    """SPEC's frontal label: rotation diag(1, -1, -1), camera at (0, 0, radius)."""
    cam2world = np.eye(4)
    cam2world[:3, :3] = np.diag([1.0, -1.0, -1.0])
    cam2world[2, 3] = radius
    return camera_label(cam2world)


def project_with_label(label: np.ndarray, points_world: np.ndarray, size: int = 512) -> np.ndarray:
    """Project EG3D world points through a 25-float label into pixel indices of a ``size`` image."""
    label = np.asarray(label, dtype=np.float64)
    cam2world = label[:16].reshape(4, 4)
    intrinsics = label[16:25].reshape(3, 3) * np.array([[size, 1, size], [1, size, size], [1, 1, 1]])
    world2cam = np.linalg.inv(cam2world)
    cam = points_world @ world2cam[:3, :3].T + world2cam[:3, 3]
    uv = cam[:, :2] / cam[:, 2:3] @ intrinsics[:2, :2].T + intrinsics[:2, 2]
    return uv - 0.5


def yaw_offset_label(label: np.ndarray, degrees: float, pivot: np.ndarray = CAMERA_PIVOT) -> np.ndarray:
    """The frame's own camera turned by ``degrees`` of yaw about the world y axis through the pivot."""
    label = np.asarray(label, dtype=np.float64)
    cam2world = label[:16].reshape(4, 4)
    a = math.radians(degrees)
    rot = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    turned = cam2world.copy()
    turned[:3, :3] = rot @ cam2world[:3, :3]
    turned[:3, 3] = rot @ (cam2world[:3, 3] - pivot) + pivot
    return np.concatenate([turned.reshape(16), label[16:]])
