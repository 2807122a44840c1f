"""toolkit.augment: per-image random transforms, batched and differentiable."""

import pytest
import torch

from toolkit.augment import OPERATIONS, augment, blur, cutout, noise, translation


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


def test_blur_removes_a_pixel_level_pattern_by_each_images_own_amount_and_keeps_flat_colour():
    checker = (torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2  # a 1-px checkerboard
    x = (0.5 + 0.1 * (2 * checker - 1)).float().expand(64, 3, 16, 16).contiguous()
    out = blur(x, sigma=1.0, generator=torch.Generator().manual_seed(4))
    left = (out - 0.5).abs().flatten(1).mean(1) / 0.1  # the pattern's remaining amplitude, per image
    assert left.min() < 0.05 and left.max() > 0.5, "each image draws its own sigma in [0, 1] px"
    assert left.median() < 0.5
    flat = torch.full((4, 3, 16, 16), 0.3)
    assert torch.allclose(blur(flat, 1.0), flat, atol=1e-6), "a flat colour is unchanged (reflected borders)"


def test_noise_has_each_images_own_strength_up_to_std():
    x = torch.full((200, 1, 16, 16), 0.5)
    out = noise(x, std=0.05, generator=torch.Generator().manual_seed(6))
    stds = (out - x).flatten(1).std(1)
    assert stds.max() < 0.06 and stds.min() < 0.01 and stds.max() > 0.04
