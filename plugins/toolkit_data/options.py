"""Options of the built-in datasets (light: no torch import)."""

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from toolkit.recipe import PATH  # a str option that holds a path (relative: to the recipe's folder)


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TorchvisionOptions(_Options):
    root: str = Field("~/.cache/toolkit/datasets", json_schema_extra=PATH, description="folder holding <Name>/raw/*-ubyte[.gz]")
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


class CelebaOptions(_Options):
    root: str = Field("~/.cache/toolkit/datasets/celeba", json_schema_extra=PATH,
                      description="folder holding list_attr_celeba.txt and the image folder")
    images: str | None = Field(
        None, description="image folder under root (default: img_align_celeba, else img_align_celeba_89x109)"
    )
    image_size: int = Field(32, ge=8, le=256, description="images are cropped to a square and resized to this")
    crop: float = Field(0.8, gt=0, le=1, description="side of the square crop, as a fraction of the image width")
    crop_center: float = Field(0.5, ge=0, le=1, description="height of the crop's centre, as a fraction of the image height")
    test_fraction: float = Field(
        0.1, ge=0, lt=1, description="held-out share, chosen from split_seed, when list_eval_partition.txt has no test rows"
    )
    split_seed: int = 0
    max_images: int | None = Field(None, ge=1, description="read at most this many images of the split (the first ones)")
    cache: str | None = Field(
        "~/.cache/toolkit/celeba", json_schema_extra=PATH,
        description="folder for the decoded images (.npz), keyed on the options, the attribute files and each image's "
        "size and modification time; null: no cache (delete the folder to clear it)",
    )


class SvhnOptions(_Options):
    root: str = Field("~/.cache/toolkit/datasets/svhn", json_schema_extra=PATH,
                      description="folder holding train_32x32.mat and test_32x32.mat")
    download: bool = Field(False, description="download through torchvision when the files are missing")
