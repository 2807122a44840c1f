"""Loss term ``l1-rec``: mean absolute error between real images and their reconstructions."""

from __future__ import annotations

from toolkit.losses import LossTerm, StepOutputs


class L1Reconstruction(LossTerm):
    """|x - G(E(x))| on real images, minimised by G and E (an alternative to the paper's ``rec``)."""

    def __call__(self, out: StepOutputs):
        error = (out.x_rec - out.x_real).abs()
        if self.options.reduction == "mean":
            return {"ge": error.mean()}
        return {"ge": error.flatten(1).sum(1).mean()}
