"""A clean PyTorch EG3D tri-plane generator (no NVIDIA code, no custom CUDA ops).

Public API::

    from hfagp import eg3d
    G = eg3d.TriPlaneGenerator(**init_kwargs)       # official init kwarg names
    G = eg3d.load_generator(path, device="cpu")      # official network pickle (G_ema) or our checkpoint
    eg3d.save_generator(G, path)                     # our checkpoint format (see hfagp.eg3d.loading)
    G = eg3d.demo_generator(seed=0)                  # small random-init generator, no pretrained prior
    G = eg3d.generator_from_config(path_or_None)     # what a pipeline stage should call

The names are resolved lazily (PEP 562) so that importing ``hfagp.eg3d.cli``
for the command line does not import torch.
"""

import importlib

_EXPORTS = {
    "DEMO_INIT_KWARGS": ".demo",
    "DEMO_NEURAL_RENDERING_RESOLUTION": ".demo",
    "DEMO_WARNING": ".demo",
    "demo_generator": ".demo",
    "generator_from_config": ".demo",
    "TriPlaneGenerator": ".generator",
    "load_generator": ".loading",
    "read_official_state": ".loading",
    "save_generator": ".loading",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
