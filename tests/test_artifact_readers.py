"""Every artifact reader refuses a file that carries code, and the code never runs.

Each crafted file holds an object whose unpickling would call ``os.system("touch CANARY")``.
The reader must raise an HfagpError naming the file, and CANARY must not exist afterwards.
"""

from __future__ import annotations

import os
import pickle
import types

import numpy as np
import pytest
import torch

from hfagp.errors import HfagpError


class _Payload:
    """Unpickling this calls ``os.system(command)``."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.fixture
def canary(tmp_path):
    path = tmp_path / "CANARY"
    yield path
    assert not path.exists(), "the payload ran"


def _payload(canary) -> _Payload:
    return _Payload(f"touch {canary}")


def _torch_file(path, obj):
    torch.save(obj, path)
    return path


def _refused(match_path, call):
    with pytest.raises(HfagpError) as info:
        call()
    assert str(match_path) in str(info.value)
    return str(info.value)


def test_the_payload_does_run_when_unpickled_unsafely(tmp_path):
    """The test files are real exploits: plain ``pickle.load`` runs them (so the tests below mean something)."""
    canary = tmp_path / "CANARY"
    blob = pickle.dumps({"format": "x", "x": _payload(canary)})
    pickle.loads(blob)  # noqa: S301 - on purpose: proves the payload works
    assert canary.exists()


def test_trained_avatar_checkpoint(tmp_path, canary):
    from hfagp.avatar.checkpoint import CHECKPOINT_FORMAT, load_trained_avatar

    path = _torch_file(tmp_path / "checkpoint.pt", {"format": CHECKPOINT_FORMAT, "driver": _payload(canary)})
    message = _refused(path, lambda: load_trained_avatar(path))
    assert "Nothing in it was run" in message


def test_hfagp_render_refuses_a_crafted_avatar(tmp_path, canary, capsys):
    from hfagp.avatar.checkpoint import CHECKPOINT_FORMAT
    from hfagp.cli import main

    path = _torch_file(tmp_path / "checkpoint.pt", {"format": CHECKPOINT_FORMAT, "driver": _payload(canary)})
    code = main(
        ["render", "--avatar", str(path), "--crops", str(tmp_path / "crops"), "--cameras", str(tmp_path / "c.parquet"),
         "--split", str(tmp_path / "split.json"), "--subject", "s", "--outdir", str(tmp_path / "out")]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert str(path) in err and "refused" in err


def test_latents(tmp_path, canary):
    from hfagp.prior.latents import read_latents

    path = _torch_file(tmp_path / "latents.pt", {"latents": torch.zeros(2, 14, 512), "frames": _payload(canary)})
    _refused(path, lambda: read_latents(path))


def test_resume_state(tmp_path, canary):
    from hfagp.avatar.resume import RESUME_FORMAT, ResumeMixin

    path = _torch_file(tmp_path / "resume.pt", {"format": RESUME_FORMAT, "rng": [_payload(canary)]})
    trainer = types.SimpleNamespace(paths=types.SimpleNamespace(resume=path))
    _refused(path, lambda: ResumeMixin._maybe_resume(trainer))


def test_resume_state_of_hfagp_0_1_with_numpy_rng_loads(tmp_path):
    """resume.pt files of hfagp 0.1 hold numpy's RNG state as an array: data only, so they still load."""
    from hfagp.io.artifacts import load_torch_artifact
    from hfagp.runtime import set_rng_state

    np.random.seed(123)
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": __import__("random").getstate()}
    expected = np.random.rand(3)
    path = _torch_file(tmp_path / "resume.pt", {"format": "hfagp-driver-resume-1", "rng": [state]})
    loaded = load_torch_artifact(path, "resume file", "delete it", allow_numpy_arrays=True)
    np.random.seed(0)
    set_rng_state(loaded["rng"][0])
    assert np.array_equal(np.random.rand(3), expected)


