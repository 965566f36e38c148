"""Library: the face in 3D, with no pipeline stage in it.

* :mod:`~hfagp.face3d.face_model`: the 68-point mean face and the five standard alignment points (BFM frame).
* :mod:`~hfagp.face3d.morphable`: the sparse 3DDFA/BFM morphable model (40 identity, 10 expression components).
* :mod:`~hfagp.face3d.geometry`: FFHQ crop alignment, head pose solve, BFM -> EG3D world.
* :mod:`~hfagp.face3d.fit`: the joint fit of the model to a landmark sequence (shared identity, per-frame pose and expression).

Used by the preprocess phase (cameras), the expressions phase (coefficients) and the dataset importers.
"""
