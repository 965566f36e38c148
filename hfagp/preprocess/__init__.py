"""Phase 1, ``workflow/rules/preprocess.smk``: video -> frames, landmarks, EG3D crops + cameras, QC, split.

* :mod:`~hfagp.preprocess.frames` (``hfagp frames``), :mod:`~hfagp.preprocess.landmarks` (``hfagp landmarks``),
  :mod:`~hfagp.preprocess.align` (``hfagp align``), :mod:`~hfagp.preprocess.qc` (``hfagp qc``),
  :mod:`~hfagp.preprocess.split` (``hfagp split``);
* :mod:`~hfagp.preprocess.cli`: the commands' options (what the rules run).

Later stages read these artifacts through :mod:`hfagp.io.tables` and :mod:`hfagp.io.images`.
"""
