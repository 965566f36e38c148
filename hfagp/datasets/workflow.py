"""What an imported subject provides, decided when Snakemake parses the workflow.

Snakemake rules have fixed outputs, so each kind of import gets its own rule
(``workflow/rules/datasets.smk``) and every other stage knows which artifacts
the import already made. The kind comes from the subject's ``format`` and,
for HFA-GP person folders, from the style of its transforms files (only the
small JSON files are read here).

Kinds and the artifacts their import writes (besides frames/, frames.parquet,
split.json and import.json):

* ``nerface``: expressions.parquet, source_cameras.parquet
* ``adnerf``: audio_features.npy (+ .json), source_cameras.parquet
* ``hfagp-3dmm``: crops/, cameras.parquet, dataset.json, expressions.parquet
* ``hfagp-audio``: crops/, cameras.parquet, dataset.json, audio_features.npy (+ .json)
* ``hfagp-labels``: crops/, cameras.parquet, dataset.json (no transforms files)
"""

from __future__ import annotations

from pathlib import Path

from hfagp.errors import HfagpError
from hfagp.io.artifacts import read_json

KINDS = ("video", "nerface", "adnerf", "hfagp-3dmm", "hfagp-audio", "hfagp-labels")
_COMMON = {"frames": "frames", "table": "frames.parquet", "split": "split.json", "manifest": "import.json"}
_IMPORTED_CROPS = {"crops": "crops", "cameras": "cameras.parquet", "dataset": "dataset.json"}
_AUDIO = {"features": "audio_features.npy", "sidecar": "audio_features.npy.json"}
IMPORT_OUTPUTS: dict[str, dict[str, str]] = {
    "nerface": {**_COMMON, "expressions": "expressions.parquet", "source_cameras": "source_cameras.parquet"},
    "adnerf": {**_COMMON, **_AUDIO, "source_cameras": "source_cameras.parquet"},
    "hfagp-3dmm": {**_COMMON, **_IMPORTED_CROPS, "expressions": "expressions.parquet"},
    "hfagp-audio": {**_COMMON, **_IMPORTED_CROPS, **_AUDIO},
    "hfagp-labels": {**_COMMON, **_IMPORTED_CROPS},
}


def _hfagp_mode(dataset: Path) -> str:
    """``3dmm``, ``audio`` or ``labels`` from the first frame of the HFA-GP transforms files."""
    for name in ("transforms_train.json", "transforms_val.json", "transforms_test.json"):
        path = dataset / name
        if not path.is_file():
            continue
        data = read_json(path, "transforms file", "fix or replace the file")
        frames = (data.get("frames") if isinstance(data, dict) else None) or []
        if frames and isinstance(frames[0], dict):
            if "img_id" in frames[0] or "frame_id" in frames[0]:
                return "audio"
            if "file_path" in frames[0]:
                return "3dmm"
    return "labels"


def subject_kind(entry: dict) -> str:
    """The kind of a subject's config entry (see the module docstring)."""
    fmt = entry.get("format", "video")
    if fmt in ("video", "nerface", "adnerf"):
        return fmt
    if fmt == "hfagp":
        dataset = Path(entry["dataset"])
        if not dataset.is_dir():
            raise HfagpError(f"dataset folder {dataset} not found; fix `dataset:` of the subject in config.yaml")
        mode = _hfagp_mode(dataset)
        if mode == "audio" and not (dataset / "aud.npy").is_file():
            raise HfagpError(f"{dataset} is an HFA-GP audio-mode folder without aud.npy; add it or remove img_id")
        return f"hfagp-{mode}"
    raise HfagpError(f"unknown subject format {fmt!r}; use one of video, nerface, adnerf, hfagp")


def provides(kind: str, artifact: str) -> bool:
    """Whether a subject of ``kind`` can have ``artifact`` (expressions.parquet, audio_features.npy)."""
    if artifact == "expressions.parquet":
        return kind in ("video", "nerface", "adnerf", "hfagp-3dmm")
    if artifact == "audio_features.npy":
        return kind in ("video", "adnerf", "hfagp-audio")
    return True
