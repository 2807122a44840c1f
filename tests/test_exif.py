"""Images as every viewer shows them: the EXIF Orientation tag is applied wherever images are read
(``translate`` / ``interpolate`` through :func:`toolkit.images.load_image`, image folders, CelebA)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from toolkit.images import load_image, open_image

# Orientation tag -> how the stored pixels relate to the upright picture (PIL transposes that
# turn the upright picture into the stored one; the viewer undoes them)
STORED = {
    1: [],
    2: [Image.Transpose.FLIP_LEFT_RIGHT],
    3: [Image.Transpose.ROTATE_180],
    4: [Image.Transpose.FLIP_TOP_BOTTOM],
    5: [Image.Transpose.TRANSPOSE],
    6: [Image.Transpose.ROTATE_90],
    7: [Image.Transpose.TRANSVERSE],
    8: [Image.Transpose.ROTATE_270],
}


def upright(size=(24, 48)) -> Image.Image:
    """A tall grey picture, white at the top left quarter only: any turn or flip moves the white."""
    w, h = size
    arr = np.full((h, w), 30, np.uint8)
    arr[: h // 2, : w // 2] = 230
    return Image.fromarray(arr, "L")


def phone_photo(path: Path, orientation: int, size=(24, 48), mode="RGB", fmt=None) -> Path:
    """The upright picture stored as a camera stores it, with the tag that says how to turn it."""
    img = upright(size).convert(mode)
    for t in STORED[orientation]:
        img = img.transpose(t)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format=fmt, exif=exif, **({"quality": 98} if (fmt or path.suffix.lower()) in ("JPEG", ".jpg", ".jpeg") else {}))
    return path


def expected(channels=1, size=(24, 48)) -> torch.Tensor:
    arr = np.asarray(upright(size), dtype=np.float32) / 255.0
    return torch.from_numpy(arr)[None].expand(channels, -1, -1)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp", ".tif"])
def test_open_image_applies_the_orientation(tmp_path, orientation, suffix):
    path = phone_photo(tmp_path / f"photo{suffix}", orientation)
    with open_image(path) as img:
        assert img.size == (24, 48)
        arr = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    assert np.abs(arr - expected()[0].numpy()).mean() < 0.03


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_load_image_reads_a_sideways_phone_jpeg_upright(tmp_path, orientation):
    # load_image: what translate and interpolate read; a non-square picture is centre-cropped
    path = phone_photo(tmp_path / "photo.jpg", orientation, size=(24, 48))
    got = load_image(path, 1, (48, 24), crop=lambda w, h: (0, 0, w, h))
    assert got.shape == (1, 48, 24)
    assert (got - expected()).abs().mean() < 0.03
    sideways = load_image(path, 1, (48, 24), crop=lambda w, h: (0, 0, w, h))
    assert torch.equal(got, sideways)  # deterministic


def test_a_broken_orientation_tag_reads_the_pixels_as_stored(tmp_path):
    img = upright()
    exif = Image.Exif()
    exif[0x0112] = 99  # not an orientation
    img.save(tmp_path / "odd.jpg", exif=exif, quality=98)
    got = load_image(tmp_path / "odd.jpg", 1, (48, 24), crop=lambda w, h: (0, 0, w, h))
    assert (got - expected()).abs().mean() < 0.03


def test_image_folders_read_photos_upright(tmp_path):
    from toolkit_data.folder import load
    from toolkit_data.options import FolderOptions

    folder = tmp_path / "images"
    for orientation in (1, 6, 8, 3):
        phone_photo(folder / f"o{orientation}.jpg", orientation, size=(32, 32))
    data = load(FolderOptions(folder=folder, image_size=32, test_fraction=0), "train")
    want = (expected(size=(32, 32)) * 255)
    for image in data.images:
        assert (image.float() - want).abs().mean() < 8


def test_celeba_reads_photos_upright(tmp_path):
    from toolkit.plugins import registry

    root = tmp_path / "celeba"
    (root / "img_align_celeba").mkdir(parents=True)
    rows = ["2", "Smiling"]
    for i, orientation in enumerate((1, 6)):
        phone_photo(root / "img_align_celeba" / f"{i + 1:06d}.jpg", orientation, size=(40, 40))
        rows.append(f"{i + 1:06d}.jpg 1")
    (root / "list_attr_celeba.txt").write_text("\n".join(rows) + "\n")
    options = {"root": str(root), "cache": None, "test_fraction": 0, "crop": 1.0, "image_size": 40}
    data = registry("dataset").get("celeba").build(options=options, split="train", where="data.options")
    a, b = data.images.float()
    assert (a - b).abs().mean() < 8  # the sideways one came in upright, like the other
