"""Reference classifiers: a tiny training run, the file round trip, predict, the CLI."""

import os
import re
import subprocess
import sys

import pytest
import torch

from toolkit.checkpoint import write_safetensors
from toolkit.classifier import (
    balanced_accuracy,
    balanced_order,
    class_accuracy,
    classifier_hash,
    data_hash,
    load_classifier,
    predict,
    read_classifier_meta,
    save_classifier,
    shift,
    train_classifier,
    training_view,
)
from toolkit.errors import CheckpointError, ToolkitError
from toolkit.plugins import registry

# 600 images, 2 epochs of batches of 32, width 0.25: seeds 0-3 gave 57-68% on the 1,000 test images
TINY = dict(network_options={"width": 0.25}, epochs=2, batch_size=32, lr=3e-3, limit=600, seed=0, reject=False)
CLI_TINY = ["--network-option", "width=0.25", "--epochs", "1", "--batch-size", "32", "--limit", "300"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny convolutions run faster on one thread (and do not fight other jobs for cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    module, meta = train_classifier("fashion-mnist-mini", {}, "item", **TINY)
    path = save_classifier(tmp_path_factory.mktemp("clf") / "fm-item.safetensors", module, meta)
    return module, meta, path


def test_cnn28_is_registered():
    entry = registry("classifier").get("cnn28")
    assert entry.plugin == "paper" and entry.description
    net = entry.build((1, 28, 28), 10, options={"width": 0.25})
    assert net(torch.rand(3, 1, 28, 28)).shape == (3, 10)


def test_tiny_classifier_learns(trained):
    module, meta, _ = trained
    assert not module.training
    assert meta["test_accuracy"] > 0.5  # chance is 0.1
    assert meta["kind"] == "classifier" and meta["format"] == 1
    assert meta["dataset"] == "fashion-mnist-mini" and meta["dataset_options"] == {} and meta["attribute"] == "item"
    assert meta["classes"][:2] == ["t-shirt", "trouser"] and len(meta["classes"]) == 10
    assert meta["image_shape"] == [1, 28, 28] and meta["test_images"] == 1000
    assert meta["balance"] is True and list(meta["class_accuracy"]) == meta["classes"]
    recalls = list(meta["class_accuracy"].values())
    assert meta["balanced_accuracy"] == pytest.approx(sum(recalls) / 10)
    assert meta["network"] == "cnn28" and meta["network_options"] == {"width": 0.25, "dropout": 0.3}
    assert meta["epochs"] == 2 and meta["seed"] == 0 and meta["training"]["train_images"] == 600
    assert re.fullmatch(r"[0-9a-f]{64}", meta["data_hash"]) and "torch" in meta["versions"]


def test_balanced_order_draws_a_rare_class_as_often_as_a_common_one():
    labels = torch.tensor([0] * 960 + [1] * 40)  # 4% positive, like pale skin on CelebA
    drawn = labels[balanced_order(labels, 20000, torch.Generator().manual_seed(0))]
    assert abs(drawn.float().mean().item() - 0.5) < 0.02
    assert set(balanced_order(labels, 50, torch.Generator().manual_seed(1)).tolist()) <= set(range(1000))


def test_balanced_accuracy_exposes_a_judge_that_always_answers_the_common_class():
    labels = torch.tensor([0] * 96 + [1] * 4)
    always_no = torch.zeros(100, dtype=torch.long)
    per_class = class_accuracy(always_no, labels, ["no", "yes"])
    assert per_class == {"no": 1.0, "yes": 0.0}
    assert balanced_accuracy(per_class) == 0.5  # its plain accuracy is 96%
    assert class_accuracy(always_no, labels, ["no", "yes", "never"])["never"] is None
    assert balanced_accuracy({"no": 1.0, "yes": 0.5, "never": None}) == 0.75


def test_round_trip(trained):
    module, meta, path = trained
    loaded, meta2 = load_classifier(path)
    assert meta2 == meta and not loaded.training
    _, meta3 = load_classifier(path)
    assert meta3["data_hash"] == meta["data_hash"]
    test = registry("dataset").get("fashion-mnist-mini").build(options={}, split="test")
    assert data_hash(test.images, test.labels["item"]) == meta["data_hash"]  # every test image is labeled
    predicted = predict(loaded, test.images)
    assert torch.equal(predicted, predict(module, test.images))
    assert (predicted == test.labels["item"]).float().mean().item() == pytest.approx(meta["test_accuracy"])
    assert classifier_hash(path) == classifier_hash(path) and re.fullmatch(r"[0-9a-f]{64}", classifier_hash(path))


def test_data_hash_depends_on_images_and_labels():
    images, labels = torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.arange(4)
    base = data_hash(images, labels)
    assert data_hash(images.clone(), labels.clone()) == base
    assert data_hash(images, labels.flip(0)) != base
    images[0, 0, 0, 0] = 1
    assert data_hash(images, labels) != base


def test_predict(trained):
    module, _, _ = trained
    images = torch.randint(0, 256, (7, 1, 28, 28), dtype=torch.uint8)
    out = predict(module, images, batch_size=3)
    assert out.shape == (7,) and out.dtype == torch.long and int(out.min()) >= 0 and int(out.max()) < 10
    assert torch.equal(out, predict(module, images.float() / 255))
    module.train()
    predict(module, images)
    assert module.training  # predict restores the mode it found
    module.eval()


def test_shift_moves_each_image_by_at_most_max_shift():
    images = torch.zeros(64, 1, 9, 9)
    images[:, :, 4, 4] = 1
    moved = shift(images, 2, torch.Generator().manual_seed(0))
    assert moved.shape == images.shape and torch.equal(moved.sum((1, 2, 3)), torch.ones(64))
    where = moved[:, 0].flatten(1).argmax(1)
    rows, cols = where // 9, where % 9
    assert set(rows.tolist()) == set(range(2, 7)) and set(cols.tolist()) == set(range(2, 7))
    assert torch.equal(shift(images, 0, torch.Generator()), images)


def test_training_view_mirrors_about_half_the_images_only_with_flip():
    images = torch.zeros(400, 1, 9, 9)
    images[:, :, 4, 1] = 1  # a dot on the left
    g = torch.Generator().manual_seed(0)
    assert torch.equal(training_view(images, 0, False, g), images)
    mirrored = training_view(images, 0, True, g)[:, 0, 4]
    on_right = mirrored[:, 7] == 1
    assert torch.all(on_right | (mirrored[:, 1] == 1)) and 150 < int(on_right.sum()) < 250


def test_flip_is_recorded_and_shown(tmp_path):
    done = toolkit("classifier", "train", "fashion-mnist-mini", "--attribute", "item", *CLI_TINY, "--flip",
                   "-o", "f.safetensors", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert read_classifier_meta(tmp_path / "f.safetensors")["flip"] is True
    shown = toolkit("classifier", "show", "f.safetensors", cwd=tmp_path)
    assert "epochs, seed 0, left-right flips" in shown.stdout


def test_refuses_other_files(tmp_path):
    other = tmp_path / "gan.safetensors"
    write_safetensors(other, {"w": torch.zeros(2)}, {"format": 1, "kind": "checkpoint"})
    with pytest.raises(CheckpointError, match="a toolkit checkpoint file, not a classifier"):
        load_classifier(other)
    bare = tmp_path / "bare.safetensors"
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(bare))
    with pytest.raises(CheckpointError, match="without toolkit metadata"):
        read_classifier_meta(bare)


@pytest.mark.parametrize(
    "args, message",
    [
        (("fashion-mnist-mini", {}, "colour"), r"^the dataset has no attribute 'colour': available: item$"),
        (("fashion-mnist-mini", {"root": "x"}, "item"), r"^dataset_options\.root: unknown key"),
        (("mnist", {"root": "nowhere", "download": False}, "digit"), r"^MNIST not found under nowhere"),
        (("fashion-mnist-mini", {}, "item", "cnn29"), r"^unknown classifier 'cnn29': did you mean 'cnn28'\?"),
        (("fashion-mnist-mini", {}, "item", "cnn28", {"widht": 2}), r"^network_options\.widht: unknown key"),
    ],
)
def test_user_errors(args, message):
    with pytest.raises(ToolkitError, match=message):
        train_classifier(*args, epochs=1, limit=10)


# -- command line --------------------------------------------------------------------------
def toolkit(*args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "toolkit", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env=env)


def test_cli_train_and_show(tmp_path):
    done = toolkit("classifier", "train", "fashion-mnist-mini", "--attribute", "item", *CLI_TINY, "-o", "c.safetensors",
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    match = re.search(r"test accuracy (\d+\.\d\d)% on 1000 images \(balanced (\d+\.\d\d)%; per class "
                      r"t-shirt \d+\.\d%, trouser .*\); saved c\.safetensors", done.stdout)
    assert match, done.stdout
    meta = read_classifier_meta(tmp_path / "c.safetensors")
    assert meta["training"]["train_images"] == 300 and meta["network_options"]["width"] == 0.25
    assert meta["flip"] is False
    shown = toolkit("classifier", "show", "c.safetensors", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert f"test accuracy: {match.group(1)}% on 1000 images" in shown.stdout
    assert f"per class:     balanced {match.group(2)}%; t-shirt " in shown.stdout
    assert "(class-balanced sampling)" in shown.stdout and "flips" not in shown.stdout
    assert meta["data_hash"] in shown.stdout and "fashion-mnist-mini" in shown.stdout
    assert classifier_hash(tmp_path / "c.safetensors") in shown.stdout


def test_cli_unknown_attribute_prints_one_line_and_exits_1(tmp_path):
    done = toolkit("classifier", "train", "fashion-mnist-mini", "--attribute", "colour", "--epochs", "1", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == "error: the dataset has no attribute 'colour': available: item"
    assert "Traceback" not in done.stderr and not list(tmp_path.iterdir())


def test_trained_judge_has_a_no_class_output_that_round_trips(tmp_path):
    module, meta = train_classifier("fashion-mnist-mini", {}, "item", **{**TINY, "limit": 64, "epochs": 1, "reject": True})
    path = save_classifier(tmp_path / "judge.safetensors", module, meta)
    assert meta["reject"] is True and module.reject_index == 10
    assert module(torch.rand(2, 1, 28, 28)).shape == (2, 11)
    loaded, _ = load_classifier(path)
    assert loaded.reject_index == 10
    x = torch.rand(5, 1, 28, 28)
    assert torch.equal(predict(loaded, x), predict(module, x))


def test_predict_reports_the_no_class_output_as_minus_one():
    class AlwaysLast(torch.nn.Module):
        reject_index = 3

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x):
            return torch.tensor([0.0, 1.0, 2.0, 3.0]).expand(len(x), 4) + self.w

    assert predict(AlwaysLast(), torch.rand(3, 1, 4, 4)).tolist() == [-1, -1, -1]


def test_negatives_are_blobs_noise_and_ghosts_of_two_classes():
    from toolkit.classifier import negatives

    g = torch.Generator().manual_seed(0)
    x = torch.zeros(8, 1, 28, 28)
    x[:4, :, 4:24, 13:15] = 1.0  # class 0: a thin upright bar
    x[4:, :, 13:15, 4:24] = 1.0  # class 1: a thin lying bar
    y = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    fakes = negatives(x, y, 9, g)
    assert fakes.shape == (9, 1, 28, 28) and fakes.min() >= 0 and fakes.max() <= 1
    blobs = fakes[:3]
    assert (blobs.amax(dim=(1, 2, 3)) < 0.9).all(), "a heavy blur leaves no sharp full-intensity bar"
    assert fakes[3:6].std() > 0.05, "noise"
    assert negatives(x, y, 0, g).shape == (0, 1, 28, 28)


def test_without_reject_the_classifier_has_one_output_per_class(trained):
    module, meta, _ = trained
    assert meta["reject"] is False and not hasattr(module, "reject_index")
    assert module(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_no_balance_trains_on_plain_permutations_and_says_so(tmp_path):
    module, meta = train_classifier("fashion-mnist-mini", {}, "item", **{**TINY, "limit": 64, "epochs": 1, "balance": False})
    assert meta["balance"] is False and len(meta["class_accuracy"]) == 10
    path = save_classifier(tmp_path / "plain.safetensors", module, meta)
    shown = toolkit("classifier", "show", path, cwd=tmp_path)
    assert shown.returncode == 0 and "(plain sampling)" in shown.stdout


def test_show_says_when_a_file_predates_per_class_accuracy(trained, tmp_path):
    module, meta, _ = trained
    old = {k: v for k, v in meta.items() if k not in ("class_accuracy", "balanced_accuracy", "balance")}
    path = save_classifier(tmp_path / "old.safetensors", module, old)
    shown = toolkit("classifier", "show", path, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "per class:     not recorded" in shown.stdout
