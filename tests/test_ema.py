"""The moving average of G's and E's weights: its arithmetic, save and load."""

import pytest
import torch
from torch import nn

from toolkit.ema import WeightAverage


def test_update_moves_the_average_toward_the_weights_by_one_minus_the_decay():
    net = nn.Linear(3, 2)
    average = WeightAverage({"g": net}, decay=0.9)
    before = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    average.update(step=1000)  # late: the full decay applies
    assert torch.allclose(average.shadow[0], before + 0.1, atol=1e-6)


def test_early_steps_use_a_lower_decay_so_the_random_init_fades_fast():
    average = WeightAverage({"g": nn.Linear(2, 2)}, decay=0.999)
    assert average.decay_at(1) == pytest.approx(2 / 11)
    assert average.decay_at(100_000) == 0.999


def test_copy_to_writes_the_averages_and_leaves_the_trained_weights_alone():
    net, other = nn.Linear(3, 2), nn.Linear(3, 2)
    average = WeightAverage({"g": net}, decay=0.5)
    with torch.no_grad():
        net.weight.zero_()
    trained = net.weight.detach().clone()
    average.copy_to({"g": other})
    assert not torch.equal(other.weight, trained)
    assert torch.equal(net.weight, trained)
    with pytest.raises(ValueError, match="same architecture"):
        average.copy_to({"g": nn.Linear(3, 2), "e": nn.Linear(1, 1)})


def test_state_dict_round_trips_and_missing_averages_start_from_the_weights():
    net = nn.Linear(3, 2)
    average = WeightAverage({"generator": net}, decay=0.5)
    with torch.no_grad():
        net.weight.add_(1.0)
    average.update(step=100)
    saved = average.state_dict()
    assert set(saved) == {"ema.generator.weight", "ema.generator.bias"}

    fresh = WeightAverage({"generator": net}, decay=0.5)
    assert fresh.load_state_dict(saved)
    assert all(torch.equal(a, b) for a, b in zip(fresh.shadow, average.shadow))
    assert not fresh.load_state_dict({})
    assert torch.equal(fresh.shadow[0], net.weight)


def test_a_decay_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError, match="decay"):
        WeightAverage({"g": nn.Linear(1, 1)}, decay=1.0)
