"""LPIPS v0.1 (Zhang et al. 2018) without torchvision.

The perceptual distance runs an ImageNet classifier's convolutional trunk
(AlexNet or VGG16) on both images, taps five ReLU outputs, scales every tap
to unit length along channels, squares the difference, weights the channels
with the calibrated 1x1 convolutions of LPIPS v0.1, averages over space and
sums over the five taps.

Two weight files are involved:

* the **calibration** weights (``lin0..lin4``, a few KB), shipped by the
  ``lpips`` pip package in ``lpips/weights/v0.1/{alex,vgg}.pth``. The package
  is installed with ``--no-deps`` only for these files and is never imported
  (it imports torchvision); we locate it with :func:`hfagp.io.paths.package_dir`.
* the **backbone** weights: torchvision's ImageNet checkpoints
  ``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth``. torchvision downloads
  them into the torch hub cache; these machines are offline, so the user
  fetches them once (see :func:`missing_weights_message`) and either puts them
  in the hub cache or names the file with ``lpips.weights`` in config.yaml.

:class:`AlexNetFeatures` / :class:`VGG16Features` are plain ``nn.Sequential``
stacks whose layer indices and ``state_dict`` keys equal torchvision's
``alexnet().features`` / ``vgg16().features``, so the ``features.*`` entries of
the official files load directly (classifier entries are ignored).

A backbone with random weights is *not* LPIPS. :func:`load_lpips` only ever
builds one from a real weight file and raises :class:`LpipsWeightsMissing`
otherwise; callers (training, inversion, evaluation) decide how to degrade.
:func:`seeded_backbone_state` exists solely so tests and benchmarks can write
a stand-in file with the right keys and shapes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hfagp.errors import HfagpError
from hfagp.io.paths import package_dir

BACKBONES = ("alex", "vgg")
BACKBONE_ALIASES = {"alex": "alex", "alexnet": "alex", "vgg": "vgg", "vgg16": "vgg"}

# torchvision's ImageNet checkpoints (file name in the hub cache, download URL).
BACKBONE_FILES = {
    "alex": "alexnet-owt-7be5be79.pth",
    "vgg": "vgg16-397923af.pth",
}
BACKBONE_URLS = {name: f"https://download.pytorch.org/models/{fname}" for name, fname in BACKBONE_FILES.items()}

# LPIPS v0.1 input scaling: x' = (x - shift) / scale, x in [-1, 1].
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
NORM_EPS = 1e-10  # added to the channel norm before dividing (LPIPS v0.1)
CALIBRATION_VERSION = "v0.1"
CONFIG_KEY = "lpips.weights"

# torchvision ``features`` layer lists: ("conv", in, out, kernel, stride, padding),
# ("relu",), ("pool", kernel, stride). Indices are the state_dict indices.
ALEXNET_LAYERS: tuple[tuple, ...] = (
    ("conv", 3, 64, 11, 4, 2), ("relu",), ("pool", 3, 2),
    ("conv", 64, 192, 5, 1, 2), ("relu",), ("pool", 3, 2),
    ("conv", 192, 384, 3, 1, 1), ("relu",),
    ("conv", 384, 256, 3, 1, 1), ("relu",),
    ("conv", 256, 256, 3, 1, 1), ("relu",), ("pool", 3, 2),
)
# Indices of the ReLU outputs LPIPS taps (relu1..relu5).
ALEXNET_TAPS = (1, 4, 7, 9, 11)

VGG16_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
# relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
VGG16_TAPS = (3, 8, 15, 22, 29)


class LpipsWeightsMissing(HfagpError):
    """The LPIPS backbone weight file does not exist; ``path`` is where it was expected."""

    def __init__(self, message: str, path: Path, backbone: str) -> None:
        super().__init__(message)
        self.path = Path(path)
        self.backbone = backbone


def canonical_backbone(backbone: str) -> str:
    """Map ``alex``/``alexnet``/``vgg``/``vgg16`` to ``alex`` or ``vgg``; anything else is an HfagpError."""
    name = BACKBONE_ALIASES.get(str(backbone).lower())
    if name is None:
        raise HfagpError(
            f"unknown LPIPS backbone {backbone!r}; set lpips.backbone in config.yaml to one of {', '.join(BACKBONES)}"
        )
    return name


def _vgg16_layers() -> tuple[tuple, ...]:
    """Expand :data:`VGG16_CONFIG` into the layer tuple format of :data:`ALEXNET_LAYERS`."""
    layers: list[tuple] = []
    channels = 3
    for item in VGG16_CONFIG:
        if item == "M":
            layers.append(("pool", 2, 2))
        else:
            layers.append(("conv", channels, int(item), 3, 1, 1))
            layers.append(("relu",))
            channels = int(item)
    return tuple(layers)


VGG16_LAYERS = _vgg16_layers()


def backbone_layers(backbone: str) -> tuple[tuple[tuple, ...], tuple[int, ...]]:
    """Layer specification and tap indices of a backbone."""
    name = canonical_backbone(backbone)
    return (ALEXNET_LAYERS, ALEXNET_TAPS) if name == "alex" else (VGG16_LAYERS, VGG16_TAPS)


def expected_backbone_shapes(backbone: str) -> dict[str, tuple[int, ...]]:
    """``{key: shape}`` of the features ``state_dict`` (keys without the ``features.`` prefix)."""
    layers, _ = backbone_layers(backbone)
    shapes: dict[str, tuple[int, ...]] = {}
    for index, spec in enumerate(layers):
        if spec[0] == "conv":
            _, cin, cout, k, _, _ = spec
            shapes[f"{index}.weight"] = (cout, cin, k, k)
            shapes[f"{index}.bias"] = (cout,)
    return shapes


def tap_channels(backbone: str) -> tuple[int, ...]:
    """Channel count of each of the five tapped layers."""
    layers, taps = backbone_layers(backbone)
    channels = []
    for tap in taps:
        convs = [spec for spec in layers[: tap + 1] if spec[0] == "conv"]
        channels.append(convs[-1][2])
    return tuple(channels)


class BackboneFeatures(nn.Sequential):
    """A torchvision-compatible ``features`` stack that returns the LPIPS taps.

    ``state_dict()`` keys are ``<index>.weight`` / ``<index>.bias`` exactly as
    in torchvision's ``features`` module. ReLUs are not in-place.
    """

    def __init__(self, layers: tuple[tuple, ...], taps: tuple[int, ...]) -> None:
        modules: list[nn.Module] = []
        for spec in layers:
            if spec[0] == "conv":
                _, cin, cout, k, stride, pad = spec
                modules.append(nn.Conv2d(cin, cout, k, stride=stride, padding=pad))
            elif spec[0] == "relu":
                modules.append(nn.ReLU(inplace=False))
            else:
                modules.append(nn.MaxPool2d(kernel_size=spec[1], stride=spec[2]))
        super().__init__(*modules)
        self.taps = tuple(taps)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # type: ignore[override]
        """Run up to the last tap and return the tapped activations."""
        outputs = []
        last = self.taps[-1]
        for index, module in enumerate(self):
            x = module(x)
            if index in self.taps:
                outputs.append(x)
            if index == last:
                break
        return outputs


class AlexNetFeatures(BackboneFeatures):
    """torchvision ``alexnet().features`` (taps relu1..relu5)."""

    def __init__(self) -> None:
        super().__init__(ALEXNET_LAYERS, ALEXNET_TAPS)


class VGG16Features(BackboneFeatures):
    """torchvision ``vgg16().features`` (taps relu1_2, relu2_2, relu3_3, relu4_3, relu5_3)."""

    def __init__(self) -> None:
        super().__init__(VGG16_LAYERS, VGG16_TAPS)


def build_features(backbone: str) -> BackboneFeatures:
    """An uninitialised-for-LPIPS features stack (load real weights before using it as LPIPS)."""
    return AlexNetFeatures() if canonical_backbone(backbone) == "alex" else VGG16Features()


def normalize_channels(feat: torch.Tensor, eps: float = NORM_EPS) -> torch.Tensor:
    """Divide a (B,C,H,W) activation by its per-pixel channel L2 norm (+eps), as LPIPS does.

    ``vector_norm`` has a zero (not NaN) gradient where the norm is zero.
    """
    return feat / (torch.linalg.vector_norm(feat, dim=1, keepdim=True) + eps)


class LPIPS(nn.Module):
    """LPIPS v0.1 distance with a real backbone; build it with :func:`load_lpips`.

    ``forward(x, y)`` takes (B,3,H,W) images in [-1, 1] and returns (B,)
    distances. All parameters are frozen and the module stays in eval mode.
    """

    def __init__(self, backbone: str, features: BackboneFeatures, calibration: list[torch.Tensor]) -> None:
        super().__init__()
        self.backbone = canonical_backbone(backbone)
        self.features = features
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE, dtype=torch.float32).view(1, 3, 1, 1))
        for k, weight in enumerate(calibration):
            self.register_buffer(f"lin{k}", weight.detach().clone().float())
        self.num_layers = len(calibration)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "LPIPS":
        """LPIPS is a fixed metric: always stays in eval mode."""
        return super().train(False)

    def per_layer(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(B, 5) per-tap distances; their sum over dim 1 is the LPIPS distance."""
        if x.shape != y.shape or x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"LPIPS expects two (B,3,H,W) images of equal shape, got {tuple(x.shape)} and {tuple(y.shape)}")
        batch = x.shape[0]
        both = (torch.cat([x, y], dim=0) - self.shift) / self.scale
        taps = self.features(both)
        layers = []
        for k, feat in enumerate(taps):
            feat = normalize_channels(feat.float())  # fp32 even under autocast (eps 1e-10)
            diff = (feat[:batch] - feat[batch:]) ** 2
            weighted = F.conv2d(diff, getattr(self, f"lin{k}"))
            layers.append(weighted.mean(dim=(1, 2, 3)))
        return torch.stack(layers, dim=1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """(B,) LPIPS distances between images ``x`` and ``y`` in [-1, 1]."""
        return self.per_layer(x, y).sum(dim=1)


def default_backbone_path(backbone: str) -> Path:
    """Where torchvision keeps the backbone file: ``<torch hub dir>/checkpoints/<official name>``.

    The hub dir is ``$TORCH_HOME/hub`` (default ``~/.cache/torch/hub``).
    """
    name = canonical_backbone(backbone)
    return Path(torch.hub.get_dir()) / "checkpoints" / BACKBONE_FILES[name]


def calibration_path(backbone: str) -> Path:
    """The ``lpips`` package's v0.1 calibration file for a backbone (package not imported)."""
    name = canonical_backbone(backbone)
    return package_dir("lpips") / "weights" / CALIBRATION_VERSION / f"{name}.pth"


def missing_weights_message(backbone: str, path: Path) -> str:
    """User-facing text: which file is missing and how to get it."""
    name = canonical_backbone(backbone)
    url = BACKBONE_URLS[name]
    fname = BACKBONE_FILES[name]
    return (
        f"LPIPS {name} backbone weights not found at {path}. On a machine with internet access download "
        f"{url} (e.g. `curl -L -o {fname} {url}`), then either copy it to {default_backbone_path(name)} "
        f"(the torch hub cache) or set `{CONFIG_KEY}: /path/to/{fname}` in config.yaml"
    )


def _torch_load(path: Path, what: str) -> dict:
    """``torch.load`` a weights-only dict of tensors, turning failures into an HfagpError naming the file."""
    from hfagp.io.artifacts import load_torch_artifact

    data = load_torch_artifact(path, what, "the file is corrupt or not a torch state dict: replace it")
    if isinstance(data, dict) and "state_dict" in data and isinstance(data["state_dict"], dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise HfagpError(f"{what} {path} is not a state dict of tensors")
    return data


def extract_features_state(state: dict[str, torch.Tensor], backbone: str, path: Path) -> dict[str, torch.Tensor]:
    """Pick the ``features.*`` entries of a torchvision checkpoint and check keys and shapes.

    A dict that already has bare ``<index>.weight`` keys (a saved ``features``
    module) is accepted as is. Raises HfagpError naming the file on any mismatch.
    """
    name = canonical_backbone(backbone)
    expected = expected_backbone_shapes(name)
    if any(key.startswith("features.") for key in state):
        feats = {key[len("features."):]: value for key, value in state.items() if key.startswith("features.")}
    else:
        feats = dict(state)
    missing = sorted(set(expected) - set(feats))
    unexpected = sorted(set(feats) - set(expected))
    if missing or unexpected:
        raise HfagpError(
            f"{path} is not a torchvision {BACKBONE_FILES[name]} checkpoint for LPIPS backbone '{name}': "
            f"missing keys {missing[:6]}{'...' if len(missing) > 6 else ''}, "
            f"unexpected keys {unexpected[:6]}{'...' if len(unexpected) > 6 else ''}; "
            f"check lpips.backbone / {CONFIG_KEY} in config.yaml"
        )
    for key, shape in expected.items():
        if tuple(feats[key].shape) != shape:
            raise HfagpError(
                f"{path}: features.{key} has shape {tuple(feats[key].shape)}, expected {shape} for a torchvision "
                f"{BACKBONE_FILES[name]} checkpoint; check lpips.backbone / {CONFIG_KEY} in config.yaml"
            )
    return {key: feats[key].float() for key in expected}


def load_calibration(backbone: str) -> list[torch.Tensor]:
    """The five (1,C,1,1) LPIPS v0.1 calibration weights from the ``lpips`` package."""
    name = canonical_backbone(backbone)
    path = calibration_path(name)
    if not path.exists():
        raise HfagpError(
            f"LPIPS calibration weights not found at {path}; reinstall with `pip install --no-deps lpips==0.1.4`"
        )
    state = _torch_load(path, "LPIPS calibration file")
    weights = []
    for k, channels in enumerate(tap_channels(name)):
        key = f"lin{k}.model.1.weight"
        if key not in state or tuple(state[key].shape) != (1, channels, 1, 1):
            raise HfagpError(f"{path}: expected {key} of shape (1, {channels}, 1, 1); the lpips package is damaged")
        weights.append(state[key].float())
    return weights


def load_lpips(
    backbone: str = "alex", weights: str | os.PathLike | None = None, device: str | torch.device = "cpu"
) -> LPIPS:
    """Build LPIPS v0.1 from a real backbone file (``weights``, default: the torch hub cache).

    Raises :class:`LpipsWeightsMissing` when the file does not exist and
    :class:`HfagpError` when it is unreadable or has the wrong keys/shapes.
    """
    name = canonical_backbone(backbone)
    path = Path(weights).expanduser() if weights is not None else default_backbone_path(name)
    if not path.is_file():
        raise LpipsWeightsMissing(missing_weights_message(name, path), path, name)
    state = extract_features_state(_torch_load(path, "LPIPS backbone file"), name, path)
    features = build_features(name)
    features.load_state_dict(state, strict=True)
    model = LPIPS(name, features, load_calibration(name))
    return model.to(device)


def seeded_backbone_state(backbone: str, seed: int) -> dict[str, torch.Tensor]:
    """A torchvision-keyed (``features.*`` plus a dummy classifier entry) state dict of seeded numbers.

    FOR TESTS AND BENCHMARKS ONLY: the values come from
    ``numpy.random.default_rng(seed)`` (stable across numpy versions), He-scaled
    so activations stay O(1); a network built from them is not LPIPS.
    """
    name = canonical_backbone(backbone)
    rng = np.random.default_rng(seed)
    state: dict[str, torch.Tensor] = {}
    for key, shape in expected_backbone_shapes(name).items():
        if key.endswith(".weight"):
            fan_in = int(np.prod(shape[1:]))
            values = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
        else:
            values = rng.standard_normal(shape) * 0.05
        state[f"features.{key}"] = torch.from_numpy(values.astype(np.float32))
    # torchvision files also hold the classifier; loading must ignore it.
    state["classifier.1.weight"] = torch.zeros(4, 4)
    return state


def seeded_lpips(backbone: str = "alex", seed: int = 0, device: str | torch.device = "cpu") -> LPIPS:
    """An LPIPS module of seeded random numbers (backbone and calibration): FOR BENCHMARKS ONLY.

    It costs exactly what LPIPS costs (same layers, same shapes) but needs no file at all, not even the
    ``lpips`` package's calibration weights, so a machine that cannot install anything can time it
    (``bench/gpu_check.py``). Its distances mean nothing.
    """
    name = canonical_backbone(backbone)
    features = build_features(name)
    features.load_state_dict(extract_features_state(seeded_backbone_state(name, seed), name, Path("<seeded>")), strict=True)
    rng = np.random.default_rng(seed + 1)
    calibration = [torch.from_numpy(rng.uniform(0.0, 0.1, (1, c, 1, 1)).astype(np.float32)) for c in tap_channels(name)]
    return LPIPS(name, features, calibration).to(device)
