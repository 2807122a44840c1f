"""Options of the plugin's dataset, networks and loss (light: no torch import)."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ShapesOptions(_Options):
    train_size: int = Field(6000, ge=6, le=200_000, description="training images")
    test_size: int = Field(600, ge=6, le=200_000, description="held-out images (always fully labeled)")
    unlabeled: float = Field(0.3, ge=0, lt=1, description="share of training images without each label (-1)")
    jitter: float = Field(3.0, ge=0, le=14, description="largest shift of a shape's centre from the image centre, in pixels")
    seed: int = Field(0, description="the images and which labels are missing follow from it")


class Mlp28Options(_Options):
    hidden: int = Field(256, ge=4, le=4096, description="units in each hidden layer")
    layers: int = Field(2, ge=1, le=6, description="hidden layers in each of G, E and D")
    dropout: float = Field(0.3, ge=0, lt=1, description="dropout in D")
    batchnorm: bool = Field(True, description="BatchNorm in G's hidden layers")


class L1RecOptions(_Options):
    reduction: Literal["mean", "sum"] = Field("mean", description="mean over pixels, or sum over pixels and mean over the batch")
