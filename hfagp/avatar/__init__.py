"""Phase 4, ``workflow/rules/avatar.smk``: the trained avatar (HFA-GP's model) of one subject and driver.

* :mod:`~hfagp.avatar.drivers`: RGB encoder, expression MLP, audio net (signal -> D subspace weights);
* :mod:`~hfagp.avatar.subspace`: the learnable personal subspace (mean latent + QR-orthonormalised basis);
* :mod:`~hfagp.avatar.model`: the avatar (driver + subspace + EG3D) and the driving-signal checks;
* :mod:`~hfagp.avatar.data`: the training frames, signals and batches;
* :mod:`~hfagp.avatar.settings`, :mod:`~hfagp.avatar.training` (``hfagp train``), :mod:`~hfagp.avatar.monitor`,
  :mod:`~hfagp.avatar.resume`, :mod:`~hfagp.avatar.ema`, :mod:`~hfagp.avatar.distributed`: one training run;
* :mod:`~hfagp.avatar.checkpoint`: ``checkpoint.pt``, written here and read by the evaluate phase;
* :mod:`~hfagp.avatar.cli`: the command's options.
"""
