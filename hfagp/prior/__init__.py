"""Phase 3, ``workflow/rules/prior.smk``: the personalised generative prior.

* :mod:`~hfagp.prior.selection` (``hfagp select-frames``): K training frames spread over expressions and poses;
* :mod:`~hfagp.prior.inversion`: W+ optimisation and pivotal tuning (the numerical core);
* :mod:`~hfagp.prior.latents` (``hfagp invert``): the stage around it -> ``inversion/latents.pt``;
* :mod:`~hfagp.prior.generator`: ``generator.json``, the generator every later stage uses;
* :mod:`~hfagp.prior.pca` (``hfagp prior``): PCA of the latents -> ``prior.npz``;
* :mod:`~hfagp.prior.qc` (``hfagp qc-prior``): ``qc/inversion.png``, ``qc/prior.png``;
* :mod:`~hfagp.prior.cli`: the commands' options; :mod:`~hfagp.prior.workflow`: helpers of prior.smk.
"""
