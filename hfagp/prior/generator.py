"""``generator.json``: which EG3D generator the prior (and every later stage) uses.

``{"kind": "demo" | "checkpoint" | "tuned", "checkpoint": path or null,
"demo_seed": int, "tuned": file name beside it or null}``: the random-init demo
generator, the user's EG3D checkpoint, or the pivotal-tuned copy that
``hfagp invert --pti-steps N`` saved beside ``generator.json``.
"""

from __future__ import annotations

from pathlib import Path

from hfagp.errors import HfagpError
from hfagp.io.artifacts import read_json


def generator_record(checkpoint: str | None, seed: int, tuned_name: str | None) -> dict:
    """The content of ``generator.json``."""
    kind = "tuned" if tuned_name else ("checkpoint" if checkpoint else "demo")
    return {"kind": kind, "checkpoint": checkpoint or None, "demo_seed": int(seed), "tuned": tuned_name}


def read_generator_record(path: str | Path) -> dict:
    """Read ``generator.json`` (written by ``hfagp invert``), checking that it names a generator kind."""
    record = read_json(path, "generator record", "run `hfagp invert` first")
    if not isinstance(record, dict) or record.get("kind") not in ("demo", "checkpoint", "tuned"):
        raise HfagpError(f"{path} is not a generator record (no demo/checkpoint/tuned 'kind'); delete it and rerun `hfagp invert`")
    return record


def load_recorded_generator(path: str | Path, device="cpu"):
    """The generator that ``generator.json`` names (tuned file beside it, the checkpoint, or the demo one)."""
    from hfagp import eg3d

    path = Path(path)
    record = read_generator_record(path)
    kind = record["kind"]
    if kind == "tuned":
        tuned = path.parent / record["tuned"]
        if not tuned.exists():
            raise HfagpError(f"{path} names the tuned generator {tuned}, which is missing; rerun `hfagp invert`")
        return eg3d.load_generator(tuned, device=device).eval()
    return eg3d.generator_from_config(record.get("checkpoint"), device, demo_seed=int(record.get("demo_seed", 0))).eval()


def describe_generator(G, checkpoint: str | None) -> dict:
    """A short description of the inverted generator, stored with the latents."""
    from hfagp.eg3d import DEMO_WARNING

    return {
        "kind": "checkpoint" if checkpoint else "demo",
        "checkpoint": checkpoint or None,
        "demo": not checkpoint,
        "note": None if checkpoint else DEMO_WARNING,
        "img_resolution": int(G.img_resolution),
        "num_ws": int(G.num_ws),
        "w_dim": int(G.w_dim),
        "neural_rendering_resolution": int(G.neural_rendering_resolution),
    }
