"""Load EG3D generators safely: official network pickles and our own checkpoints.

Official network pickles are read by :func:`hfagp.eg3d.official_pickle.read_official_state`
(a whitelisting unpickler: none of their code runs); ``G_ema``'s weights are
loaded strictly into :class:`TriPlaneGenerator` built from its stored init
kwargs.

Our own checkpoint format (written by :func:`save_generator`) is a
``torch.save`` zip file holding one dict, loadable with ``weights_only=True``::

    {
        "format": "hfagp-eg3d",
        "version": 1,
        "init_kwargs": {...},                 # TriPlaneGenerator(**init_kwargs); plain JSON-like values
        "neural_rendering_resolution": 128,
        "state_dict": {name: tensor, ...},    # official key names, CPU tensors
    }
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .generator import TriPlaneGenerator
from .official_pickle import read_official_state
from hfagp.errors import HfagpError
from hfagp.io.artifacts import load_torch_artifact
from hfagp.io.atomic import torch_save
from hfagp.logs import get_logger

log = get_logger("eg3d")

CHECKPOINT_FORMAT = "hfagp-eg3d"
CHECKPOINT_VERSION = 1
ZIP_MAGIC = b"PK\x03\x04"
PICKLE_PROTO_OPCODE = 0x80


# ---------------------------------------------------------------------------
# Building and loading.


def _load_weights(G: TriPlaneGenerator, state_dict: dict, path: Path) -> None:
    """Load ``state_dict`` strictly, tolerating extra root buffers; explain any mismatch naming ``path``."""
    expected = G.state_dict()
    extra_root = [k for k in state_dict if "." not in k and k not in expected]
    if extra_root:
        log.debug("%s: ignoring extra root entries %s", path, extra_root)
    state_dict = {k: v for k, v in state_dict.items() if k not in extra_root}
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong_shape = [
        f"{k} {tuple(state_dict[k].shape)} (expected {tuple(expected[k].shape)})"
        for k in expected
        if k in state_dict and tuple(state_dict[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or wrong_shape:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
        if wrong_shape:
            parts.append(f"{len(wrong_shape)} with the wrong shape (e.g. {wrong_shape[:3]})")
        raise HfagpError(
            f"{path}: the weights do not fit the generator its init kwargs describe: " + "; ".join(parts)
            + ". The file is damaged or not an EG3D generator."
        )
    G.load_state_dict(state_dict, strict=True)


def _build(init_args: tuple, init_kwargs: dict, path: Path) -> TriPlaneGenerator:
    try:
        return TriPlaneGenerator(*init_args, **init_kwargs)
    except (TypeError, ValueError, KeyError) as exc:
        raise HfagpError(f"{path}: cannot build a TriPlaneGenerator from its stored init kwargs ({exc}).") from exc


def load_generator(path: str | os.PathLike, device: str | torch.device = "cpu") -> TriPlaneGenerator:
    """Load an EG3D generator (eval mode) from an official network pickle (its ``G_ema``) or our checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise HfagpError(f"{path}: EG3D checkpoint not found; set the generator checkpoint path in config.yaml.")
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head.startswith(ZIP_MAGIC):
        G = _load_own_checkpoint(path)
        kind = "hfagp-eg3d checkpoint"
    elif head[:1] and head[0] == PICKLE_PROTO_OPCODE:
        official = read_official_state(path)
        init_kwargs = dict(official.init_kwargs)
        init_kwargs["rendering_kwargs"] = official.rendering_kwargs
        G = _build(official.init_args, init_kwargs, path)
        _load_weights(G, official.state_dict, path)
        G.neural_rendering_resolution = official.neural_rendering_resolution
        kind = "official network pickle, G_ema"
    else:
        raise HfagpError(
            f"{path}: not an EG3D network pickle nor an hfagp-eg3d checkpoint (unrecognised file header {head!r})."
        )
    G = G.eval().to(device)
    log.info(
        "loaded EG3D generator from %s (%s): %d px output, neural rendering %d px, %d+%d samples per ray",
        path,
        kind,
        G.img_resolution,
        G.neural_rendering_resolution,
        G.rendering_kwargs["depth_resolution"],
        G.rendering_kwargs["depth_resolution_importance"],
    )
    return G


def _load_own_checkpoint(path: Path) -> TriPlaneGenerator:
    payload = load_torch_artifact(path, "hfagp-eg3d checkpoint", "it may be truncated; write it again with hfagp.eg3d.save_generator")
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise HfagpError(
            f"{path}: a torch file but not an {CHECKPOINT_FORMAT} checkpoint (no 'format': '{CHECKPOINT_FORMAT}'); "
            "write one with hfagp.eg3d.save_generator or use an official network pickle."
        )
    if payload.get("version") != CHECKPOINT_VERSION:
        raise HfagpError(f"{path}: unsupported {CHECKPOINT_FORMAT} version {payload.get('version')!r}.")
    for key in ("init_kwargs", "neural_rendering_resolution", "state_dict"):
        if key not in payload:
            raise HfagpError(f"{path}: the checkpoint lacks '{key}'.")
    G = _build((), dict(payload["init_kwargs"]), path)
    _load_weights(G, payload["state_dict"], path)
    G.neural_rendering_resolution = int(payload["neural_rendering_resolution"])
    return G


def save_generator(G: TriPlaneGenerator, path: str | os.PathLike) -> None:
    """Write ``G`` atomically in the hfagp-eg3d checkpoint format (see module docstring)."""
    init_kwargs = dict(G.init_kwargs)
    init_kwargs["rendering_kwargs"] = dict(G.rendering_kwargs)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "init_kwargs": init_kwargs,
        "neural_rendering_resolution": int(G.neural_rendering_resolution),
        "state_dict": {k: v.detach().cpu().clone() for k, v in G.state_dict().items()},
    }
    torch_save(path, payload)
