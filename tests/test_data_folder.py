"""The image-folder dataset: discovery, CSV labels, the split, and its errors."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from toolkit.errors import ToolkitError
from toolkit_data.folder import load
from toolkit_data.options import FolderOptions


def _png(path: Path, size=(10, 10), mode="RGB", value=128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value if mode in ("L", "P") else (value,) * len(mode)).save(path)
    return path


def _folder(tmp_path: Path, n: int = 6) -> Path:
    folder = tmp_path / "images"
    for i in range(n):
        _png(folder / f"img{i}.png", value=10 * i)
    return folder


def _opts(folder, **kw) -> FolderOptions:
    return FolderOptions(folder=folder, **kw)


def _csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_loads_mixed_sizes_and_modes(tmp_path):
    folder = tmp_path / "images"
    _png(folder / "a.png", (40, 20), "RGB")
    _png(folder / "sub" / "b.PNG", (9, 30), "L")
    _png(folder / "sub" / "deep" / "c.png", (16, 16), "RGBA")
    _png(folder / "d.gif", (12, 12), "P", value=3)
    Image.new("RGB", (20, 20), (0, 255, 0)).save(folder / "e.JPG")
    (folder / "notes.txt").write_text("not an image")
    for channels in (1, 3):
        data = load(_opts(folder, image_size=16, channels=channels, test_fraction=0), "train")
        assert data.images.dtype == torch.uint8
        assert tuple(data.images.shape) == (5, channels, 16, 16)
        assert data.labels == {} and data.classes == {}
    assert load(_opts(folder, test_fraction=0), "test").images.shape == (0, 1, 28, 28)


def test_pixel_values_are_rounded_to_uint8(tmp_path):
    folder = tmp_path / "images"
    _png(folder / "x.png", (8, 8), "L", value=200)
    data = load(_opts(folder, image_size=8, test_fraction=0), "train")
    assert torch.equal(data.images, torch.full((1, 1, 8, 8), 200, dtype=torch.uint8))


def test_csv_labels_map_to_sorted_classes(tmp_path):
    folder = tmp_path / "images"
    for name in ("a.png", "b.png", "c.png", "sub/d.png", "e.png"):
        _png(folder / name)
    labels = _csv(tmp_path / "labels.csv", "file,species,size\na.png,dog,big\nb.png,cat,\nsub/d.png,,small\nc.png,dog,small\n")
    data = load(_opts(folder, labels_csv=labels, test_fraction=0), "train")
    assert data.classes == {"species": ["cat", "dog"], "size": ["big", "small"]}
    # images sorted by path: a, b, c, e, sub/d; e is not in the CSV
    assert data.labels["species"].tolist() == [1, 0, 1, -1, -1]
    assert data.labels["size"].tolist() == [0, -1, 1, -1, 1]
    assert data.labels["species"].dtype == torch.int64


def test_split_is_disjoint_complete_and_seeded(tmp_path):
    folder = tmp_path / "images"
    for i in range(20):
        _png(folder / f"{i:02d}.png", (8, 8), "L", value=i)
    labels = _csv(tmp_path / "l.csv", "file,n\n" + "".join(f"{i:02d}.png,{i:02d}\n" for i in range(20)))

    def ids(split, seed=0):
        data = load(_opts(folder, labels_csv=labels, image_size=8, test_fraction=0.25, split_seed=seed), split)
        assert data.classes["n"] == [f"{i:02d}" for i in range(20)]  # shared by both splits
        assert data.images[:, 0, 0, 0].tolist() == data.labels["n"].tolist()  # images stay with labels
        return data.labels["n"].tolist()

    train, test = ids("train"), ids("test")
    assert len(test) == 5 and len(train) == 15
    assert set(train).isdisjoint(test) and set(train) | set(test) == set(range(20))
    assert ids("test") == test
    assert ids("test", seed=1) != test


def test_small_sets_keep_one_image_per_split(tmp_path):
    folder = _folder(tmp_path, n=2)
    opts = _opts(folder, test_fraction=0.01)
    assert len(load(opts, "train")) == 1 and len(load(opts, "test")) == 1


def test_unknown_split(tmp_path):
    with pytest.raises(ValueError, match="split"):
        load(_opts(_folder(tmp_path)), "valid")


def test_missing_folder(tmp_path):
    with pytest.raises(ToolkitError, match="does not exist") as err:
        load(_opts(tmp_path / "nope"), "train")
    assert str(tmp_path / "nope") in str(err.value)


def test_no_images(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("hi")
    with pytest.raises(ToolkitError, match="no images") as err:
        load(_opts(tmp_path / "empty"), "train")
    assert str(tmp_path / "empty") in str(err.value) and ".png" in str(err.value)


def test_csv_without_file_column(tmp_path):
    labels = _csv(tmp_path / "l.csv", "path,species\nimg0.png,dog\n")
    with pytest.raises(ToolkitError, match="no 'file' column") as err:
        load(_opts(_folder(tmp_path), labels_csv=labels), "train")
    assert "path, species" in str(err.value) and str(labels) in str(err.value)


def test_csv_row_naming_a_missing_file(tmp_path):
    labels = _csv(tmp_path / "l.csv", "file,species\nimg0.png,dog\n\nghost.png,cat\n")
    with pytest.raises(ToolkitError, match="line 4") as err:
        load(_opts(_folder(tmp_path), labels_csv=labels), "train")
    assert "ghost.png" in str(err.value) and str(labels) in str(err.value)


def test_csv_duplicate_rows(tmp_path):
    labels = _csv(tmp_path / "l.csv", "file,species\nimg0.png,dog\nimg0.png,cat\n")
    with pytest.raises(ToolkitError, match="twice"):
        load(_opts(_folder(tmp_path), labels_csv=labels), "train")


def test_corrupt_image_is_named(tmp_path):
    folder = _folder(tmp_path, n=3)
    (folder / "broken.png").write_bytes(np.random.default_rng(0).bytes(64))
    with pytest.raises(ToolkitError) as err:
        for split in ("train", "test"):
            load(_opts(folder, test_fraction=0.5), split)
    assert str(folder / "broken.png") in str(err.value)


def test_through_the_registry(tmp_path):
    from toolkit.plugins import registry

    folder = _folder(tmp_path, n=4)
    labels = _csv(tmp_path / "l.csv", "file,kind\nimg1.png,b\nimg2.png,a\n")
    entry = registry("dataset").get("image-folder")
    options = {"folder": str(folder), "labels_csv": str(labels), "test_fraction": 0, "channels": 3, "image_size": 12}
    data = entry.build(options=options, split="train")
    assert tuple(data.images.shape) == (4, 3, 12, 12)
    assert data.labels["kind"].tolist() == [-1, 1, 0, -1]
    with pytest.raises(ToolkitError, match="bogus"):
        entry.build(options={"folder": str(folder), "bogus": 1}, split="train")
