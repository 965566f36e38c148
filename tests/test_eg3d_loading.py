"""load_generator / save_generator: our checkpoint round trip, the safe unpickler, and clear errors."""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import sys
import types

import numpy as np
import pytest
import torch
from conftest import require_fixture

from hfagp import eg3d
from hfagp.eg3d import official_pickle
from hfagp.errors import HfagpError


@pytest.fixture(scope="module")
def small_G() -> eg3d.TriPlaneGenerator:
    G = eg3d.demo_generator(seed=3)
    G.neural_rendering_resolution = 16
    return G


def test_own_checkpoint_round_trip(tmp_path, small_G):
    path = tmp_path / "G.pt"
    eg3d.save_generator(small_G, path)
    payload = torch.load(path, weights_only=True)  # loadable without executing code
    assert payload["format"] == "hfagp-eg3d" and payload["version"] == 1
    loaded = eg3d.load_generator(path)
    assert loaded.neural_rendering_resolution == 16
    assert not loaded.training
    for (k1, v1), (k2, v2) in zip(small_G.state_dict().items(), loaded.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2)
    ws = small_G.mapping(torch.randn(1, 512), torch.zeros(1, 25)).detach()
    c = torch.tensor([1, 0, 0, 0, 0, -1, 0, 0, 0, 0, -1, 2.7, 0, 0, 0, 1, 4.2647, 0, 0.5, 0, 4.2647, 0.5, 0, 0, 1.0])
    with torch.no_grad():
        a = small_G.synthesis(ws, c[None], deterministic=True, noise_mode="const")
        b = loaded.synthesis(ws, c[None], deterministic=True, noise_mode="const")
    assert torch.equal(a["image"], b["image"])


def test_missing_file(tmp_path):
    with pytest.raises(HfagpError, match="not found"):
        eg3d.load_generator(tmp_path / "nope.pkl")


def test_not_a_pickle(tmp_path):
    path = tmp_path / "notes.pkl"
    path.write_text("this is not a network\n")
    with pytest.raises(HfagpError, match="notes.pkl") as info:
        eg3d.load_generator(path)
    assert "not an EG3D network pickle" in str(info.value)


def test_truncated_network_pickle(tmp_path):
    source = require_fixture("eg3d", "sr512", "network.pkl")
    path = tmp_path / "truncated.pkl"
    path.write_bytes(source.read_bytes()[: source.stat().st_size // 3])
    with pytest.raises(HfagpError, match="truncated.pkl"):
        eg3d.load_generator(path)


def test_truncated_own_checkpoint(tmp_path, small_G):
    path = tmp_path / "G.pt"
    eg3d.save_generator(small_G, path)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(HfagpError, match="G.pt"):
        eg3d.load_generator(path)


def test_pickle_without_g_ema(tmp_path):
    path = tmp_path / "no_gema.pkl"
    path.write_bytes(pickle.dumps({"G": None, "D": None}, protocol=4))
    with pytest.raises(HfagpError, match="no 'G_ema'") as info:
        eg3d.load_generator(path)
    assert "no_gema.pkl" in str(info.value)


def test_torch_file_that_is_not_our_checkpoint(tmp_path):
    path = tmp_path / "state.pt"
    torch.save({"weight": torch.zeros(2)}, path)
    with pytest.raises(HfagpError, match="not an hfagp-eg3d checkpoint"):
        eg3d.load_generator(path)


def test_wrong_shapes_are_reported(tmp_path, small_G):
    path = tmp_path / "bad_shapes.pt"
    eg3d.save_generator(small_G, path)
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["decoder.net.0.weight"] = torch.zeros(65, 32)
    del payload["state_dict"]["decoder.net.2.bias"]
    torch.save(payload, path)
    with pytest.raises(HfagpError) as info:
        eg3d.load_generator(path)
    message = str(info.value)
    assert "bad_shapes.pt" in message
    assert "decoder.net.0.weight (65, 32) (expected (64, 32))" in message
    assert "decoder.net.2.bias" in message


class _RunsShell:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_non_whitelisted_global_is_refused_without_executing(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _RunsShell(str(marker))}, protocol=4))
    globals_named = [arg for op, arg, _ in pickletools.genops(path.read_bytes()) if op.name in ("SHORT_BINUNICODE",)]
    assert "system" in globals_named  # the pickle really references os.system / posix.system
    with pytest.raises(HfagpError, match="refusing to load global") as info:
        eg3d.load_generator(path)
    assert "evil.pkl" in str(info.value)
    assert not marker.exists()


