"""Frame selection for the inversion: coverage of poses/expressions, train split only, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hfagp.cli import main
from hfagp.eg3d import camera
from hfagp.errors import HfagpError
from hfagp.io.tables import write_expressions, write_split
from hfagp.prior.selection import farthest_point_order, select_frames


def write_inputs(folder, n=40, test=8, expression_size=6, seed=0):
    """cameras.parquet, split.json, expressions.parquet of n frames (the last `test` are the test split)."""
    rng = np.random.default_rng(seed)
    yaw = rng.normal(0, 5, n)
    pitch = rng.normal(0, 3, n)
    yaw[5], pitch[9] = 25.0, -15.0  # rare poses inside the train split
    rows = [
        {"frame": f, "name": f"{f:06d}.png", "yaw": yaw[f], "pitch": pitch[f], "roll": 0.0,
         "label": camera.camera_label(camera.look_at_cam2world(yaw[f], pitch[f]))}
        for f in range(n)
    ]
    pd.DataFrame(rows).to_parquet(folder / "cameras.parquet")
    write_split(folder / "split.json", list(range(n - test)), list(range(n - test, n)), "test")
    coefficients = rng.normal(0, 1, (n, expression_size))
    coefficients[12] = 8.0  # a rare expression
    table = pd.DataFrame({"frame": range(n), "flag": "ok", "expression": list(coefficients)})
    write_expressions(folder / "expressions.parquet", table, {"model": "test"})
    return folder / "cameras.parquet", folder / "split.json", folder / "expressions.parquet"


def test_farthest_point_picks_the_extremes_first():
    points = np.array([[0.0, 0], [0.1, 0], [5, 0], [-4, 0], [0, 3]])
    order = farthest_point_order(points, 4)
    assert order[0] in (0, 1) and set(order[1:]) == {2, 3, 4}
    assert farthest_point_order(points, 5) == farthest_point_order(points, 5)


def test_selection_covers_rare_poses_and_expressions_and_never_test_frames(tmp_path):
    cameras, split, expressions = write_inputs(tmp_path)
    record = select_frames(cameras, split, expressions, k=8)
    assert len(record["frames"]) == 8 == len(set(record["frames"]))
    assert max(record["frames"]) < 32, "test frames are never selected"
    assert {5, 9, 12} <= set(record["frames"])
    assert record["frames"] == sorted(record["selection_order"])
    assert record["candidates"] == 32 and record["method"] == "farthest-point"


def test_cli_writes_selection_json_and_rejects_k_larger_than_train(tmp_path, caplog):
    cameras, split, expressions = write_inputs(tmp_path)
    out = tmp_path / "inversion" / "selection.json"
    argv = ["select-frames", "--cameras", str(cameras), "--split", str(split), "--expressions", str(expressions)]
    assert main(argv + ["--frames", "5", "-o", str(out)]) == 0
    assert len(json.loads(out.read_text())["frames"]) == 5
    with pytest.raises(HfagpError, match="only 32 train frames"):
        select_frames(cameras, split, expressions, k=33)
    assert main(argv + ["--frames", "40", "-o", str(tmp_path / "x.json")]) == 2
    assert not (tmp_path / "x.json").exists()
