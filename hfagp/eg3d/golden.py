"""The EG3D golden vectors made with the official code (``fixtures/eg3d/<set>/``), loaded as data.

Each set holds ``config.json`` (init kwargs, neural rendering resolution, seeds, the call protocol),
``state_dict.pt`` (official key names), ``inputs.pt`` and ``outputs.pt``; see its README.md. Everything is
read through the safe artifact reader (``weights_only=True``). Used by the conformance tests and by ``bench/gpu_check.py`` (which carries
the sets to a GPU machine without ``network.pkl`` and ``intermediates.pt``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from hfagp.io.artifacts import load_torch_artifact

# The conformance tolerances of the fixtures' README: W+ and rendered outputs (max abs).
WS_ATOL = 1e-5
IMAGE_ATOL = 1e-4
OUTPUT_KEYS = ("image", "image_raw", "image_depth")
REQUIRED_FILES = ("config.json", "state_dict.pt", "inputs.pt", "outputs.pt")


class GoldenSet:
    """One golden-vector set: ``build`` the generator it was made with, ``synthesize`` its protocol call."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        missing = [name for name in REQUIRED_FILES if not (self.root / name).is_file()]
        if missing:
            raise FileNotFoundError(f"EG3D golden set {self.root} lacks {', '.join(missing)}")
        self.name = self.root.name
        self.config = json.loads((self.root / "config.json").read_text())
        fix = "copy the golden set again (make gpu-fixtures)"
        self.inputs = load_torch_artifact(self.root / "inputs.pt", "EG3D golden inputs", fix)
        self.outputs = load_torch_artifact(self.root / "outputs.pt", "EG3D golden outputs", fix)
        self.state_dict = load_torch_artifact(self.root / "state_dict.pt", "EG3D golden weights", fix)

    def build(self, device: torch.device | str = "cpu"):
        """The generator of this set, weights loaded strictly, eval mode, on ``device``."""
        from .generator import TriPlaneGenerator

        G = TriPlaneGenerator(**self.config["init_kwargs"])
        G.load_state_dict(self.state_dict, strict=True)
        G.neural_rendering_resolution = self.config["neural_rendering_resolution"]
        return G.eval().to(device)

    def synthesize(self, G, **synthesis_kwargs) -> dict[str, torch.Tensor]:
        """The protocol's synthesis call (seeded right before it) on G's device; ``synthesis_kwargs`` are added."""
        call = self.config["synthesis_call"]
        device = next(G.parameters()).device
        ws = self.outputs[call["ws"]].to(device)
        c = self.inputs[call["c"]].to(device)
        with torch.no_grad():
            torch.manual_seed(self.config["seeds"]["render_torch_manual_seed"])
            return G.synthesis(ws, c, noise_mode=call["noise_mode"], **synthesis_kwargs)

    def mapping_errors(self, G) -> dict[str, float]:
        """Max abs difference of each listed mapping call from its golden W+."""
        device = next(G.parameters()).device
        errors = {}
        with torch.no_grad():
            for name, call in self.config["mapping_calls"].items():
                ws = G.mapping(self.inputs["z"].to(device), self.inputs[call["c"]].to(device),
                               truncation_psi=call["truncation_psi"], truncation_cutoff=call["truncation_cutoff"])
                errors[name] = float((ws.float().cpu() - self.outputs[name]).abs().max())
        return errors

    def output_errors(self, out: dict[str, torch.Tensor]) -> dict[str, dict[str, float]]:
        """Max and mean abs difference of each rendered output from the golden one."""
        errors = {}
        for key in OUTPUT_KEYS:
            diff = (out[key].float().cpu() - self.outputs[key]).abs()
            errors[key] = {"max_abs": float(diff.max()), "mean_abs": float(diff.mean())}
        return errors