@pytest.fixture()
def official_like_pickle(monkeypatch):
    """A function pickling ``{name: meta}`` like an official snapshot: each value reduces to
    ``torch_utils.persistence._reconstruct_persistent_obj(meta)``."""
    package = types.ModuleType("torch_utils")
    module = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):  # pragma: no cover - only its name is pickled
        raise AssertionError("never called")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    module._reconstruct_persistent_obj = _reconstruct_persistent_obj
    package.persistence = module
    monkeypatch.setitem(sys.modules, "torch_utils", package)
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", module)

    class Meta:
        def __init__(self, meta: dict) -> None:
            self.meta = meta

    class Pickler(pickle.Pickler):
        def reducer_override(self, obj):
            if isinstance(obj, Meta):
                return (_reconstruct_persistent_obj, (obj.meta,))
            return NotImplemented

    def dump(objects: dict) -> bytes:
        buffer = io.BytesIO()
        Pickler(buffer, protocol=4).dump({name: Meta(meta) for name, meta in objects.items()})
        return buffer.getvalue()

    return dump


def persistent_meta(class_name: str, module_src: str = "raise SystemExit(1)\n") -> dict:
    return {
        "type": "class",
        "version": 6,
        "module_src": module_src,
        "class_name": class_name,
        "state": {"_parameters": {}, "_buffers": {}, "_modules": {}},
    }


def test_g_ema_of_another_class_is_refused(tmp_path, official_like_pickle):
    """A persistent object that is not a TriPlaneGenerator (e.g. a StyleGAN2 Generator pickle)."""
    path = tmp_path / "stylegan2.pkl"
    path.write_bytes(official_like_pickle({"G_ema": persistent_meta("Generator")}))
    with pytest.raises(HfagpError, match="is a Generator, not an EG3D TriPlaneGenerator"):
        eg3d.load_generator(path)


def _rename_global_module(data: bytes, old: str, new: str) -> bytes:
    """Rename a module in a protocol-4 pickle (fixing the SHORT_BINUNICODE length and the frame length)."""
    before = b"\x8c" + bytes([len(old)]) + old.encode()
    after = b"\x8c" + bytes([len(new)]) + new.encode()
    assert data.count(before) == 1 and data[:3] == b"\x80\x04\x95"
    frame_length = int.from_bytes(data[3:11], "little") + len(after) - len(before)
    return data[:3] + frame_length.to_bytes(8, "little") + data[11:].replace(before, after)


def test_numpy_scalar_names_of_numpy1_and_numpy2_are_accepted():
    modern = pickle.dumps(np.float64(0.125), protocol=4)  # numpy 2 writes numpy._core.multiarray.scalar
    legacy = _rename_global_module(modern, "numpy._core.multiarray", "numpy.core.multiarray")
    for data in (modern, legacy):
        value = official_pickle.SafeNetworkUnpickler(io.BytesIO(data)).load()
        assert isinstance(value, np.float64) and value == 0.125


def test_unpickler_stubs_never_run_module_source(official_like_pickle):
    meta = persistent_meta("TriPlaneGenerator", module_src="import os\nos.system('exit 1')\n")
    obj = official_pickle.SafeNetworkUnpickler(io.BytesIO(official_like_pickle({"G_ema": meta}))).load()["G_ema"]
    assert isinstance(obj, official_pickle.PersistentObject)
    assert obj.class_name == "TriPlaneGenerator"
    assert obj.module_src_chars == len(meta["module_src"])


def test_generator_without_weights_is_reported(tmp_path, official_like_pickle):
    meta = persistent_meta("TriPlaneGenerator")
    meta["state"].update(_init_kwargs=dict(eg3d.DEMO_INIT_KWARGS), rendering_kwargs=eg3d.DEMO_INIT_KWARGS["rendering_kwargs"])
    meta["state"]["neural_rendering_resolution"] = 32
    path = tmp_path / "empty.pkl"
    path.write_bytes(official_like_pickle({"G_ema": meta}))
    with pytest.raises(HfagpError, match="missing") as info:
        eg3d.load_generator(path)
    assert "empty.pkl" in str(info.value)


def test_extra_root_buffer_is_tolerated_but_nested_extras_are_not(tmp_path, small_G):
    path = tmp_path / "extra.pt"
    eg3d.save_generator(small_G, path)
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["dataset_label_std"] = torch.ones(25)
    torch.save(payload, path)
    assert eg3d.load_generator(path).img_resolution == 128
    payload["state_dict"]["decoder.extra"] = torch.ones(1)
    torch.save(payload, path)
    with pytest.raises(HfagpError, match="unexpected"):
        eg3d.load_generator(path)
