"""A clean PyTorch EG3D tri-plane generator (no NVIDIA code, no custom CUDA ops).

Public API::

    from hfagp import eg3d
    G = eg3d.TriPlaneGenerator(**init_kwargs)       # official init kwarg names
    G = eg3d.load_generator(path, device="cpu")      # official network pickle (G_ema) or our checkpoint
    eg3d.save_generator(G, path)                     # our checkpoint format (see hfagp.eg3d.loading)
    G = eg3d.demo_generator(seed=0)                  # small random-init generator, no pretrained prior
    G = eg3d.generator_from_config(path_or_None)     # what a pipeline stage should call
"""

from .demo import DEMO_INIT_KWARGS, DEMO_NEURAL_RENDERING_RESOLUTION, DEMO_WARNING, demo_generator, generator_from_config
from .generator import TriPlaneGenerator
from .loading import load_generator, read_official_state, save_generator

__all__ = [
    "DEMO_INIT_KWARGS",
    "DEMO_NEURAL_RENDERING_RESOLUTION",
    "DEMO_WARNING",
    "TriPlaneGenerator",
    "demo_generator",
    "generator_from_config",
    "load_generator",
    "read_official_state",
    "save_generator",
]
