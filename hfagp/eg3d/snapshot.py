"""Random-weight generators of the released EG3D architecture, for rehearsals and benchmarks.

``ffhq512`` is the architecture of NVIDIA's ``ffhqrebalanced512-128.pkl``
(512 px output, SuperresolutionHybrid8XDC, channel_base 32768 / channel_max
512, 128 px neural rendering, 48 + 48 samples per ray, the FFHQ camera
settings); ``demo`` is the small generator of :mod:`hfagp.eg3d.demo`. With
random weights the images mean nothing, but every shape, every memory peak and
every code path is the real model's: ``make rehearsal`` runs the whole
pipeline on such a snapshot so that the full-size regime is exercised without
downloading anything. The file is written in the hfagp-eg3d checkpoint format
(:func:`hfagp.eg3d.save_generator`), which every stage loads like an official
pickle (``models.eg3d_checkpoint``).
"""

from __future__ import annotations

import copy

ARCHITECTURES = ("ffhq512", "demo")
FFHQ512_NEURAL_RENDERING_RESOLUTION = 128


def init_kwargs(architecture: str) -> tuple[dict, int]:
    """``(TriPlaneGenerator init kwargs, neural rendering resolution)`` of a named architecture."""
    from .demo import DEMO_INIT_KWARGS, DEMO_NEURAL_RENDERING_RESOLUTION

    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown EG3D architecture {architecture!r}; use one of {', '.join(ARCHITECTURES)}")
    kwargs = copy.deepcopy(DEMO_INIT_KWARGS)
    if architecture == "demo":
        return kwargs, DEMO_NEURAL_RENDERING_RESOLUTION
    kwargs.update(img_resolution=512, channel_base=32768, channel_max=512)
    kwargs["rendering_kwargs"].update(
        image_resolution=512,
        superresolution_module="training.superresolution.SuperresolutionHybrid8XDC",
        depth_resolution=48,
        depth_resolution_importance=48,
    )
    return kwargs, FFHQ512_NEURAL_RENDERING_RESOLUTION


def random_generator(architecture: str = "ffhq512", seed: int = 0):
    """A generator of ``architecture`` with random weights (seeded; the global RNG is left alone), eval mode."""
    import torch

    from .generator import TriPlaneGenerator

    kwargs, resolution = init_kwargs(architecture)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        G = TriPlaneGenerator(**kwargs)
    G.neural_rendering_resolution = resolution
    return G.eval()


def _run(args) -> None:
    from hfagp.logs import get_logger

    from .loading import save_generator

    G = random_generator(args.arch, args.seed)
    save_generator(G, args.output)
    parameters = sum(p.numel() for p in G.parameters())
    get_logger("eg3d").warning(
        "wrote %s: the %s architecture with RANDOM weights (%.1f M parameters, seed %d): for rehearsals and "
        "benchmarks only, its images mean nothing", args.output, args.arch, parameters / 1e6, args.seed)


def register(subparsers) -> None:
    """Add ``hfagp eg3d-snapshot``."""
    parser = subparsers.add_command(
        "eg3d-snapshot",
        help="write a random-weight EG3D generator of the released architecture (rehearsals, benchmarks)",
        description=__doc__,
    )
    parser.add_argument("--arch", choices=ARCHITECTURES, default="ffhq512")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", required=True, help="output checkpoint (.pt, hfagp-eg3d format)")
    parser.set_defaults(func=_run)
