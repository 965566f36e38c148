"""Make ``tests/data/lpips_reference.json``: distances computed by the real ``lpips`` package.

Run in a throwaway environment that has torchvision (never in the project's
.venv)::

    python3 -m venv /tmp/lpipsref
    /tmp/lpipsref/bin/pip install torch==2.14.1 torchvision==0.29.1 lpips==0.1.4 numpy
    /tmp/lpipsref/bin/python tests/data/make_lpips_reference.py
    rm -rf /tmp/lpipsref

For each case it writes the numpy-seeded stand-in backbone of
:func:`hfagp.losses.lpips.seeded_backbone_state` into ``lpips.LPIPS(net=...,
pnet_rand=True).net`` (whose ``sliceK.<index>`` modules are torchvision's
``features[<index>]``), keeps the package's v0.1 calibration weights, and
evaluates it on seeded image pairs (recipe: :func:`image_pair`, repeated in
tests/test_lpips.py). The stand-in backbone is not LPIPS; the fixture only
checks that hfagp.losses.lpips computes what the lpips package computes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from hfagp.losses.lpips import seeded_backbone_state  # noqa: E402

OUT = Path(__file__).with_name("lpips_reference.json")
CASES = [
    {"backbone": "alex", "backbone_seed": 0, "image_seed": 1, "shape": [2, 3, 64, 64], "noise": 0.3},
    {"backbone": "alex", "backbone_seed": 0, "image_seed": 2, "shape": [1, 3, 72, 96], "noise": 1.0},
    {"backbone": "alex", "backbone_seed": 5, "image_seed": 3, "shape": [1, 3, 128, 128], "noise": 0.1},
    {"backbone": "vgg", "backbone_seed": 0, "image_seed": 4, "shape": [2, 3, 64, 64], "noise": 0.3},
    {"backbone": "vgg", "backbone_seed": 7, "image_seed": 5, "shape": [1, 3, 48, 80], "noise": 1.0},
]


def image_pair(seed: int, shape: list[int], noise: float) -> tuple[np.ndarray, np.ndarray]:
    """x ~ U(-1, 1); y = clip(x + noise * N(0, 1), -1, 1); both float32, from one default_rng(seed)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=shape)
    y = np.clip(x + noise * rng.standard_normal(shape), -1.0, 1.0)
    return x.astype(np.float32), y.astype(np.float32)


def reference_model(backbone: str, seed: int):
    """lpips.LPIPS with the seeded stand-in backbone loaded into its slices."""
    import lpips

    model = lpips.LPIPS(net=backbone, pnet_rand=True, verbose=False)
    features = seeded_backbone_state(backbone, seed)
    sliced = {}
    for key in model.net.state_dict():
        _slice, index, param = key.split(".")
        sliced[key] = features[f"features.{index}.{param}"]
    model.net.load_state_dict(sliced, strict=True)
    return model.eval()


def main() -> None:
    import lpips
    import torchvision

    results = []
    for case in CASES:
        model = reference_model(case["backbone"], case["backbone_seed"])
        x, y = image_pair(case["image_seed"], case["shape"], case["noise"])
        with torch.no_grad():
            d = model(torch.from_numpy(x), torch.from_numpy(y)).flatten().tolist()
        results.append({**case, "distances": d})
        print(case["backbone"], case["shape"], d)
    OUT.write_text(
        json.dumps(
            {
                "description": "LPIPS v0.1 distances from the lpips package with numpy-seeded stand-in backbones "
                "(hfagp.losses.lpips.seeded_backbone_state); made by tests/data/make_lpips_reference.py",
                "versions": {"lpips": getattr(lpips, "__version__", "0.1.4"), "torch": torch.__version__,
                             "torchvision": torchvision.__version__, "numpy": np.__version__},
                "cases": results,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
