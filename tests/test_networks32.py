"""The paper32 family (Table I, SVHN / CelebA column) on 32x32 colour images."""

import math

import pytest
import torch

from toolkit.errors import ToolkitError
from toolkit.latent import LatentSpec, Variable
from toolkit.networks import build_networks
from toolkit.plugins import registry

B = 4


def _spec() -> LatentSpec:
    return LatentSpec(8, [Variable("hair", "categorical", classes=list("abcde"), label="hair"),
                          Variable("smile", "categorical", classes=["no", "yes"]), Variable("c1", "continuous")])


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("channels", [3, 1])
def test_paper32_shapes_ranges_and_gradients(channels):
    spec = _spec()
    nets = build_networks("paper32", spec, (channels, 32, 32), {"width": 0.125})
    z = spec.sample(B)
    x = nets.generator(z)
    assert x.shape == (B, channels, 32, 32) and x.min() >= 0 and x.max() <= 1
    raw = nets.encoder(torch.rand(B, channels, 32, 32))
    assert raw.shape == (B, spec.dim)
    assert raw[:, spec.slices["u"]].abs().max() <= 1
    d = nets.discriminator(x, z)
    assert d.shape == (B, 1) and torch.isfinite(d).all()
    (x.mean() + raw.mean() + d.mean()).backward()
    assert all(p.grad is not None for p in nets.parameters())


def test_paper32_layer_sizes_follow_table_one():
    spec = _spec()
    nets = build_networks("paper32", spec, (3, 32, 32), {})
    g, e, d = nets.generator, nets.encoder, nets.discriminator
    assert g.fc[0].out_features == 2048  # 4x4x128
    assert [m.out_channels for m in g.deconv.modules() if isinstance(m, torch.nn.ConvTranspose2d)] == [128, 64, 32, 3]
    assert g.deconv[3].kernel_size == (3, 3) and g.deconv[3].stride == (1, 1)
    sizes = []
    h = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        for layer in e.features[:5]:
            h = layer(h)
            sizes.append((h.shape[1], h.shape[2]))
    assert sizes == [(32, 30), (64, 14), (128, 12), (256, 5), (512, 2)]
    assert e.features[6][0].in_features == 2048 and e.features[6][0].out_features == 1024
    h = torch.rand(2, 3, 32, 32)
    sizes = []
    with torch.no_grad():
        for layer in d.image[:3]:
            h = layer(h)
            sizes.append((h.shape[1], h.shape[2]))
    assert sizes == [(64, 15), (128, 6), (256, 2)]
    assert d.image[4][0].in_features == 1024 and d.image[4][0].out_features == 1024
    assert [block[0].out_features for block in d.code] == [64, 128, 256, 1024]
    assert d.joint[0][0].in_features == 2048 and d.joint[1].out_features == 1


def test_paper32_defaults_noise_and_code_init():
    spec = _spec()
    nets = build_networks("paper32", spec, (3, 32, 32), {"width": 0.5})
    d = nets.discriminator
    stds = [m.std for m in d.modules() if type(m).__name__ == "GaussianNoise"]
    assert stds[0] == 0.3 and set(stds[1:]) == {0.3, 0.5}
    for layer in d.one_by_one:  # the 1x1 convs of the code: std sqrt(2 / 1)
        assert abs(layer.weight.std().item() - math.sqrt(2)) < 0.15
    x, z = torch.rand(B, 3, 32, 32), spec.sample(B)
    with torch.no_grad():
        d.train()
        assert not torch.equal(d(x, z), d(x, z))
        d.eval()
        assert torch.equal(d(x, z), d(x, z))


@pytest.mark.parametrize("regularizer", ["dropout", "none"])
def test_paper32_other_regularisers(regularizer):
    nets = build_networks("paper32", _spec(), (3, 32, 32), {"width": 0.125, "d_regularizer": regularizer})
    kinds = {type(m).__name__ for m in nets.discriminator.modules()}
    assert "GaussianNoise" not in kinds and ("Dropout" in kinds) == (regularizer == "dropout")


@pytest.mark.parametrize("shape", [(3, 28, 28), (3, 64, 64), (1, 32, 28)])
def test_paper32_refuses_other_sizes(shape):
    with pytest.raises(ToolkitError, match=r"paper32.*32x32"):
        build_networks("paper32", _spec(), shape, {"width": 0.125})


def test_paper32_is_registered_with_its_image_shape():
    entry = registry("network").get("paper32")
    assert entry.extra["image_shape"] == (3, 32, 32) and entry.plugin == "paper"
    assert "width" in entry.options.model_fields
