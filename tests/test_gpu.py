"""CUDA: the same recipe trains with --device cuda and every speed option (skipped without a GPU)."""

import pytest
import torch
from tiny import tiny_recipe

from toolkit.model import load_model
from toolkit.train import Trainer

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("speed", [{}, {"precision": "bf16"}, {"channels_last": True},
                                   {"precision": "bf16", "channels_last": True, "compile": True}])
def test_training_on_cuda_with_each_speed_option_gives_a_checkpoint_that_loads_on_cpu(tmp_path, speed):
    recipe = tiny_recipe(steps=4, device="cuda")
    recipe.train.speed = recipe.train.speed.model_copy(update=speed)
    result = Trainer(recipe, tmp_path, "cuda").run()
    assert result["step"] == 4 and not result["interrupted"]
    model = load_model(result["checkpoint"], "cpu")
    images = model.generate(4, seed=0)
    assert images.shape == (4, 1, 28, 28) and torch.isfinite(images).all()


def test_cuda_and_cpu_forward_passes_agree_in_fp32(tmp_path):
    fakes = {}
    for device in ("cpu", "cuda"):
        recipe = tiny_recipe(steps=1)
        recipe.model.options = dict(recipe.model.options or {}, d_regularizer="none")
        trainer = Trainer(recipe, tmp_path / device, device)
        z = trainer.spec.sample(8, generator=torch.Generator().manual_seed(1))
        x = trainer.images[:8].float().div(255).to(trainer.device)
        out, _ = trainer.forward(x, z.to(trainer.device))
        fakes[device] = out["x_fake"].detach().cpu()
    torch.testing.assert_close(fakes["cuda"], fakes["cpu"], rtol=1e-3, atol=1e-3)
