"""Reading user images (modes, sizes, errors) and writing image grids."""

import gc
import os
import stat
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import toolkit.images
from toolkit.errors import ImageError
from toolkit.images import atomic_write, load_image, save_grid

STEP = 1 / 255 + 1e-6  # one 8-bit level


def _save(img: Image.Image, path: Path, **kwargs) -> Path:
    img.save(path, **kwargs)
    return path


def _check(t: torch.Tensor, channels: int, size) -> None:
    h, w = (size, size) if isinstance(size, int) else size
    assert t.shape == (channels, h, w) and t.dtype == torch.float32
    assert t.min() >= 0 and t.max() <= 1


# -- conversions ---------------------------------------------------------------------------
def test_rgb_to_grey(tmp_path):
    path = _save(Image.new("RGB", (12, 12), (255, 0, 0)), tmp_path / "red.png")
    t = load_image(path, 1, 12)
    _check(t, 1, 12)
    assert torch.allclose(t, torch.full_like(t, 76 / 255), atol=STEP)  # ITU-R 601-2 luma of red


def test_rgb_stays_rgb(tmp_path):
    path = _save(Image.new("RGB", (12, 12), (255, 0, 128)), tmp_path / "rgb.png")
    t = load_image(path, 3, 6)
    _check(t, 3, 6)
    assert torch.allclose(t.mean((1, 2)), torch.tensor([1.0, 0.0, 128 / 255]), atol=STEP)


def test_grey_to_rgb(tmp_path):
    path = _save(Image.new("L", (10, 10), 100), tmp_path / "grey.png")
    t = load_image(path, 3, 10)
    _check(t, 3, 10)
    assert torch.allclose(t, torch.full_like(t, 100 / 255), atol=STEP)


@pytest.mark.parametrize(("alpha", "expected"), [(0, 0.0), (255, 200 / 255), (128, 200 * 128 / 255 / 255)])
def test_rgba_is_composited_on_black(tmp_path, alpha, expected):
    path = _save(Image.new("RGBA", (8, 8), (200, 200, 200, alpha)), tmp_path / "rgba.png")
    for channels in (1, 3):
        t = load_image(path, channels, 8)
        _check(t, channels, 8)
        assert torch.allclose(t, torch.full_like(t, expected), atol=2 * STEP)


def test_grey_alpha(tmp_path):
    path = _save(Image.new("LA", (8, 8), (255, 0)), tmp_path / "la.png")
    assert load_image(path, 1, 8).max() == 0


def test_palette(tmp_path):
    img = Image.new("P", (8, 8), 1)
    img.putpalette([0, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 6))
    t = load_image(_save(img, tmp_path / "pal.png"), 3, 8)
    _check(t, 3, 8)
    assert torch.equal(t.mean((1, 2)), torch.tensor([0.0, 1.0, 0.0]))
    # the same palette with index 1 transparent: composited onto black
    t = load_image(_save(img, tmp_path / "pal.gif", transparency=1), 3, 8)
    assert t.max() == 0


def test_sixteen_bit_grey(tmp_path):
    img = Image.fromarray(np.full((8, 8), 40000, dtype=np.uint16))
    path = _save(img, tmp_path / "grey16.png")
    with Image.open(path) as opened:
        assert opened.mode.startswith("I")
    t = load_image(path, 1, 8)
    _check(t, 1, 8)
    assert torch.allclose(t, torch.full_like(t, 40000 / 65535), atol=STEP)
    assert load_image(path, 3, 4).shape == (3, 4, 4)


def test_cmyk_jpeg(tmp_path):
    path = _save(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), tmp_path / "cmyk.jpg", quality=95)
    with Image.open(path) as opened:
        assert opened.mode == "CMYK"
    t = load_image(path, 3, 8)
    _check(t, 3, 8)
    assert torch.allclose(t.mean((1, 2)), torch.tensor([1.0, 0.0, 0.0]), atol=0.05)  # red
    assert load_image(path, 1, 8).shape == (1, 8, 8)


