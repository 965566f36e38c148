"""Conformance of hfagp.eg3d with the official EG3D code, on the shared golden vectors.

Protocol (fixtures/eg3d/*/README.md): build from config.json, load state_dict.pt
strictly, nrr 32, eval; mapping calls as listed; ``torch.manual_seed(3)`` right
before ``synthesis(ws, c_render, noise_mode='const')``. Tolerances: 1e-5 on ws,
1e-4 (max abs) on image, image_raw, image_depth.
"""

from __future__ import annotations

import pytest
import torch
from conftest import require_fixture

from hfagp import eg3d
from hfagp.eg3d import renderer
from hfagp.eg3d.golden import IMAGE_ATOL, OUTPUT_KEYS, WS_ATOL, GoldenSet


class Fixture(GoldenSet):
    """One golden-vector set from the shared fixtures (skips when absent), plus its recorded intermediates."""

    def __init__(self, name: str) -> None:
        super().__init__(require_fixture("eg3d", name))
        self._intermediates = None

    @property
    def intermediates(self) -> dict:
        if self._intermediates is None:
            self._intermediates = torch.load(self.root / "intermediates.pt", weights_only=True)
        return self._intermediates


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


@pytest.fixture(scope="module", params=["small128", "sr512"])
def fixture_and_outputs(request):
    fixture = Fixture(request.param)
    G = fixture.build()
    return fixture, G, fixture.synthesize(G)


def test_state_dict_keys_match_official(fixture_and_outputs):
    fixture, G, _ = fixture_and_outputs
    assert list(G.state_dict().keys()) == list(fixture.state_dict.keys())


def test_mapping_matches(fixture_and_outputs):
    fixture, G, _ = fixture_and_outputs
    with torch.no_grad():
        for name, call in fixture.config["mapping_calls"].items():
            ws = G.mapping(
                fixture.inputs["z"],
                fixture.inputs[call["c"]],
                truncation_psi=call["truncation_psi"],
                truncation_cutoff=call["truncation_cutoff"],
            )
            assert ws.shape == (2, 14, 512)
            assert max_abs(ws, fixture.outputs[name]) <= WS_ATOL, name


def test_synthesis_matches(fixture_and_outputs):
    fixture, _, out = fixture_and_outputs
    assert set(out) == set(OUTPUT_KEYS)
    for key in OUTPUT_KEYS:
        assert max_abs(out[key], fixture.outputs[key]) <= IMAGE_ATOL, key


def test_rays_and_planes_match_intermediates(fixture_and_outputs):
    fixture, G, _ = fixture_and_outputs
    inter = fixture.intermediates
    c = fixture.inputs["c_render"]
    origins, directions = renderer.sample_rays(c[:, :16].reshape(-1, 4, 4), c[:, 16:].reshape(-1, 3, 3), 32)
    assert max_abs(origins, inter["ray_origins"]) <= 1e-6
    assert max_abs(directions, inter["ray_directions"]) <= 1e-6
    with torch.no_grad():
        planes = G.backbone.synthesis(fixture.outputs["ws"], noise_mode="const")
    assert max_abs(planes[..., ::8, ::8], inter["planes_sub8"]) <= 1e-4


def test_seeded_draws_equal_recorded_draws(fixture_and_outputs):
    """Injecting the recorded RNG draws gives the same result as seeding (official order and shapes)."""
    fixture, G, seeded = fixture_and_outputs
    inter = fixture.intermediates
    with torch.no_grad():
        injected = G.synthesis(
            fixture.outputs["ws"],
            fixture.inputs["c_render"],
            noise_mode="const",
            rand_coarse=inter["rand_coarse"],
            rand_importance=inter["rand_importance"],
        )
    for key in ("image_raw", "image_depth"):
        assert max_abs(injected[key], seeded[key]) <= 1e-6, key


def test_other_seed_differs(fixture_and_outputs):
    """Guards the test above: the draws matter, so matching them is meaningful."""
    fixture, G, seeded = fixture_and_outputs
    with torch.no_grad():
        torch.manual_seed(4)
        other = G.synthesis(fixture.outputs["ws"], fixture.inputs["c_render"], noise_mode="const")
    assert max_abs(other["image_raw"], seeded["image_raw"]) > 1e-3


@pytest.mark.parametrize("fused_modconv", [True, False])
def test_explicit_modconv_forms_match(fused_modconv):
    """Both modulated-conv forms (official eval = fused, train = unfused) stay within tolerance."""
    fixture = Fixture("small128")
    G = fixture.build()
    call = fixture.config["synthesis_call"]
    with torch.no_grad():
        torch.manual_seed(fixture.config["seeds"]["render_torch_manual_seed"])
        out = G.synthesis(
            fixture.outputs[call["ws"]], fixture.inputs[call["c"]], noise_mode="const", fused_modconv=fused_modconv
        )
    for key in OUTPUT_KEYS:
        assert max_abs(out[key], fixture.outputs[key]) <= IMAGE_ATOL, key


def test_network_pickle_gives_same_generator_and_outputs():
    fixture = Fixture("sr512")
    pkl = require_fixture("eg3d", "sr512", "network.pkl")
    official = eg3d.read_official_state(pkl)
    assert official.neural_rendering_resolution == 32
    assert official.rendering_kwargs["superresolution_module"].endswith("SuperresolutionHybrid8XDC")
    # Same order and bit-identical values as G_ema.state_dict(), plus the extra root buffer.
    keys = [k for k in official.state_dict if k != "dataset_label_std"]
    assert keys == list(fixture.state_dict)
    assert all(torch.equal(official.state_dict[k], fixture.state_dict[k]) for k in keys)

    G = eg3d.load_generator(pkl, device="cpu")
    assert not G.training
    assert G.neural_rendering_resolution == 32
    out = fixture.synthesize(G)
    for key in OUTPUT_KEYS:
        assert max_abs(out[key], fixture.outputs[key]) <= IMAGE_ATOL, key
