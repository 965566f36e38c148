"""hfagp.avatar.ema: the moving average of the weights the trained avatar is rendered with."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hfagp.avatar.ema import WeightAverage, effective_decay


def test_effective_decay_warms_up_then_caps():
    assert effective_decay(0.999, 0) == pytest.approx(0.1)
    assert effective_decay(0.999, 90) == pytest.approx(0.91)
    assert effective_decay(0.99, 10_000) == 0.99
    values = [effective_decay(0.999, n) for n in range(0, 20_000, 500)]
    assert all(b >= a for a, b in zip(values, values[1:])) and max(values) == 0.999


def test_update_is_the_exponential_average_of_the_iterates():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    ema = WeightAverage(net, decay=0.5)
    expected = {k: v.clone() for k, v in net.state_dict().items() if v.dtype.is_floating_point}
    for n in range(30):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        ema.update(net, n)
        d = effective_decay(0.5, n)
        for k, v in net.state_dict().items():
            if k in expected:
                expected[k] = d * expected[k] + (1 - d) * v
    for k, v in expected.items():
        torch.testing.assert_close(ema.shadow[k], v, rtol=1e-5, atol=1e-6)
    assert "1.num_batches_tracked" not in ema.shadow  # integer buffers are not averaged


def test_applied_swaps_in_the_average_and_restores_the_live_weights():
    torch.manual_seed(0)
    net = nn.Linear(5, 2)
    ema = WeightAverage(net, decay=0.9)
    live = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        net.weight.add_(1.0)
    ema.update(net, 100)  # decay 0.9: the average moves 10% of the way
    after_step = {k: v.clone() for k, v in net.state_dict().items()}
    with ema.applied(net) as averaged:
        torch.testing.assert_close(averaged.weight, live["weight"] + 0.1)
    for k, v in net.state_dict().items():
        assert torch.equal(v, after_step[k])
    with pytest.raises(RuntimeError), ema.applied(net):  # restored on errors too
        raise RuntimeError("boom")
    assert torch.equal(net.weight, after_step["weight"])


def test_state_round_trip_and_mismatch():
    net = nn.Linear(2, 2)
    ema = WeightAverage(net, decay=0.99)
    with torch.no_grad():
        net.bias.fill_(3.0)
    ema.update(net, 5)
    other = WeightAverage(nn.Linear(2, 2), decay=0.99)
    other.load_state_dict(ema.state_dict())
    assert all(torch.equal(other.shadow[k], ema.shadow[k]) for k in ema.shadow)
    with pytest.raises(KeyError, match="lacks"):
        WeightAverage(nn.Sequential(nn.Linear(2, 2)), 0.99).load_state_dict(ema.state_dict())
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(net, decay=1.0)


def test_keys_and_track_choose_what_is_averaged():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    ema = WeightAverage(net, decay=0.5, keys=["0.weight", "0.bias"])
    assert set(ema.shadow) == {"0.weight", "0.bias"}
    start = net[1].weight.detach().clone()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    ema.update(net, 100)
    with ema.applied(net):  # entries that are not averaged keep their live values
        torch.testing.assert_close(net[0].bias, ema.shadow["0.bias"])
        torch.testing.assert_close(net[1].weight, start + 1.0)
    ema.track(net, ["1.weight"])  # starts from the current value; existing averages are kept
    torch.testing.assert_close(ema.shadow["1.weight"], start + 1.0)
    before = ema.shadow["0.weight"].clone()
    ema.track(net)  # every floating-point entry
    assert set(ema.shadow) == {"0.weight", "0.bias", "1.weight", "1.bias"} and torch.equal(ema.shadow["0.weight"], before)
    with pytest.raises(KeyError, match="cannot average"):
        ema.track(net, ["2.weight"])
    # a state saved with more entries (e.g. the generator, once tuned) loads into a narrower average
    narrow = WeightAverage(net, decay=0.5, keys=["1.bias"])
    narrow.load_state_dict(ema.state_dict())
    assert torch.equal(narrow.shadow["1.bias"], ema.shadow["1.bias"])
