"""Speed options (train.speed): each trains the same model, in the same checkpoint format."""

import pytest
import torch
from tiny import tiny_recipe

from toolkit.errors import ToolkitError
from toolkit.speed import adam, fused_supported
from toolkit.train import Trainer


def trainer_with(tmp_path, noise=True, **speed):
    recipe = tiny_recipe(steps=3)
    recipe.train.speed = recipe.train.speed.model_copy(update=speed)
    if not noise:
        recipe.model.options = dict(recipe.model.options or {}, d_regularizer="none")
    return Trainer(recipe, tmp_path, "cpu")


def run_steps(trainer, steps=3):
    for step in range(1, steps + 1):
        trainer.step = step
        trainer.train_step(step)
    return trainer.read_losses(), {k: v.clone() for k, v in trainer.networks.state_dict().items()}


@pytest.mark.parametrize("speed", [{"channels_last": True}, {"precision": "bf16"}, {"optimizer": "foreach"},
                                   {"optimizer": "loop"}])
def test_each_speed_option_trains_with_finite_losses_and_the_same_checkpoint_keys(tmp_path, speed):
    losses, weights = run_steps(trainer_with(tmp_path / "fast", **speed))
    _, reference = run_steps(trainer_with(tmp_path / "plain"))
    assert losses and all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    assert weights.keys() == reference.keys()
    assert all(weights[k].shape == reference[k].shape for k in weights)
    assert any(not torch.equal(weights[k], trainer_with(tmp_path / "init", **speed).networks.state_dict()[k])
               for k in weights), "no weight changed"


def test_channels_last_and_the_optimizer_implementations_give_the_same_weights(tmp_path):
    """fp32 options change only the order of float operations: the same updates, within rounding.

    Compared norm-wise over all weights: Adam's first steps are about lr * sign(gradient), so a
    gradient that rounds to the other side of zero moves one weight by 2 lr either way. D's
    Gaussian noise is off: in channels-last layout the same random stream lands on other pixels.
    """
    start = trainer_with(tmp_path / "init", noise=False).networks.state_dict()
    _, reference = run_steps(trainer_with(tmp_path / "a", noise=False, optimizer="loop"))
    names = [k for k, w in reference.items() if w.is_floating_point() and not k.endswith("0.bias")]  # (*)
    update = torch.cat([(reference[k] - start[k]).flatten() for k in names])
    for i, speed in enumerate([{"optimizer": "foreach"}, {"channels_last": True, "optimizer": "loop"}]
                              + ([{"optimizer": "fused"}] if fused_supported(torch.device("cpu")) else [])):
        _, weights = run_steps(trainer_with(tmp_path / f"b{i}", noise=False, **speed))
        difference = torch.cat([(weights[k] - reference[k]).flatten() for k in names])
        assert difference.norm() <= 0.02 * update.norm(), f"{speed}: {difference.norm():.3g} vs update {update.norm():.3g}"
    # (*) biases right before a BatchNorm have no true gradient: their updates are rounding noise


def test_auto_optimizer_is_fused_where_the_device_has_it():
    params = [torch.nn.Parameter(torch.zeros(3))]
    opt = adam(params, 1e-3, (0.5, 0.999), "auto", torch.device("cpu"))
    assert opt.defaults["fused"] is (True if fused_supported(torch.device("cpu")) else None)
    assert adam(params, 1e-3, (0.5, 0.999), "loop", torch.device("cpu")).defaults["foreach"] is False


def test_fused_adam_where_unavailable_is_a_clear_error(monkeypatch):
    monkeypatch.setattr("toolkit.speed.fused_supported", lambda device: False)
    with pytest.raises(ToolkitError, match="train.speed.optimizer: fused Adam is not available"):
        adam([torch.nn.Parameter(torch.zeros(1))], 1e-3, (0.5, 0.999), "fused", torch.device("cpu"))


def test_an_unknown_speed_setting_names_the_allowed_ones():
    from tiny import TINY

    from toolkit.recipe import RecipeError, parse_recipe

    bad = dict(TINY, train=dict(TINY["train"], speed={"precision": "fp8"}))
    with pytest.raises(RecipeError, match="train.speed.precision"):
        parse_recipe(bad)
