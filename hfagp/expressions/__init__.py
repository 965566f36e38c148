"""Phase 2, ``workflow/rules/expressions.smk``: per-frame expression coefficients (the 3DMM driving signal).

* :mod:`~hfagp.expressions.coefficients` (``hfagp expressions``): the joint morphable fit over all frames,
  outlier handling and temporal smoothing -> ``expressions.parquet``;
* :mod:`~hfagp.expressions.qc`: ``qc/expressions.png``;
* :mod:`~hfagp.expressions.cli`: the command's options.
"""
