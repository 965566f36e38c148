"""Face geometry of the EG3D/FFHQ convention: crop alignment, head pose, BFM -> EG3D world.

All functions are small and pure (numpy in, numpy out). Conventions, from
SPEC section 4 and spec/preprocess_audio.md B:

* Image points are pixel indices (x right, y down; pixel centres at integers)
  unless a name says ``continuous`` (pixel centres at +0.5, the frame used by
  EG3D's normalised intrinsics).
* The face lives in the BFM frame (:mod:`hfagp.face3d.face_model`); EG3D world
  coordinates are ``0.27 * X_bfm + (0, 0.006, 0.161)``.
* Cameras are OpenCV cam2world matrices (x right, y down, z forward).
* Camera labels (16 row-major cam2world values, then the normalised
  intrinsics) are EG3D's own convention: :mod:`hfagp.eg3d.camera`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from hfagp.eg3d.camera import DEFAULT_RADIUS, FOCAL_NORMALISED

# BFM -> EG3D world: scale and offset applied by EG3D's 3dface2idr conversion.
BFM_TO_WORLD_SCALE = 0.27
BFM_TO_WORLD_OFFSET = np.array([0.0, 0.006, 0.161])

# The crop sequence: scale the face to RESCALE_FACTOR px per model unit on a
# CANVAS_SIZE canvas, centre-crop CENTER_CROP, resize to OUTPUT_SIZE.
RESCALE_FACTOR = 300.0
CANVAS_SIZE = 1024
CENTER_CROP = 700
OUTPUT_SIZE = 512

# OpenCV camera axes relative to the BFM/EG3D axes (y and z flipped).
_FLIP_YZ = np.diag([1.0, -1.0, -1.0])


def pos_fit(points_2d_yup: np.ndarray, points_3d: np.ndarray) -> tuple[np.ndarray, float]:
    """Weak-perspective least-squares fit of 2D points to 3D points (Deep3DFaceRecon's POS).

    Solves ``x = a.X + a0`` and ``y = b.X + b0`` in the least-squares sense and
    returns ``(t, s)``: where the 3D origin projects (``(a0, b0)``, y-up image
    coordinates) and the mean scale ``(|a| + |b|) / 2`` in pixels per model unit.
    """
    n = len(points_3d)
    design = np.zeros((2 * n, 8))
    design[0::2, 0:3] = points_3d
    design[0::2, 3] = 1.0
    design[1::2, 4:7] = points_3d
    design[1::2, 7] = 1.0
    rhs = np.asarray(points_2d_yup, dtype=np.float64).reshape(2 * n)
    k = np.linalg.lstsq(design, rhs, rcond=None)[0]
    scale = (np.linalg.norm(k[0:3]) + np.linalg.norm(k[4:7])) / 2.0
    return np.array([k[3], k[7]]), float(scale)


@dataclass(frozen=True)
class CropWindow:
    """Where the aligned crop sits in the source image.

    The source is resized to ``resized_size`` (w, h); the ``CANVAS_SIZE``
    window at ``(left, up)`` is taken (zeros outside the image); its centre
    ``CENTER_CROP`` square is resized to ``OUTPUT_SIZE``.
    """

    resized_size: tuple[int, int]
    left: int
    up: int
    source_size: tuple[int, int]

    def affine(self) -> np.ndarray:
        """2x3 matrix mapping source pixel indices to output-crop pixel indices.

        It follows the resamplers' pixel-centre convention exactly, so a
        landmark at a source pixel lands on the output pixel that shows it.
        """
        w0, h0 = self.source_size
        w, h = self.resized_size
        sx, sy = w / w0, h / h0
        margin = (CANVAS_SIZE - CENTER_CROP) // 2
        k = OUTPUT_SIZE / CENTER_CROP
        # index -> continuous (+0.5), scale, shift by the window, back to index.
        ax = k * sx
        ay = k * sy
        bx = k * (0.5 * sx - self.left - margin) - 0.5
        by = k * (0.5 * sy - self.up - margin) - 0.5
        return np.array([[ax, 0.0, bx], [0.0, ay, by]])


def crop_window(landmarks_68: np.ndarray, image_size: tuple[int, int], model_5: np.ndarray) -> CropWindow:
    """The EG3D crop window for one frame's 68 landmarks (pixel indices, y down).

    Follows Deep3DFaceRecon's ``align_img`` + EG3D's in-the-wild crop: y-flip,
    POS against the 5 standard 3D points, rescale 300 at 1024, integer
    truncations as the reference code does.
    """
    from hfagp.face3d.face_model import extract_5p

    w0, h0 = image_size
    lm5 = extract_5p(np.asarray(landmarks_68, dtype=np.float64)).copy()
    lm5[:, 1] = h0 - 1 - lm5[:, 1]
    t, s_pos = pos_fit(lm5, model_5)
    s = RESCALE_FACTOR / s_pos
    w, h = int(w0 * s), int(h0 * s)
    left = int(w / 2 - CANVAS_SIZE / 2 + (t[0] - w0 / 2) * s)
    up = int(h / 2 - CANVAS_SIZE / 2 + (h0 / 2 - t[1]) * s)
    return CropWindow(resized_size=(w, h), left=left, up=up, source_size=(w0, h0))


def apply_affine(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to (..., 2) points."""
    return points @ affine[:, :2].T + affine[:, 2]


def crop_intrinsics(size: int = OUTPUT_SIZE) -> np.ndarray:
    """3x3 pixel intrinsics of the crop in continuous coordinates (centres at +0.5)."""
    f = FOCAL_NORMALISED * size
    return np.array([[f, 0.0, size / 2.0], [0.0, f, size / 2.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class HeadPose:
    """A rigid head pose: ``X_cam = R X_bfm + t`` in OpenCV camera coordinates."""

    rotation: np.ndarray  # (3, 3) BFM -> OpenCV camera
    translation: np.ndarray  # (3,)
    reprojection_error: float  # RMS, pixels of the crop


def solve_head_pose(
    points_crop: np.ndarray,
    model_points: np.ndarray,
    size: int = OUTPUT_SIZE,
    initial: HeadPose | None = None,
) -> HeadPose:
    """Rigid pose of the 3D model from its 2D projections in the aligned crop.

    ``points_crop`` are pixel indices of the ``size`` crop; the camera is the
    EG3D one (f = 4.2647 * size, principal point at the centre). SQPnP gives a
    global solution that Levenberg-Marquardt then refines.
    """
    image_points = np.ascontiguousarray(points_crop, dtype=np.float64) + 0.5
    object_points = np.ascontiguousarray(model_points, dtype=np.float64)
    camera = crop_intrinsics(size)
    if initial is None:
        ok, rvec, tvec = cv2.solvePnP(object_points, image_points, camera, None, flags=cv2.SOLVEPNP_SQPNP)
        if not ok:
            raise ValueError("solvePnP failed")
    else:
        rvec = cv2.Rodrigues(initial.rotation)[0]
        tvec = initial.translation.reshape(3, 1).copy()
    rvec, tvec = cv2.solvePnPRefineLM(object_points, image_points, camera, None, rvec, tvec)
    projected = cv2.projectPoints(object_points, rvec, tvec, camera, None)[0].reshape(-1, 2)
    error = float(np.sqrt(np.mean(np.sum((projected - image_points) ** 2, axis=1))))
    return HeadPose(cv2.Rodrigues(rvec)[0], tvec.reshape(3), error)


def project_points(pose: HeadPose, points_3d: np.ndarray, size: int = OUTPUT_SIZE) -> np.ndarray:
    """Project BFM-frame points with a head pose into crop pixel indices (N, 2)."""
    cam = points_3d @ pose.rotation.T + pose.translation
    camera = crop_intrinsics(size)
    uv = cam[:, :2] / cam[:, 2:3] * camera[0, 0] + camera[:2, 2]
    return uv - 0.5


def pose_to_cam2world(pose: HeadPose, radius: float | None = DEFAULT_RADIUS) -> np.ndarray:
    """EG3D cam2world (4x4, OpenCV axes) for a head pose.

    The camera centre in the BFM frame is ``-R^T t``; it is carried into the
    EG3D world (x0.27, offset) and, when ``radius`` is given, moved along its
    direction to that distance from the origin (EG3D's ``fix_pose_orig``).
    ``radius=None`` keeps the un-normalised distance, as HFA-GP's labels do.
    """
    rotation_c2w = pose.rotation.T
    centre = BFM_TO_WORLD_SCALE * (-rotation_c2w @ pose.translation) + BFM_TO_WORLD_OFFSET
    if radius is not None:
        centre = centre / np.linalg.norm(centre) * radius
    cam2world = np.eye(4)
    cam2world[:3, :3] = rotation_c2w
    cam2world[:3, 3] = centre
    return cam2world


def rotation_from_euler(pitch_deg: float, yaw_deg: float, roll_deg: float) -> np.ndarray:
    """BFM -> OpenCV camera rotation for head angles, Deep3DFaceRecon order.

    The head rotation is ``M = Rz(roll) Ry(yaw) Rx(pitch)`` in the BFM frame;
    the camera sees it through the y/z flip, so ``R = diag(1, -1, -1) M``.
    """
    a, b, c = np.radians([pitch_deg, yaw_deg, roll_deg])
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return _FLIP_YZ @ rz @ ry @ rx


def euler_from_rotation(rotation: np.ndarray) -> tuple[float, float, float]:
    """Inverse of :func:`rotation_from_euler`: ``(pitch, yaw, roll)`` in degrees.

    In the BFM frame (x image-right, y up, z out of the face): positive yaw
    turns the face toward image-right, positive pitch turns it down, positive
    roll turns it counter-clockwise as the camera sees it. Mirroring the image
    negates yaw and roll and keeps pitch.
    """
    head = _FLIP_YZ @ rotation
    yaw = np.arcsin(np.clip(-head[2, 0], -1.0, 1.0))
    pitch = np.arctan2(head[2, 1], head[2, 2])
    roll = np.arctan2(head[1, 0], head[0, 0])
    return tuple(float(v) for v in np.degrees([pitch, yaw, roll]))


def bfm_to_world(points_bfm: np.ndarray) -> np.ndarray:
    """BFM-frame points to EG3D world coordinates."""
    return BFM_TO_WORLD_SCALE * np.asarray(points_bfm) + BFM_TO_WORLD_OFFSET
