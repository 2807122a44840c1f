"""The recipe's speed options (``train.speed``) applied to networks, optimizers and the step.

Each option is a pure speed choice: the method, the latent layout and the checkpoint format
stay the same. Their measured effect is in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import contextlib
import functools

import torch
from torch import nn

from .errors import ToolkitError


def adam(params, lr: float, betas, impl: str, device: torch.device) -> torch.optim.Adam:
    """Adam in the asked implementation (``auto``: fused where the device has it, else foreach)."""
    params = list(params)
    if impl == "auto":
        impl = "fused" if fused_supported(device) else "foreach"
    if impl == "fused" and not fused_supported(device):
        raise ToolkitError(f"train.speed.optimizer: fused Adam is not available on {device.type} with torch {torch.__version__}")
    flags = {"fused": {"fused": True}, "foreach": {"foreach": True}, "loop": {"foreach": False}}[impl]
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), **flags)


def fused_supported(device: torch.device) -> bool:
    """Whether ``torch.optim.Adam(fused=True)`` runs on this device type."""
    return _fused_supported(str(device))


@functools.lru_cache(maxsize=None)
def _fused_supported(device: str) -> bool:
    try:
        probe = nn.Parameter(torch.zeros(1, device=device))
        opt = torch.optim.Adam([probe], fused=True)
        probe.grad = torch.zeros_like(probe)
        opt.step()
        return True
    except (RuntimeError, TypeError, ValueError):
        return False


def autocast(precision: str, device: torch.device):
    """A context for the forward passes: bf16 autocast, or nothing for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def memory_format(channels_last: bool) -> torch.memory_format:
    return torch.channels_last if channels_last else torch.contiguous_format


def step_networks(networks, cfg):
    """(G, E, D) callables for the training step: the modules themselves, or compiled wrappers.

    Compiled wrappers share the modules' parameters and buffers, so checkpoints, resume and
    inference (which use the plain modules) are unchanged.
    """
    parts = (networks.generator, networks.encoder, networks.discriminator)
    if not cfg.compile:
        return parts
    if not hasattr(torch, "compile"):
        raise ToolkitError(f"train.speed.compile: torch {torch.__version__} has no torch.compile")
    return tuple(torch.compile(part) for part in parts)
