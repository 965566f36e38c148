"""hfagp: a reproducible HFA-GP (CVPR 2023) facial avatar pipeline.

The package tree follows the Snakemake DAG (``workflow/rules/<phase>.smk``):
phases ``preprocess`` -> ``expressions`` -> ``prior`` -> ``avatar`` ->
``evaluate`` (data flows forward through artifacts; no phase imports a later
one), libraries that import no phase (``eg3d``, ``audio``, ``datasets``,
``face3d``, ``losses``) and the shared layer (``io``, ``runtime``, ``errors``,
``logs``). Every stage is one ``hfagp <stage>`` command (see :mod:`hfagp.cli`).
"""

__version__ = "0.1.0"
