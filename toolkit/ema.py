"""An exponential moving average of the generator's and encoder's weights (``train.ema``).

GAN weights jitter from step to step; their running average draws cleaner images (Yazici et
al. 2019, "The Unusual Effectiveness of Averaging in GAN Training"). The average is kept
beside the training weights, never fed back into training; samples, evaluation and
checkpoints use it (with BatchNorm statistics re-estimated for it). G and E are averaged
together so that translations G(E(x)) pair networks of the same moment.
"""

from __future__ import annotations

import torch
from torch import nn


class WeightAverage:
    """Shadow copies of ``modules``' parameters; :meth:`update` after each optimiser step."""

    def __init__(self, modules: dict[str, nn.Module], decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.names = [f"{part}.{name}" for part, m in modules.items() for name, _ in m.named_parameters()]
        self.params = [p for m in modules.values() for p in m.parameters()]
        self.shadow = [p.detach().clone() for p in self.params]

    def decay_at(self, step: int) -> float:
        """The decay used at 1-based ``step``: lower at first, so the random init fades fast."""
        return min(self.decay, (1.0 + step) / (10.0 + step))

    @torch.no_grad()
    def update(self, step: int) -> None:
        torch._foreach_lerp_(self.shadow, self.params, 1.0 - self.decay_at(step))

    def averages_of(self, part: str) -> dict[str, torch.Tensor]:
        """The averaged parameters of one part (``"encoder"``, ``"generator"``) by the part's own
        parameter names, as :func:`torch.func.functional_call` takes them (the tensors themselves,
        not copies: read them without gradients)."""
        prefix = f"{part}."
        return {name[len(prefix):]: t for name, t in zip(self.names, self.shadow) if name.startswith(prefix)}

    @torch.no_grad()
    def copy_to(self, modules: dict[str, nn.Module]) -> None:
        """Write the averages into ``modules`` (copies of the averaged networks)."""
        targets = [p for m in modules.values() for p in m.parameters()]
        if len(targets) != len(self.shadow):
            raise ValueError("copy_to needs networks of the same architecture as the averaged ones")
        torch._foreach_copy_(targets, self.shadow)

    def state_dict(self, prefix: str = "ema.") -> dict[str, torch.Tensor]:
        return {prefix + name: t for name, t in zip(self.names, self.shadow)}

    @torch.no_grad()
    def load_state_dict(self, tensors: dict[str, torch.Tensor], prefix: str = "ema.") -> bool:
        """Load saved averages; False (and the averages start from the weights) if there are none."""
        keys = [prefix + name for name in self.names]
        if not all(k in tensors for k in keys):
            for s, p in zip(self.shadow, self.params):
                s.copy_(p)
            return False
        for s, k in zip(self.shadow, keys):
            s.copy_(tensors[k])
        return True