@pytest.mark.parametrize("size", [(30, 10), (10, 30)])
def test_non_square_is_centre_cropped(tmp_path, size):
    width, height = size
    img = Image.new("L", size, 0)
    left, top = (width - 10) // 2, (height - 10) // 2
    img.paste(255, (left, top, left + 10, top + 10))  # a white square in the middle, black sides
    t = load_image(_save(img, tmp_path / "wide.png"), 1, 5)
    _check(t, 1, 5)
    assert torch.equal(t, torch.ones_like(t))


def test_requested_size_and_resizing(tmp_path):
    rng = np.random.default_rng(0)
    path = _save(Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)), tmp_path / "noise.png")
    _check(load_image(path, 3, 28), 3, 28)
    _check(load_image(path, 1, 64), 1, 64)
    _check(load_image(str(path), 1, (8, 12)), 1, (8, 12))
    same = load_image(path, 3, 40)  # no resize: the exact pixels
    with Image.open(path) as img:
        pixels = torch.from_numpy(np.array(img))
    assert torch.equal(same, pixels.permute(2, 0, 1).float() / 255)


def test_tiny_image_upscaled(tmp_path):
    t = load_image(_save(Image.new("L", (1, 1), 50), tmp_path / "dot.png"), 1, 28)
    assert torch.allclose(t, torch.full_like(t, 50 / 255), atol=STEP)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_exif_orientation_is_applied(tmp_path, fmt):
    arr = np.zeros((12, 12), np.uint8)
    arr[:6, :6] = 255  # white top-left quadrant as stored; orientation 6: show it rotated 90 degrees clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    path = _save(Image.fromarray(arr), tmp_path / f"turned.{fmt.lower()}", format=fmt, exif=exif)
    t = load_image(path, 1, 12)[0]
    assert t[:6, 6:].mean() > 0.9 and t[:6, :6].mean() < 0.1  # upright: white top-right


# -- errors --------------------------------------------------------------------------------
def _error(path, match: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # see test_failed_read_closes_the_file
        with pytest.raises(ImageError, match=match) as info:
            load_image(path, 1, 28)
        message = str(info.value)
        del info
        gc.collect()
    assert str(path) in message
    return message


def test_missing_file(tmp_path):
    _error(tmp_path / "nope.png", "no such file")


def test_directory(tmp_path):
    (tmp_path / "folder.png").mkdir()
    _error(tmp_path / "folder.png", "is a folder")


def test_garbage_bytes(tmp_path):
    path = tmp_path / "garbage.png"
    path.write_bytes(b"this is not an image at all" * 10)
    _error(path, "not an image Pillow can read")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    _error(path, "not an image Pillow can read")


@pytest.mark.parametrize("keep", [0.5, 0.1])
def test_truncated_png(tmp_path, keep):
    rng = np.random.default_rng(0)
    full = _save(Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)), tmp_path / "full.png")
    data = full.read_bytes()
    path = tmp_path / "truncated.png"
    path.write_bytes(data[: int(len(data) * keep)])
    _error(path, r"cannot read image \(image file is truncated\)")


def test_truncated_jpeg(tmp_path):
    rng = np.random.default_rng(0)
    full = _save(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)), tmp_path / "full.jpg")
    path = tmp_path / "truncated.jpg"
    path.write_bytes(full.read_bytes()[:600])
    _error(path, "cannot read image")


def test_failed_read_closes_the_file(tmp_path):
    rng = np.random.default_rng(0)
    full = _save(Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)), tmp_path / "full.png")
    path = tmp_path / "truncated.png"
    path.write_bytes(full.read_bytes()[:300])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ImageError):
            load_image(path, 1, 28)
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


@pytest.mark.parametrize("side", [11, 20])  # 121 px: PIL warns; 400 px: over twice the limit, PIL errors
def test_decompression_bomb(tmp_path, monkeypatch, side):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # restored afterwards
    monkeypatch.setattr(toolkit.images, "MAX_PIXELS", 100)
    small = _save(Image.new("L", (10, 10), 7), tmp_path / "small.png")
    assert load_image(small, 1, 4).shape == (1, 4, 4)  # at the limit: fine
    _error(_save(Image.new("L", (side, side)), tmp_path / "bomb.png"), "too large")


