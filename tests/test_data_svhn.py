"""The svhn dataset, on tiny .mat files written in SVHN's format (no download at test time)."""

import builtins

import numpy as np
import pytest
import torch

from toolkit.errors import ToolkitError
from toolkit.plugins import registry

scipy_io = pytest.importorskip("scipy.io")


def write_svhn(root, split: str, labels: list[int], seed: int = 0):
    """``<split>_32x32.mat`` as SVHN ships it: X (32, 32, 3, N) uint8, y (N, 1) with 10 for the digit 0."""
    root.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(seed).integers(0, 256, (32, 32, 3, len(labels)), dtype=np.uint8)
    scipy_io.savemat(root / f"{split}_32x32.mat", {"X": x, "y": np.array(labels, dtype=np.uint8).reshape(-1, 1)})
    return x


def load(split="train", **options):
    return registry("dataset").get("svhn").build(options=options, split=split, where="data.options")


def test_loads_both_splits_with_ten_meaning_zero(tmp_path):
    x = write_svhn(tmp_path, "train", [1, 10, 5, 9, 10])
    write_svhn(tmp_path, "test", [3, 10], seed=1)
    train, test = load(root=str(tmp_path)), load("test", root=str(tmp_path))
    assert train.images.shape == (5, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.labels["digit"].tolist() == [1, 0, 5, 9, 0] and test.labels["digit"].tolist() == [3, 0]
    assert train.classes["digit"] == [str(i) for i in range(10)]
    # image n is X[:, :, :, n]: rows, columns, channels
    assert torch.equal(train.images[2], torch.from_numpy(x[:, :, :, 2]).permute(2, 0, 1))


def test_missing_files_say_where_and_how(tmp_path):
    with pytest.raises(ToolkitError, match=r"^SVHN not found: expected .*train_32x32\.mat; point data\.options\.root "
                                           r"at it, or set data\.options\.download=true$"):
        load(root=str(tmp_path))


def test_a_bad_file_is_a_toolkit_error(tmp_path):
    scipy_io.savemat(tmp_path / "train_32x32.mat", {"X": np.zeros((4, 4), np.uint8), "y": np.zeros((1, 1), np.uint8)})
    with pytest.raises(ToolkitError, match=r"expected X \(32, 32, 3, N\) uint8"):
        load(root=str(tmp_path))
    (tmp_path / "train_32x32.mat").write_bytes(b"not a mat file")
    with pytest.raises(ToolkitError, match=r"^cannot read SVHN file"):
        load(root=str(tmp_path))


def test_without_scipy_the_error_says_what_to_install(tmp_path, monkeypatch):
    write_svhn(tmp_path, "train", [1])
    real_import = builtins.__import__

    def no_scipy(name, *args, **kwargs):
        if name == "scipy" or name.startswith("scipy."):
            raise ImportError(f"No module named '{name}'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_scipy)
    with pytest.raises(ToolkitError, match=r"needs scipy.*pip install scipy"):
        load(root=str(tmp_path))


def test_the_svhn_recipe_trains_on_tiny_files(tmp_path):
    from toolkit.data import load_dataset
    from toolkit.latent import build_spec
    from toolkit.plugins import resolve
    from toolkit.recipe import load_recipe

    write_svhn(tmp_path, "train", list(range(1, 11)) * 2)
    recipe = resolve(load_recipe("recipes/svhn.yaml", [f"data.options.root={tmp_path}", "data.options.download=false"]))
    data = load_dataset(recipe, "train")
    spec = build_spec(recipe, data)
    assert spec.u_size == 128 and [v.size for v in spec.categorical] == [10, 5, 5, 5] and len(spec.continuous) == 4
    assert spec["digit"].label == "digit" and spec["digit"].classes[0] == "0"