def test_numpy_allowance_still_refuses_code_inside_an_object_array(tmp_path, canary):
    from hfagp.io.artifacts import load_torch_artifact

    array = np.array([_payload(canary)], dtype=object)
    path = _torch_file(tmp_path / "resume.pt", {"rng": array})
    _refused(path, lambda: load_torch_artifact(path, "resume file", "delete it", allow_numpy_arrays=True))


def test_rng_state_is_plain_and_round_trips(tmp_path):
    """New resume files need no numpy allowance: the RNG state is tensors, numbers and tuples."""
    from hfagp.io.artifacts import load_torch_artifact
    from hfagp.runtime import rng_state, set_rng_state

    np.random.seed(7)
    torch.manual_seed(7)
    path = _torch_file(tmp_path / "rng.pt", rng_state())
    expected = (np.random.rand(2), torch.rand(2))
    set_rng_state(load_torch_artifact(path, "rng", "delete it"))
    assert np.array_equal(np.random.rand(2), expected[0]) and torch.equal(torch.rand(2), expected[1])


def test_eg3d_checkpoint(tmp_path, canary):
    from hfagp import eg3d

    path = _torch_file(tmp_path / "generator_tuned.pt", {"format": "hfagp-eg3d", "version": 1, "init_kwargs": _payload(canary)})
    _refused(path, lambda: eg3d.load_generator(path))


def test_eg3d_network_pickle(tmp_path, canary):
    from hfagp import eg3d

    path = tmp_path / "network.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _payload(canary)}, protocol=4))
    _refused(path, lambda: eg3d.load_generator(path))


def test_prior_npz(tmp_path, canary):
    from hfagp.prior.pca import read_prior

    path = tmp_path / "prior.npz"
    np.savez(path, mean=np.zeros((14, 512)), basis=np.array([_payload(canary)], dtype=object))
    message = _refused(path, lambda: read_prior(path))
    assert "object array" in message


def test_audio_features_npy(tmp_path, canary):
    from hfagp.datasets.common import load_audio_array
    from hfagp.io.artifacts import load_npy

    path = tmp_path / "audio_features.npy"
    np.save(path, np.array([_payload(canary)], dtype=object), allow_pickle=True)
    _refused(path, lambda: load_npy(path, "audio features", "rerun the audio stage"))
    _refused(path, lambda: load_audio_array(path, 1))


def test_lpips_backbone_file(tmp_path, canary):
    from hfagp.losses.lpips import load_lpips

    path = _torch_file(tmp_path / "alexnet.pth", {"features.0.weight": _payload(canary)})
    _refused(path, lambda: load_lpips("alex", weights=path))


def test_missing_and_damaged_files_name_the_file_and_the_fix(tmp_path):
    from hfagp.io.artifacts import load_npz, load_torch_artifact, read_json, read_parquet

    missing = tmp_path / "nope.pt"
    with pytest.raises(HfagpError, match="not found; run it"):
        load_torch_artifact(missing, "thing", "run it")
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(HfagpError, match="damaged.pt"):
        load_torch_artifact(damaged, "thing", "run it")
    for reader, name in ((load_npz, "d.npz"), (read_json, "d.json"), (read_parquet, "d.parquet")):
        path = tmp_path / name
        path.write_bytes(b"\x00garbage{")
        with pytest.raises(HfagpError, match=name):
            reader(path, "thing", "run it")


def test_numpy_pickle_reader_reads_arrays_and_refuses_code(tmp_path, canary):
    from hfagp.face3d.morphable import sparse_model
    from hfagp.io.artifacts import load_numpy_pickle

    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"param_std": np.arange(4, dtype=np.float32), "names": ["a", ("b", 1)]}))
    data = load_numpy_pickle(plain, "stats", "reinstall it")
    assert np.array_equal(data["param_std"], np.arange(4, dtype=np.float32)) and data["names"] == ["a", ("b", 1)]
    crafted = tmp_path / "param_whitening.pkl"
    crafted.write_bytes(pickle.dumps({"param_std": _payload(canary)}))
    _refused(crafted, lambda: load_numpy_pickle(crafted, "stats", "reinstall it"))
    assert sparse_model().identity_basis.shape == (68, 3, 40)  # the shipped 3DDFA file reads through it
