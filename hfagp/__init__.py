"""hfagp: a reproducible HFA-GP (CVPR 2023) facial avatar pipeline.

Each pipeline stage lives in its own small module and is exposed as one
``hfagp <stage>`` command (see :mod:`hfagp.cli`).
"""

__version__ = "0.1.0"
