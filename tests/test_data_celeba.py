"""The celeba dataset: CelebA's own file layout, the crop, the split, the cache, its errors,
and a tiny training run on 32x32 colour images with attributes derived in the recipe."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from toolkit.errors import ToolkitError
from toolkit.plugins import registry

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "celeba"
NAMES = ["Bald", "Black_Hair", "Blond_Hair", "Male", "Smiling", "Pale_Skin"]
SIZES = [(89, 109), (178, 218), (60, 80), (40, 40)]


def colour(i: int) -> tuple[int, int, int]:
    return (20 + 9 * i, 240 - 9 * i, 60 + 4 * (i % 10))


def fake_celeba(root: Path, n: int = 20, partition=None, folder: str = "img_align_celeba") -> Path:
    """A CelebA layout: n flat-coloured JPEGs of various sizes, a CRLF attribute file, a partition file."""
    (root / folder).mkdir(parents=True)
    rows = [str(n), " ".join(NAMES)]
    for i in range(n):
        name = f"{i + 1:06d}.jpg"
        Image.new("RGB", SIZES[i % len(SIZES)], colour(i)).save(root / folder / name, quality=95)
        values = [1 if (i + k) % 3 == 0 else -1 for k in range(len(NAMES))]
        rows.append(name + "  " + " ".join(f"{v:2d}" for v in values))
    (root / "list_attr_celeba.txt").write_bytes(("\r\n".join(rows) + "\r\n").encode())
    parts = partition if partition is not None else [0] * n
    (root / "list_eval_partition.txt").write_bytes("".join(f"{i + 1:06d}.jpg {p}\r\n" for i, p in enumerate(parts)).encode())
    return root


def load(split="train", **options):
    return registry("dataset").get("celeba").build(options=options, split=split, where="data.options")


def rows_of(data) -> list[int]:
    """The image index of each loaded image, recovered from its flat colour."""
    palette = torch.tensor([colour(i) for i in range(100)], dtype=torch.float32)
    mean = data.images.float().mean(dim=(2, 3))
    return torch.cdist(mean, palette).argmin(1).tolist()


@pytest.fixture
def root(tmp_path):
    return fake_celeba(tmp_path / "celeba")


def test_shapes_labels_and_classes(root, tmp_path):
    train = load(root=str(root), cache=str(tmp_path / "cache"), test_fraction=0.25)
    test = load("test", root=str(root), cache=str(tmp_path / "cache"), test_fraction=0.25)
    assert train.images.dtype == torch.uint8 and train.shape == (3, 32, 32)
    assert len(train) == 15 and len(test) == 5
    assert list(train.labels) == NAMES and all(train.classes[a] == ["no", "yes"] for a in NAMES)
    for data in (train, test):
        for j, i in enumerate(rows_of(data)):
            assert [int(data.labels[a][j]) for a in NAMES] == [int((i + k) % 3 == 0) for k in range(len(NAMES))]
    small = load(root=str(root), cache=None, image_size=16, max_images=3)
    assert small.images.shape == (3, 3, 16, 16)


def test_the_seeded_split_is_disjoint_complete_and_reproducible(root):
    train, test = load(root=str(root), cache=None), load("test", root=str(root), cache=None)
    a, b = rows_of(train), rows_of(test)
    assert len(b) == 2 and sorted(a + b) == list(range(20))
    assert rows_of(load("test", root=str(root), cache=None)) == b
    assert rows_of(load("test", root=str(root), cache=None, split_seed=1)) != b


def test_the_official_partition_is_used_when_it_has_test_rows(tmp_path):
    parts = [0, 0, 1, 2, 0, 2, 0, 0]
    root = fake_celeba(tmp_path / "c", n=8, partition=parts)
    assert rows_of(load(root=str(root), cache=None)) == [0, 1, 4, 6, 7]
    assert rows_of(load("test", root=str(root), cache=None)) == [3, 5]


def test_the_partition_file_is_optional(root):
    (root / "list_eval_partition.txt").unlink()
    assert len(load(root=str(root), cache=None)) == 18


def test_the_crop_is_a_square_of_the_width_centred_in_the_image():
    from toolkit_data.celeba import crop_box

    left, top, right, bottom = crop_box(178, 218, 0.8, 0.5)
    assert right - left == pytest.approx(142.4) and bottom - top == pytest.approx(142.4)
    assert (left + right) / 2 == pytest.approx(89) and (top + bottom) / 2 == pytest.approx(109)
    assert crop_box(100, 100, 1.0, 0.9) == (0, 0, 100, 100)  # kept inside the image
    assert crop_box(200, 100, 1.0, 0.5) == (50, 0, 150, 100)  # never taller than the image


def test_the_crop_sees_the_centre_of_the_image(tmp_path):
    root = fake_celeba(tmp_path / "c", n=1)
    img = Image.new("RGB", (178, 218), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 178, 30))  # a red band above the crop (30 < 0.5 * 218 - 71)
    img.save(root / "img_align_celeba" / "000001.jpg", quality=95)
    data = load(root=str(root), cache=None, test_fraction=0)
    assert data.images[0, 0].float().mean() < 20 and data.images[0, 2].float().mean() > 235
    taller = load(root=str(root), cache=None, test_fraction=0, crop=1.0, crop_center=0.0)
    assert taller.images[0, 0, :4].float().mean() > 200  # the top rows now show the band


def test_the_second_load_comes_from_the_cache(root, tmp_path, monkeypatch):
    import toolkit_data.celeba as celeba

    cache = tmp_path / "cache"
    first = load(root=str(root), cache=str(cache))
    files = list(cache.glob("train-*.npz"))
    assert len(files) == 1
    monkeypatch.setattr(celeba, "decode", lambda *a: pytest.fail("decoded again instead of reading the cache"))
    second = load(root=str(root), cache=str(cache))
    assert torch.equal(first.images, second.images)
    assert all(torch.equal(first.labels[a], second.labels[a]) for a in NAMES)
    with np.load(files[0], allow_pickle=False) as f:
        assert f["images"].shape == (18, 32, 32, 3)
    monkeypatch.undo()
    load(root=str(root), cache=str(cache), image_size=16)  # other options: another file
    attr = root / "list_attr_celeba.txt"
    attr.write_bytes(attr.read_bytes().replace(b"000001.jpg   1", b"000001.jpg  -1"))
    changed = load(root=str(root), cache=str(cache))  # another attribute file: another file, replacing the stale one
    assert len(list(cache.glob("train-*.npz"))) == 2
    assert not all(torch.equal(first.labels[a], changed.labels[a]) for a in NAMES)


def test_replaced_images_are_not_served_from_the_cache(root, tmp_path):
    import os

    cache = tmp_path / "cache"
    first = load(root=str(root), cache=str(cache), test_fraction=0)
    folder = root / "img_align_celeba"
    for path in sorted(folder.glob("*.jpg")):  # every image replaced: same names, same attribute file
        with Image.open(path) as img:
            size = img.size
        Image.new("RGB", size, (255, 255, 255)).save(path, quality=95)
    second = load(root=str(root), cache=str(cache), test_fraction=0)
    assert second.images.float().mean() > 250 and not torch.equal(first.images, second.images)
    assert len(list(cache.glob("train-*.npz"))) == 1  # the stale file is gone
    one = folder / "000002.jpg"  # one image, same size, only its time changed (e.g. re-exported)
    Image.new("RGB", Image.open(one).size, (0, 0, 0)).save(one, quality=95)
    st = one.stat()
    os.utime(one, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    third = load(root=str(root), cache=str(cache), test_fraction=0)
    assert third.images[1].float().mean() < 5 and third.images[0].float().mean() > 250


def test_the_cache_can_be_bypassed(root, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    load(root=str(root), cache=None)
    assert not cache.exists()


def test_the_89x109_folder_and_a_named_folder_are_found(tmp_path):
    root = fake_celeba(tmp_path / "a", n=4, folder="img_align_celeba_89x109")
    assert len(load(root=str(root), cache=None, test_fraction=0)) == 4
    root = fake_celeba(tmp_path / "b", n=4, folder="faces")
    assert len(load(root=str(root), cache=None, test_fraction=0, images="faces")) == 4


def test_missing_files_are_named(tmp_path, root):
    with pytest.raises(ToolkitError, match=r"^CelebA attribute file not found: expected .*list_attr_celeba\.txt"):
        load(root=str(tmp_path / "nowhere"), cache=None)
    (root / "img_align_celeba").rename(root / "elsewhere")
    with pytest.raises(ToolkitError, match=r"^CelebA images not found: expected .*img_align_celeba/ or "
                                           r".*img_align_celeba_89x109/ \(or name the folder with data\.options\.images\)$"):
        load(root=str(root), cache=None)
    with pytest.raises(ToolkitError, match=r"^CelebA image folder not found: .*faces$"):
        load(root=str(root), cache=None, images="faces")
    (root / "elsewhere" / "000003.jpg").unlink()
    with pytest.raises(ToolkitError, match=r"^CelebA image .*000003\.jpg is missing \(it is listed in list_attr_celeba\.txt\)$"):
        load(root=str(root), cache=None, images="elsewhere", test_fraction=0)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace(b"20\r\n", b"21\r\n", 1), r"line 1 says 21 images, the file lists 20"),
        (lambda t: t.replace(b"000002.jpg ", b"000002.jpg 1 "), r"line 4: 7 values, expected 6"),
        (lambda t: t.replace(b"000002.jpg  -1", b"000002.jpg   x"), r"values must be -1, 0 or 1"),
        (lambda t: b"", r"is not a CelebA attribute file"),
    ],
)
def test_bad_attribute_files(root, edit, message):
    attr = root / "list_attr_celeba.txt"
    attr.write_bytes(edit(attr.read_bytes()))
    with pytest.raises(ToolkitError, match=message):
        load(root=str(root), cache=None)


def test_options_are_checked():
    with pytest.raises(ToolkitError, match=r"data\.options\.crop:"):
        load(crop=1.5)
    with pytest.raises(ToolkitError, match=r"data\.options\.imgs: unknown key"):
        load(imgs="x")


@pytest.mark.skipif(not (REAL / "list_attr_celeba.txt").is_file(), reason="the CelebA subset is not here")
def test_the_real_subset(tmp_path):
    data = load(root=str(REAL), cache=str(tmp_path / "cache"), max_images=50)
    assert data.images.shape == (50, 3, 32, 32) and len(data.labels) == 40
    assert data.classes["Male"] == ["no", "yes"]
    # only partition 0 here: the held-out split is seeded, and the first 50 train rows are these
    from toolkit_data.folder import split_indices

    lines = (REAL / "list_attr_celeba.txt").read_text().splitlines()
    names, rows = lines[1].split(), [line.split() for line in lines[2:]]
    index = split_indices(len(rows), 0.1, 0, "train")[:50].tolist()
    for attribute in ("Male", "Smiling", "Bald"):
        k = names.index(attribute) + 1
        assert data.labels[attribute].tolist() == [int(rows[i][k] == "1") for i in index]
    assert 40 < float(data.images.float().mean()) < 220


def test_training_on_32x32_colour_data_with_derived_attributes(tmp_path):
    from toolkit.plugins import resolve
    from toolkit.recipe import parse_recipe
    from toolkit.train import Trainer

    root = fake_celeba(tmp_path / "celeba", n=40)
    recipe = resolve(parse_recipe({
        "name": "tiny-celeba",
        "data": {"dataset": "celeba", "options": {"root": str(root), "cache": None},
                 "attributes": {"hair": {"columns": ["Bald", "Black_Hair", "Blond_Hair"], "classes": ["bald", "black", "blond"]},
                                "smile": {"columns": "Smiling"}},
                 "labels": 6, "labeled_ramp": 2},
        "latent": {"u": {"size": 4}, "variables": {"hair": {"kind": "categorical", "label": "hair"},
                                                   "smile": {"kind": "categorical", "label": "smile"},
                                                   "c1": {"kind": "continuous"}}},
        "model": {"network": "paper32", "options": {"width": 0.125}},
        "losses": {"sup": {"weight": 10}, "rec": {"weight": 1}, "info": {"weight": 1, "ramp": 2}, "adv": {"weight": 1, "ramp": 2}},
        "optim": {"batch_size": 4},
        "train": {"steps": 2, "log_every": 1, "sample_every": 2, "checkpoint_every": 2, "device": "cpu"},
    }))
    trainer = Trainer(recipe, tmp_path / "run", "cpu")
    assert trainer.image_shape == (3, 32, 32)
    assert trainer.spec["hair"].classes == ["bald", "black", "blond"] and trainer.spec["smile"].classes == ["no", "yes"]
    hair = trainer.labels["hair"]
    assert torch.bincount(hair[hair >= 0], minlength=3).tolist() == [2, 2, 2]
    result = trainer.run()
    assert (tmp_path / "run" / "checkpoints" / "step-000002.safetensors").is_file()
    assert set(result["encoder_accuracy"]) <= {"hair", "smile"}


def test_a_classifier_learns_a_recipe_derived_attribute(tmp_path):
    import subprocess
    import sys

    import yaml

    root = fake_celeba(tmp_path / "celeba", n=40)
    recipe = tmp_path / "celeba.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "tiny-celeba",
        "data": {"dataset": "celeba", "options": {"root": str(root), "cache": None},
                 "attributes": {"hair": {"columns": ["Bald", "Black_Hair", "Blond_Hair"], "classes": ["bald", "black", "blond"]}}},
        "latent": {"variables": {"hair": {"kind": "categorical", "label": "hair"}}},
        "model": {"network": "paper32"},
        "losses": {"sup": {}},
    }))
    out = tmp_path / "hair.safetensors"
    done = subprocess.run([sys.executable, "-m", "toolkit", "classifier", "train", "--recipe", recipe, "--attribute", "hair",
                           "--epochs", "1", "--network-option", "width=0.25", "-o", out],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    from toolkit.classifier import read_classifier_meta

    meta = read_classifier_meta(out)
    assert meta["attribute"] == "hair" and meta["classes"] == ["bald", "black", "blond"]
    assert meta["attributes"]["hair"]["columns"] == ["Bald", "Black_Hair", "Blond_Hair"]


def test_translate_frames_input_faces_as_training_did():
    """The celeba plugin declares its crop, so a user's photo is cut as the training images were."""
    from toolkit.model import input_crop
    from toolkit.recipe import load_recipe

    recipe = load_recipe(Path(__file__).resolve().parent.parent / "recipes" / "celeba-cpu.yaml")
    crop = input_crop(recipe)
    assert crop is not None
    assert crop(178, 218) == pytest.approx((17.8, 109 - 71.2, 178 - 17.8, 109 + 71.2))  # 0.8 of the width, centred
    tiny = load_recipe(Path(__file__).resolve().parent.parent / "recipes" / "quickstart.yaml")
    assert input_crop(tiny) is None  # datasets without a declared crop: the centre square
