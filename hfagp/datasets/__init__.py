"""Library: importers of published avatar datasets (NeRFace, AD-NeRF, HFA-GP) and the HFA-GP exporter.

Each importer reads and checks a whole dataset into a plan (:mod:`~hfagp.datasets.common`) before
:mod:`~hfagp.datasets.writer` writes it as ``results/<subject>/`` artifacts; :mod:`~hfagp.datasets.cli`
holds ``hfagp import`` / ``hfagp export`` and :mod:`~hfagp.datasets.workflow` the helpers of datasets.smk.
It imports no phase package.
"""