# -- grids ---------------------------------------------------------------------------------
def test_save_grid_grey(tmp_path):
    images = torch.zeros(6, 1, 28, 28)
    path = save_grid(images, tmp_path / "grid.png", nrow=3)
    assert path == tmp_path / "grid.png"
    with Image.open(path) as img:
        assert img.format == "PNG" and img.mode == "L"
        assert img.size == (3 * 30 + 2, 2 * 30 + 2)
        arr = np.asarray(img)
    assert arr[0, 0] == 255 and arr[2, 2] == 0  # white padding, black image
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.png"]


def test_save_grid_rgb_values_and_new_folder(tmp_path):
    images = torch.rand(5, 3, 8, 8)
    images[0] = torch.tensor([1.0, 0.0, 0.5]).view(3, 1, 1)
    images[1] = 7.0  # clamped
    path = save_grid(images, tmp_path / "sub" / "dir" / "grid.png", nrow=2, padding=1)
    with Image.open(path) as img:
        assert img.mode == "RGB" and img.size == (2 * 9 + 1, 3 * 9 + 1)
        arr = np.asarray(img)
    assert tuple(arr[1, 1]) == (255, 0, 128)
    assert tuple(arr[1, 10]) == (255, 255, 255)
    assert sorted(p.name for p in path.parent.iterdir()) == ["grid.png"]


def test_save_grid_overwrites(tmp_path):
    path = tmp_path / "grid.png"
    save_grid(torch.zeros(2, 1, 4, 4), path, nrow=2)
    save_grid(torch.ones(4, 1, 4, 4), path, nrow=2)
    with Image.open(path) as img:
        assert img.size == (2 * 6 + 2, 2 * 6 + 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.png"]


def test_atomic_write_failure_leaves_nothing(tmp_path):
    target = tmp_path / "out.png"

    def write(tmp):
        tmp.write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, write)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077, 0o027])
def test_written_files_get_their_permissions_from_the_umask(tmp_path, umask):
    from toolkit.checkpoint import write_safetensors

    previous = os.umask(umask)
    try:
        atomic_write(tmp_path / "a.json", lambda tmp: tmp.write_text("{}"))
        save_grid(torch.zeros(1, 1, 4, 4), tmp_path / "grid.png", nrow=1)
        write_safetensors(tmp_path / "w.safetensors", {"w": torch.zeros(2)}, {"format": 1})
        (tmp_path / "plain.txt").write_text("a file as any program writes it")
    finally:
        os.umask(previous)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == dict.fromkeys(["a.json", "grid.png", "w.safetensors", "plain.txt"], 0o666 & ~umask)


def test_atomic_write_replaces_a_file_with_a_new_one_of_the_umask_mode(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    target.chmod(0o600)
    previous = os.umask(0o022)
    try:
        atomic_write(target, lambda tmp: tmp.write_text("new"))
    finally:
        os.umask(previous)
    assert target.read_text() == "new" and stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_a_crop_function_replaces_the_centre_square(tmp_path):
    arr = np.zeros((40, 20), dtype=np.uint8)
    arr[:20] = 255  # white top half, black bottom half
    path = tmp_path / "tall.png"
    Image.fromarray(arr).save(path)
    top = load_image(path, 1, 8, crop=lambda w, h: (0, 0, w, w))
    bottom = load_image(path, 1, 8, crop=lambda w, h: (0, h - w, w, h))
    assert top.min() == 1.0 and bottom.max() == 0.0


def test_smooth_keeps_flat_images_and_spreads_a_point_with_its_sum():
    from toolkit.images import smooth

    flat = torch.full((2, 3, 8, 8), 0.3)
    assert torch.allclose(smooth(flat), flat)
    point = torch.zeros(1, 1, 8, 8)
    point[0, 0, 4, 4] = 1.0
    out = smooth(point)
    assert out[0, 0, 4, 4] == pytest.approx(0.25) and out[0, 0, 3, 4] == pytest.approx(0.125)
    assert out[0, 0, 3, 3] == pytest.approx(0.0625) and out.sum() == pytest.approx(1.0)
