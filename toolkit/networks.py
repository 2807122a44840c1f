"""The three networks of the method, as one module whose state dict is the checkpoint.

- ``generator``: Z ``(B, dim)`` -> images ``(B, C, H, W)`` in [0, 1].
- ``encoder``: images -> raw code ``(B, dim)``: u, then per variable its logits
  (categorical) or mean (continuous), in the latent spec's layout.
- ``discriminator``: (images, Z) -> one logit per pair; high means "from the encoder".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from .plugins import registry
from .registry import check_results


class Networks(nn.Module):
    """G, E and D under fixed names (the checkpoint's key prefixes)."""

    def __init__(self, generator: nn.Module, encoder: nn.Module, discriminator: nn.Module):
        super().__init__()
        self.generator = generator
        self.encoder = encoder
        self.discriminator = discriminator

    def ge_parts(self) -> dict[str, nn.Module]:
        """G and E by their key prefixes (the networks one optimiser trains together)."""
        return {"generator": self.generator, "encoder": self.encoder}

    def ge_parameters(self):
        return [p for part in self.ge_parts().values() for p in part.parameters()]

    def d_parameters(self):
        return list(self.discriminator.parameters())


@contextmanager
def reestimating_norms(*parts: nn.Module) -> Iterator[None]:
    """Forward passes inside re-estimate the parts' BatchNorm statistics as a cumulative average.

    The statistics are reset and the parts put in training mode; on exit each layer gets its
    momentum back and the parts are put in eval mode.
    """
    norms = [m for part in parts for m in part.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    for part in parts:
        part.train()
    try:
        yield
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        for part in parts:
            part.eval()


def with_fixed_weights(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)`` with the module's weights held fixed: gradients reach ``x``, not the weights.

    BatchNorm still normalises with the batch's statistics (in train mode) but its running
    statistics are left as they are. A compiled module is called through its original.
    """
    module = getattr(module, "_orig_mod", module)
    state = {k: v.detach() for k, v in module.named_parameters()}
    state.update({k: v.clone() for k, v in module.named_buffers()})
    return torch.func.functional_call(module, state, (x,))


def check_networks_result(result, kwargs) -> str | None:
    """What is wrong with a network plugin's result (completing "network 'x' (plugin ...) ..."), or None."""
    if not isinstance(result, Networks):
        return f"returned {type(result).__name__}, expected toolkit.networks.Networks"
    return None


check_results("network", check_networks_result)  # applied in Entry.build


def build_networks(name: str, spec, image_shape, options=None) -> Networks:
    """Build a registered network family for a latent spec and an image shape ``(C, H, W)``."""
    entry = registry("network").get(name)
    return entry.build(spec, tuple(image_shape), options=options, where="model.options")  # checked there


def network_failure(name: str, exc: BaseException, batch: int):
    """The one-line error for an exception inside network ``name``'s forward passes."""
    from .errors import PluginError, ToolkitError, exception_line

    if isinstance(exc, torch.OutOfMemoryError):
        return ToolkitError(f"out of memory in the training step with {batch} images per step: "
                            f"lower optim.batch_size (or the network's width)")
    from .plugins import registry

    try:
        origin = registry("network").get(name).origin() if name else "the networks"
    except ToolkitError:
        origin = f"network '{name}'"
    return PluginError(f"{origin} failed in the training step: {exception_line(exc)}")
