"""toolkit.augment: per-image random transforms, batched and differentiable."""

import pytest
import torch

from toolkit.augment import OPERATIONS, augment, cutout, translation


def _batch(n=16, c=1, size=12):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, c, size, size, generator=g)


def test_translation_moves_each_image_by_its_own_whole_pixel_shift():
    x = torch.zeros(64, 1, 9, 9)
    x[:, :, 4, 4] = 1.0  # one bright pixel in the centre
    out = translation(x, ratio=0.25, generator=torch.Generator().manual_seed(1))
    where = out.flatten(1).argmax(1)
    dy, dx = where // 9 - 4, where % 9 - 4
    assert out.sum(dim=(1, 2, 3)).eq(1).all(), "a shift of at most 2 px keeps the centre pixel inside"
    assert dy.abs().max() <= 2 and dx.abs().max() <= 2
    assert len(set(zip(dy.tolist(), dx.tolist()))) > 5, "shifts are drawn per image, not once per batch"


def test_cutout_zeroes_one_square_per_image():
    x = torch.ones(32, 3, 8, 8)
    out = cutout(x, ratio=0.5, generator=torch.Generator().manual_seed(2))
    zeroed = (out == 0).all(dim=1).sum(dim=(1, 2))  # pixels zeroed in every channel
    assert (zeroed <= 16).all() and (zeroed > 0).all()
    assert len({tuple(m.flatten().tolist()) for m in (out[:, 0] == 0)}) > 3, "square positions differ per image"


@pytest.mark.parametrize("op", OPERATIONS)
def test_each_operation_keeps_shape_range_and_passes_gradients(op):
    x = _batch(c=3).requires_grad_(True)
    out = augment(x, [op], generator=torch.Generator().manual_seed(3))
    assert out.shape == x.shape
    assert out.min() >= 0 and out.max() <= 1
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0, "DiffAugment needs gradients to reach the images"


def test_strength_zero_is_the_identity_and_unknown_names_are_refused():
    x = _batch()
    assert augment(x, ["translation", "cutout"], strength=0) is x
    with pytest.raises(ValueError, match="unknown augmentation 'rotate'"):
        augment(x, ["rotate"])


def test_a_generator_makes_the_draws_repeatable():
    x = _batch()
    a = augment(x, ["translation", "cutout", "brightness"], generator=torch.Generator().manual_seed(5))
    b = augment(x, ["translation", "cutout", "brightness"], generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
