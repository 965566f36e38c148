"""The shared artifact layer: every file a stage writes or reads goes through here.

* :mod:`~hfagp.io.atomic`: atomic writes (temporary sibling, then rename).
* :mod:`~hfagp.io.artifacts`: readers that never run code (weights-only torch files, numpy without pickle, JSON, parquet).
* :mod:`~hfagp.io.tables`: the per-subject tables (frames, landmarks, cameras, expressions, split).
* :mod:`~hfagp.io.images`: numbered PNG frames, RGB reading/writing, tile sheets.
* :mod:`~hfagp.io.video`: H.264 videos with audio, frame rates of video streams.
* :mod:`~hfagp.io.paths`: input paths, including files shipped inside packages (``package:``).
* :mod:`~hfagp.io.workflow`: Snakemake parse-time helpers (config paths, workflow errors).

It imports no phase and no library of this project (only :mod:`hfagp.errors` and :mod:`hfagp.logs`).
"""
