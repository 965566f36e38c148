"""Display orientation of decoded video frames: portrait phone videos are stored sideways.

A phone that films in portrait usually encodes the sensor's landscape frames
and adds a *display matrix* (the MP4/MOV ``rotate`` tag, FFmpeg's
``AV_FRAME_DATA_DISPLAYMATRIX``) that tells players to turn the picture
upright. Decoding with PyAV returns the stored, sideways pixels, on which a
face detector finds nothing, so every stage that reads pixels from a video
turns them upright first, as players and FFmpeg's own command line
(``-autorotate``, on by default) do:

* :func:`quarter_turns`: the counter-clockwise quarter turns (0-3) that make
  a decoded frame upright, from the display matrix's counter-clockwise angle
  (:func:`rotation_degrees`, FFmpeg's ``av_display_rotation_get``; PyAV's
  ``VideoFrame.rotation`` where it exists), so a stored-sideways portrait
  video with the common ``rotate=90`` tag reads -90 and is turned 90 degrees
  clockwise;
* :func:`upright_rgb`: the frame as RGB uint8 (H, W, 3), turned upright.

A display matrix that mirrors the picture, or turns it by an angle that is not
a multiple of 90 degrees, is refused with a clear error instead of being
decoded wrongly (no phone writes either; ``ffmpeg -i in.mp4 out.mp4``
re-encodes any video upright).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hfagp.errors import HfagpError

_REENCODE = ("re-encode it upright (ffmpeg -i {src} -c:a copy upright.mp4 applies the display matrix) "
             "and point the subject's `video` at that file")


def _display_matrix(frame) -> np.ndarray | None:
    """The frame's 3x3 display matrix as int64 (16.16 / 2.30 fixed point as FFmpeg stores it), or None."""
    container = frame.side_data
    for item in container:
        # PyAV 18.1.1 made the side data a mapping (iterating gives its types); before, iterating gave the entries.
        data = item if hasattr(item, "type") else container[item]
        if data.type.name == "DISPLAYMATRIX":
            return np.frombuffer(bytes(data), dtype="<i4").astype(np.int64).reshape(3, 3)
    return None


def rotation_degrees(matrix: np.ndarray) -> float:
    """Counter-clockwise angle (degrees, (-180, 180]) by which a display matrix turns the picture.

    As FFmpeg's ``av_display_rotation_get``: the angle of the matrix's first row,
    each column normalised by its scale, negated (FFmpeg's matrices map
    display to stored coordinates with y pointing down).
    """
    first = np.hypot(float(matrix[0, 0]), float(matrix[1, 0]))
    second = np.hypot(float(matrix[0, 1]), float(matrix[1, 1]))
    if first == 0.0 or second == 0.0:
        return 0.0
    angle = -np.degrees(np.arctan2(float(matrix[0, 1]) / second, float(matrix[0, 0]) / first))
    return 180.0 if angle <= -180.0 else float(angle) + 0.0


def quarter_turns(frame, source: str | Path = "the video") -> int:
    """Counter-clockwise quarter turns (0-3) that put a decoded PyAV ``VideoFrame`` upright.

    0 without a display matrix. Raises :class:`HfagpError` naming ``source``
    for a mirroring matrix or an angle that is not a multiple of 90 degrees.
    """
    matrix = _display_matrix(frame)
    if matrix is None:
        return 0
    if matrix[0, 0] * matrix[1, 1] - matrix[0, 1] * matrix[1, 0] < 0:
        raise HfagpError(f"{source}: its display matrix mirrors the picture, which hfagp does not apply; "
                         + _REENCODE.format(src=source))
    degrees = int(round(rotation_degrees(matrix)))
    if degrees % 90:
        raise HfagpError(f"{source}: its display matrix turns the picture by {degrees} degrees, not a multiple of 90; "
                         + _REENCODE.format(src=source))
    return (degrees // 90) % 4


def upright_rgb(frame, source: str | Path = "the video") -> np.ndarray:
    """A decoded PyAV ``VideoFrame`` as RGB uint8 (H, W, 3), turned as its display matrix says (see :func:`quarter_turns`)."""
    rgb = frame.to_ndarray(format="rgb24")
    turns = quarter_turns(frame, source)
    # np.rot90 turns counter-clockwise as displayed (rows down, columns right), like the matrix's angle.
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb
