"""Stage ``split``: the train/test split of a video subject -> ``split.json``.

The test split is the last ``test_fraction`` of the tracked frames (the frames
that have a crop and a camera in ``cameras.parquet``), as in the published
NeRFace/AD-NeRF datasets: the avatar is judged on the end of the video, which
it never saw. No later stage trains on a test frame (frame selection for the
prior and the drivers read this file). Imported datasets get their split from
the dataset's own files instead (``hfagp import``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from hfagp.errors import HfagpError
from hfagp.io.tables import write_split
from hfagp.logs import get_logger

log = get_logger("split")


def tail_split(frames: np.ndarray, test_fraction: float) -> tuple[list[int], list[int]]:
    """Split sorted frame numbers into (train, test) with the last ``ceil(fraction * N)`` frames as test.

    Both sides keep at least one frame; fewer than two frames cannot be split.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    frames = np.sort(np.asarray(frames, dtype=np.int64))
    if len(frames) < 2:
        raise ValueError(f"need at least 2 frames to split into train and test, got {len(frames)}")
    n_test = min(max(1, math.ceil(test_fraction * len(frames))), len(frames) - 1)
    return frames[:-n_test].tolist(), frames[-n_test:].tolist()


def run_split(cameras_path: str | Path, output: str | Path, test_fraction: float) -> dict:
    """Write ``split.json`` from the tracked frames of ``cameras.parquet``."""
    from hfagp.io.tables import read_cameras

    table, _ = read_cameras(cameras_path)
    try:
        train, test = tail_split(table.frame.to_numpy(), test_fraction)
    except ValueError as err:
        raise HfagpError(f"{cameras_path}: {err}; use a longer video or check the tracking (qc/landmarks.png)") from err
    source = f"last {test_fraction:g} of the {len(table)} tracked frames of {cameras_path}"
    write_split(output, train, test, source, test_fraction=test_fraction)
    log.info("split: %d train frames (%d..%d), %d test frames (%d..%d)", len(train), train[0], train[-1], len(test), test[0], test[-1])
    return {"train": train, "test": test}
