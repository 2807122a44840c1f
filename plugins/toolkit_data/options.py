"""Options of the built-in datasets (light: no torch import)."""

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TorchvisionOptions(_Options):
    root: str = Field("~/.cache/toolkit/datasets", description="folder holding <Name>/raw/*-ubyte[.gz]")
    download: bool = Field(False, description="download through torchvision when the files are missing")


class MiniOptions(_Options):
    pass


class FolderOptions(_Options):
    folder: Path = Field(description="folder of images (searched recursively)")
    labels_csv: Path | None = Field(None, description="CSV: a 'file' column, then one column per attribute; empty = no label")
    image_size: int = Field(28, ge=8, le=512, description="images are centre-cropped to a square and resized to this")
    channels: Literal[1, 3] = 1
    test_fraction: float = Field(0.1, ge=0, lt=1, description="held-out share, chosen from split_seed")
    split_seed: int = 0
