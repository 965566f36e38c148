"""hfagp.losses.lpips: torchvision-compatible backbones, LPIPS v0.1 maths, weight-file handling.

The backbone weights used here are numpy-seeded stand-ins written with
torchvision's key names (``seeded_backbone_state``); they are not LPIPS and
only exercise the computation. ``tests/data/lpips_reference.json`` holds
distances the real ``lpips`` package computed with the same stand-ins.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hfagp.errors import HfagpError
from hfagp.losses.lpips import (
    BACKBONE_FILES,
    BACKBONE_URLS,
    LPIPS,
    AlexNetFeatures,
    LpipsWeightsMissing,
    VGG16Features,
    calibration_path,
    canonical_backbone,
    default_backbone_path,
    expected_backbone_shapes,
    load_lpips,
    seeded_backbone_state,
    tap_channels,
)

REFERENCE = Path(__file__).parent / "data" / "lpips_reference.json"

# torchvision alexnet().features / vgg16().features state_dict: key -> shape
# (from torchvision's published architectures).
TORCHVISION_ALEXNET = {
    "0.weight": (64, 3, 11, 11), "0.bias": (64,),
    "3.weight": (192, 64, 5, 5), "3.bias": (192,),
    "6.weight": (384, 192, 3, 3), "6.bias": (384,),
    "8.weight": (256, 384, 3, 3), "8.bias": (256,),
    "10.weight": (256, 256, 3, 3), "10.bias": (256,),
}
TORCHVISION_VGG16 = {
    "0.weight": (64, 3, 3, 3), "0.bias": (64,),
    "2.weight": (64, 64, 3, 3), "2.bias": (64,),
    "5.weight": (128, 64, 3, 3), "5.bias": (128,),
    "7.weight": (128, 128, 3, 3), "7.bias": (128,),
    "10.weight": (256, 128, 3, 3), "10.bias": (256,),
    "12.weight": (256, 256, 3, 3), "12.bias": (256,),
    "14.weight": (256, 256, 3, 3), "14.bias": (256,),
    "17.weight": (512, 256, 3, 3), "17.bias": (512,),
    "19.weight": (512, 512, 3, 3), "19.bias": (512,),
    "21.weight": (512, 512, 3, 3), "21.bias": (512,),
    "24.weight": (512, 512, 3, 3), "24.bias": (512,),
    "26.weight": (512, 512, 3, 3), "26.bias": (512,),
    "28.weight": (512, 512, 3, 3), "28.bias": (512,),
}


def write_backbone(path: Path, backbone: str, seed: int = 0) -> Path:
    """Save a seeded stand-in backbone with torchvision key names (as in the official files)."""
    torch.save(seeded_backbone_state(backbone, seed), path)
    return path


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("lpips_weights")
    write_backbone(folder / BACKBONE_FILES["alex"], "alex")
    write_backbone(folder / BACKBONE_FILES["vgg"], "vgg")
    return folder


@pytest.fixture(scope="module")
def alex(weights_dir: Path) -> LPIPS:
    return load_lpips("alex", weights_dir / BACKBONE_FILES["alex"])


@pytest.fixture(scope="module")
def vgg(weights_dir: Path) -> LPIPS:
    return load_lpips("vgg", weights_dir / BACKBONE_FILES["vgg"])


def image_pair(seed: int, shape: list[int], noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Same recipe as tests/data/make_lpips_reference.py."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=shape)
    y = np.clip(x + noise * rng.standard_normal(shape), -1.0, 1.0)
    return x.astype(np.float32), y.astype(np.float32)


def images(seed: int, shape=(2, 3, 64, 64)) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.uniform(-1, 1, size=shape).astype(np.float32))


# --- architecture -----------------------------------------------------------


@pytest.mark.parametrize("module, table", [(AlexNetFeatures, TORCHVISION_ALEXNET), (VGG16Features, TORCHVISION_VGG16)])
def test_features_state_dict_matches_torchvision(module, table):
    shapes = {k: tuple(v.shape) for k, v in module().state_dict().items()}
    assert shapes == table
    assert list(shapes) == list(table)  # same order as torchvision


def test_expected_shapes_and_taps():
    assert expected_backbone_shapes("alex") == TORCHVISION_ALEXNET
    assert expected_backbone_shapes("vgg16") == TORCHVISION_VGG16
    assert tap_channels("alex") == (64, 192, 384, 256, 256)
    assert tap_channels("vgg") == (64, 128, 256, 512, 512)


def test_tap_resolutions():
    x = torch.zeros(1, 3, 64, 64)
    assert [tuple(t.shape[1:]) for t in AlexNetFeatures()(x)] == [(64, 15, 15), (192, 7, 7), (384, 3, 3), (256, 3, 3), (256, 3, 3)]
    assert [tuple(t.shape[1:]) for t in VGG16Features()(x)] == [(64, 64, 64), (128, 32, 32), (256, 16, 16), (512, 8, 8), (512, 4, 4)]


def test_calibration_files_from_lpips_package():
    for name in ("alex", "vgg"):
        path = calibration_path(name)
        assert path.is_file() and path.parts[-3:] == ("weights", "v0.1", f"{name}.pth")


def test_unknown_backbone():
    with pytest.raises(HfagpError, match="squeeze"):
        canonical_backbone("squeeze")


# --- metric properties ------------------------------------------------------


@pytest.mark.parametrize("name", ["alex", "vgg"])
def test_metric_properties(name, request):
    model = request.getfixturevalue(name)
    x, y = images(1), images(2)
    with torch.no_grad():
        assert torch.equal(model(x, x), torch.zeros(2))
        dxy, dyx = model(x, y), model(y, x)
        assert dxy.shape == (2,)
        assert torch.allclose(dxy, dyx, rtol=1e-6, atol=1e-7)
        assert (dxy > 0).all()
        per_layer = model.per_layer(x, y)
        assert per_layer.shape == (2, 5)
        assert torch.allclose(per_layer.sum(1), dxy, rtol=1e-6)


def test_distance_grows_with_noise(alex):
    x = images(3, (1, 3, 96, 96)) * 0.5
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(x.shape, generator=gen)
    with torch.no_grad():
        d = [alex(x, x + s * noise).item() for s in (0.02, 0.1, 0.3, 1.0)]
    assert all(a < b for a, b in zip(d, d[1:])), d


def test_gradients_flow_and_parameters_frozen(alex):
    x = images(4, (1, 3, 64, 64)).requires_grad_(True)
    y = images(5, (1, 3, 64, 64))
    alex(x, y).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in alex.parameters())
    alex.train()
    assert not alex.training and not alex.features.training


def test_reference_distances_of_lpips_package(weights_dir, tmp_path):
    """Matches lpips==0.1.4 (with torchvision) on seeded stand-in backbones within 1e-5."""
    data = json.loads(REFERENCE.read_text())
    assert len(data["cases"]) >= 4
    models: dict[tuple[str, int], LPIPS] = {}
    for case in data["cases"]:
        key = (case["backbone"], case["backbone_seed"])
        if key not in models:
            path = write_backbone(tmp_path / f"{key[0]}{key[1]}.pth", key[0], key[1])
            models[key] = load_lpips(key[0], path)
        x, y = image_pair(case["image_seed"], case["shape"], case["noise"])
        with torch.no_grad():
            d = models[key](torch.from_numpy(x), torch.from_numpy(y))
        ref = torch.tensor(case["distances"])
        assert d.shape == ref.shape
        assert torch.allclose(d, ref, rtol=1e-4, atol=1e-5), (case, d.tolist())


# --- weight files -----------------------------------------------------------


def test_default_backbone_path_uses_torch_home(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert default_backbone_path("alex") == tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    assert default_backbone_path("vgg") == tmp_path / "hub" / "checkpoints" / "vgg16-397923af.pth"


def test_load_from_hub_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    write_backbone(tmp_path / "hub" / "checkpoints" / BACKBONE_FILES["alex"], "alex")
    model = load_lpips()
    assert model.backbone == "alex"


def test_missing_file_names_path_url_and_config_key(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(LpipsWeightsMissing) as info:
        load_lpips("alex")
    expected = tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    assert info.value.path == expected
    message = str(info.value)
    assert str(expected) in message and BACKBONE_URLS["alex"] in message and "lpips.weights" in message
    assert isinstance(info.value, HfagpError)
    explicit = tmp_path / "nowhere" / "vgg.pth"
    with pytest.raises(LpipsWeightsMissing, match=str(explicit)):
        load_lpips("vgg", explicit)


def test_wrong_shapes_or_keys_or_corrupt_file(tmp_path):
    state = seeded_backbone_state("alex", 0)
    state["features.3.weight"] = torch.zeros(192, 64, 3, 3)
    bad_shape = tmp_path / "bad_shape.pth"
    torch.save(state, bad_shape)
    with pytest.raises(HfagpError, match="bad_shape.pth.*features.3.weight"):
        load_lpips("alex", bad_shape)
    wrong_net = write_backbone(tmp_path / "vgg_as_alex.pth", "vgg")
    with pytest.raises(HfagpError, match="vgg_as_alex.pth"):
        load_lpips("alex", wrong_net)
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(HfagpError, match="corrupt.pth"):
        load_lpips("alex", corrupt)


def test_bare_features_state_dict_loads(tmp_path, alex):
    state = {k[len("features."):]: v for k, v in seeded_backbone_state("alex", 0).items() if k.startswith("features.")}
    path = tmp_path / "features_only.pth"
    torch.save(state, path)
    model = load_lpips("alex", path)
    x, y = images(6), images(7)
    with torch.no_grad():
        assert torch.equal(model(x, y), alex(x, y))
