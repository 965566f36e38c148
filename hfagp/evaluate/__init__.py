"""Phase 5, ``workflow/rules/evaluate.smk``: rendering, metrics and the paper table.

* :mod:`~hfagp.evaluate.render` (``hfagp render``, ``hfagp render-cross``): reenactment, novel views, cross-driving;
* :mod:`~hfagp.evaluate.scoring` (``hfagp evaluate``): per-frame metrics of the renders against the crops;
* :mod:`~hfagp.evaluate.metrics`, :mod:`~hfagp.evaluate.niqe`: PSNR, SSIM, L1, LPIPS, AKD, NIQE;
* :mod:`~hfagp.evaluate.paper_table` (``hfagp paper-table``): the table over all subjects and drivers;
* :mod:`~hfagp.evaluate.cli`: the commands' options.
"""
