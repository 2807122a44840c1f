"""toolkit.augment: per-image random transforms, batched and differentiable."""

import pytest
import torch

from toolkit.augment import OPERATIONS, affine, augment, blur, cutout, noise, translation


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


def _tilt_and_centre(images):
    """Each image's principal-axis angle from vertical (degrees) and centre of mass (pixels)."""
    size = images.shape[-1]
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    w = images[:, 0] / images[:, 0].sum((1, 2), keepdim=True)
    cy, cx = (w * yy).sum((1, 2)), (w * xx).sum((1, 2))
    dy, dx = yy - cy[:, None, None], xx - cx[:, None, None]
    syy, sxx, sxy = (w * dy * dy).sum((1, 2)), (w * dx * dx).sum((1, 2)), (w * dx * dy).sum((1, 2))
    tilt = 0.5 * torch.atan2(2 * sxy, syy - sxx)
    return torch.rad2deg(tilt), torch.stack([cy, cx], 1)


def test_affine_tilts_each_image_by_its_own_bounded_angle_about_the_centre():
    x = torch.zeros(128, 1, 28, 28)
    x[:, :, 6:22, 13:15] = 1.0  # a vertical stroke through the centre
    out = affine(x, 1.0, generator=torch.Generator().manual_seed(7))
    tilt, centre = _tilt_and_centre(out)
    assert tilt.abs().max() < 32, "rotation up to 15 degrees and shear up to 0.25 (14 degrees)"
    assert tilt.std() > 5, "angles are drawn per image"
    assert (centre - 13.5).abs().max() < 0.5, "the transform is about the centre: no shift"
    area = out.sum((1, 2, 3)) / x.sum((1, 2, 3))
    assert area.min() > 0.8 and area.max() < 1.25, "scale within 10%: the area within 0.9^2 and 1.1^2"
    assert affine(x, 0.0) is x
    half_tilt, _ = _tilt_and_centre(affine(x, 0.5, generator=torch.Generator().manual_seed(7)))
    assert half_tilt.abs().max() < tilt.abs().max(), "the extent scales the draws"
