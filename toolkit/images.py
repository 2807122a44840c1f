"""Reading user images and writing image grids.

Input conversion (documented for ``translate`` and image folders):
- the image is read with Pillow (:func:`open_image`, the one function every reader of user
  images goes through); an EXIF Orientation tag is applied, so the image enters upright as
  every viewer shows it (a phone photo taken sideways);
- palette, CMYK, 16-bit and alpha images are converted;
  transparent pixels are composited onto black;
- it is converted to the model's channel count (grey ``L`` or ``RGB``);
- it is centre-cropped to a square and resized (bilinear, antialiased) to the model's size.
Images above 64 megapixels are refused (decompression bombs).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from .errors import ImageError
from .files import atomic_write

MAX_PIXELS = 64_000_000


def open_image(path: str | Path):
    """Open and decode one image file with Pillow, upright: the EXIF orientation is applied.

    Every reader of image files (``translate``, ``interpolate``, image folders, dataset
    plugins) goes through this function. Errors are one-line :class:`ImageError` s naming
    the file; images above :data:`MAX_PIXELS` are refused. The caller closes the image.
    """
    img = _open(Path(path))
    try:
        upright = _upright(img)
    except BaseException:
        img.close()
        raise
    if upright is not img:
        img.close()
    return upright


def _upright(img):
    """``img`` turned as its EXIF Orientation tag says (the same image when there is none)."""
    from PIL import ImageOps

    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception:  # an unreadable EXIF block: use the pixels as stored
        return img
    if orientation in (None, 1):
        return img
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # a broken tag: the pixels as stored
        return img


def _open(path: Path):
    from PIL import Image, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, expected an image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
            try:
                img.load()
            except BaseException:
                img.close()
                raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{path}: image too large (over {MAX_PIXELS:,} pixels), refused") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{path}: cannot read image ({exc})") from None
    return img


def _to_mode(img, channels: int):
    from PIL import Image

    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16-bit / 32-bit grey: scale to 8 bits
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / top * 255.0, 0, 255).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, img.convert("RGBA"))
    return img.convert("L" if channels == 1 else "RGB")


def load_image(path: str | Path, channels: int, size: int | tuple[int, int], crop=None) -> torch.Tensor:
    """Read one image as a float tensor ``(C, H, W)`` in [0, 1] (see module doc for conversion).

    ``crop(width, height) -> (left, top, right, bottom)`` replaces the centre square (a dataset's
    own framing, e.g. CelebA's face crop).
    """
    from PIL import Image

    path = Path(path)
    with open_image(path) as original:
        img = _to_mode(original, channels)
        img.load()
    h, w = (size, size) if isinstance(size, int) else size
    width, height = img.size
    if width == 0 or height == 0:
        raise ImageError(f"{path}: empty image")
    if crop is None:
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        box = (left, top, left + side, top + side)
    else:
        box = tuple(crop(width, height))
    img = img.crop(box).resize((w, h), Image.BILINEAR, reducing_gap=None)
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255.0


def save_grid(images: torch.Tensor, path: str | Path, nrow: int, padding: int = 2, scale: int = 1) -> Path:
    """Write images ``(N, C, H, W)`` in [0, 1] as one grid with ``nrow`` images per row (PNG, or the
    type of the path's extension: :data:`toolkit.outputs.IMAGE_FORMATS`), enlarged ``scale`` times
    with nearest-neighbour (every pixel a ``scale`` x ``scale`` block)."""
    from PIL import Image
    from torchvision.utils import make_grid

    grid = make_grid(images.detach().float().cpu().clamp(0, 1), nrow=nrow, padding=padding, pad_value=1.0)
    arr = (grid.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    if arr.shape[2] == 1 or images.shape[1] == 1:
        arr = arr[:, :, 0]
    if scale > 1:
        arr = arr.repeat(scale, axis=0).repeat(scale, axis=1)
    path = Path(path)
    from .outputs import IMAGE_FORMATS

    fmt = IMAGE_FORMATS.get(path.suffix.lower(), "PNG")  # the type its extension says (PNG otherwise)
    atomic_write(path, lambda tmp: Image.fromarray(arr).save(tmp, format=fmt))
    return path


def smooth(images: torch.Tensor) -> torch.Tensor:
    """One pass of a 3x3 binomial filter ([1, 2, 1] / 4 each way) over ``(N, C, H, W)``, edges replicated."""
    taps = torch.tensor([1.0, 2.0, 1.0], dtype=images.dtype, device=images.device)
    kernel = (taps[:, None] * taps[None, :] / 16.0).expand(images.shape[1], 1, 3, 3)
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1), mode="replicate")
    return torch.nn.functional.conv2d(padded, kernel, groups=images.shape[1])
