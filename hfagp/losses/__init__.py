"""Library: the losses shared by inversion, training and evaluation.

* :mod:`~hfagp.losses.lpips`: LPIPS v0.1 without torchvision (the user's backbone file, the lpips package's calibration).
* :mod:`~hfagp.losses.photometric`: MSE + LPIPS (+ SSIM) as one loss, loudly MSE-only when LPIPS weights are absent.
* :mod:`~hfagp.losses.geometry`: the Mip-NeRF 360 distortion of volume-rendering weights (no image, no weights file).
"""
