"""Checkpoints: self-describing round trip, atomic writes, and refusal of bad files."""

import json
import pickle
from pathlib import Path

import pytest
import torch
from tiny import tiny_recipe

from toolkit.checkpoint import read_meta, read_tensors
from toolkit.errors import CheckpointError
from toolkit.model import load_model
from toolkit.rundir import newest_checkpoint
from toolkit.train import Trainer


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    trainer = Trainer(tiny_recipe(steps=2), run, "cpu")
    result = trainer.run()
    return trainer, result["checkpoint"]


def test_round_trip_needs_only_the_file(trained):
    trainer, path = trained
    model = load_model(path)
    assert model.step == 2
    assert model.spec.to_dict() == trainer.spec.to_dict()
    assert model.recipe == trainer.recipe
    for key, value in trainer.inference_networks().state_dict().items():  # BN statistics re-estimated
        assert torch.equal(model.networks.state_dict()[key], value), key
    meta = read_meta(path)
    assert meta["versions"]["torch"] == torch.__version__
    assert set(meta["plugins"]) >= {"paper", "data"}


def test_model_generates_translates_and_interpolates(trained):
    model = load_model(trained[1])
    images = model.generate(3, ["item=trouser"], seed=1)
    assert images.shape == (3, 1, 28, 28) and 0 <= images.min() and images.max() <= 1
    assert torch.equal(images, model.generate(3, {"item": 1}, seed=1))
    z = model.sample_z(3, ["item=bag", "c1=0.5"])
    assert (z[:, model.spec.slices["item"]].argmax(1) == 8).all() and (z[:, model.spec.slices["c1"]] == 0.5).all()
    assert model.translate(images, ["item=bag"]).shape == images.shape
    assert model.interpolate(images[:1], images[1:2], 5).shape == (5, 1, 28, 28)


def test_translate_keeping_details_adds_the_models_edit_to_the_input(trained):
    from toolkit.images import smooth

    model = load_model(trained[1])
    images = torch.rand(3, 1, 28, 28)
    assert torch.equal(model.translate(images, [], keep_details=True), images)  # nothing set: nothing changes
    kept = model.translate(images, ["item=bag"], keep_details=True)
    edit = smooth(model.translate(images, ["item=bag"]) - model.reconstruct(images))
    inside = (images + edit > 0) & (images + edit < 1)  # where the sum needs no clamping
    assert torch.allclose((kept - images)[inside], edit[inside], atol=1e-6)
    assert torch.equal(model.translate(images, ["item=bag"], strength=1.0), model.translate(images, ["item=bag"]))
    assert not torch.equal(model.translate(images, ["item=bag"], strength=3.0), model.translate(images, ["item=bag"]))


def test_newest_checkpoint(trained, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match="no checkpoint found"):
        newest_checkpoint()


def test_newest_checkpoint_skips_hidden_files(tmp_path, monkeypatch):
    import time

    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "runs" / "a" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "step-000002.safetensors").write_bytes(b"good")
    time.sleep(0.01)
    for hidden in ("._step-000002.safetensors", ".step-000004.safetensors.x1y2.safetensors"):  # AppleDouble; half-written
        (folder / hidden).write_bytes(b"junk")
    (tmp_path / "runs" / ".Trash" / "checkpoints").mkdir(parents=True)
    (tmp_path / "runs" / ".Trash" / "checkpoints" / "step-9.safetensors").write_bytes(b"old")
    assert newest_checkpoint() == Path("runs") / "a" / "checkpoints" / "step-000002.safetensors"


@pytest.mark.parametrize("case", ["truncated", "pickle", "no-metadata", "garbage-json", "missing"])
def test_bad_checkpoints_are_refused_with_one_clear_message(trained, tmp_path, case):
    from safetensors.torch import save_file

    good = open(trained[1], "rb").read()
    bad = tmp_path / "bad.safetensors"
    if case == "truncated":
        bad.write_bytes(good[: len(good) // 2])
    elif case == "pickle":
        bad.write_bytes(pickle.dumps({"generator.fc.0.weight": [1.0]}))
    elif case == "no-metadata":
        save_file({"x": torch.zeros(1)}, str(bad))
    elif case == "garbage-json":
        save_file({"x": torch.zeros(1)}, str(bad), metadata={"toolkit": "{not json"})
    with pytest.raises(CheckpointError) as info:
        load_model(bad)
    assert str(bad) in str(info.value)
    assert "\n" not in str(info.value)


def _image(kind):
    def write(path):
        from PIL import Image

        Image.new("RGB", (8, 8), (200, 30, 30)).save(path, format=kind)

    return write


def _touch_when_unpickled(path):
    """A pickle that creates ``path.marker`` if anything ever unpickles it."""
    class Payload:
        def __reduce__(self):
            return Path.touch, (path.with_suffix(".marker"),)

    path.write_bytes(pickle.dumps(Payload()))


NOT_SAFETENSORS = {
    # id: (write the file, what the message says it is); the kind of file a user passes by mistake
    "png-image": (_image("PNG"), "a PNG image"),
    "jpeg-image": (_image("JPEG"), "a JPEG image"),
    "text-file": (lambda p: p.write_text("notes about the run: try width 0.5 next\n"), "a text file"),
    "short-text-file": (lambda p: p.write_text("hi\n"), "a text file"),
    "empty-file": (lambda p: p.write_bytes(b""), "an empty file (0 bytes)"),
    "git-lfs-pointer": (lambda p: p.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 9\n"),
                        "a Git LFS pointer"),
    "pickle": (_touch_when_unpickled, "it looks like a pickle (torch.save)"),
    "binary-junk": (lambda p: p.write_bytes(bytes(range(256)) * 4), "a file of another format"),
}


@pytest.mark.parametrize("read", [read_meta, read_tensors], ids=["read_meta", "read_tensors"])
@pytest.mark.parametrize("case", NOT_SAFETENSORS)
def test_a_file_that_is_not_safetensors_says_what_it_is_and_what_is_valid(tmp_path, case, read):
    write, what = NOT_SAFETENSORS[case]
    path = tmp_path / "model.safetensors"
    write(path)
    with pytest.raises(CheckpointError) as info:
        read(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {what}, not a readable safetensors checkpoint"), message
    assert message.endswith("(expected a .safetensors checkpoint written by toolkit train, "
                            "or a classifier written by toolkit classifier train)"), message
    assert "truncated" not in message and "\n" not in message
    assert not path.with_suffix(".marker").exists()  # never unpickled


def _tiny_safetensors(path) -> bytes:
    from safetensors.torch import save_file

    save_file({"w": torch.arange(64, dtype=torch.float32)}, str(path), metadata={"toolkit": json.dumps({"format": 1})})
    return path.read_bytes()


@pytest.mark.parametrize("read", [read_meta, read_tensors], ids=["read_meta", "read_tensors"])
@pytest.mark.parametrize("cut", ["in-the-data", "in-the-header"])
def test_a_truncated_safetensors_file_says_how_much_is_missing(tmp_path, cut, read):
    path = tmp_path / "model.safetensors"
    data = _tiny_safetensors(path)
    header = 8 + int.from_bytes(data[:8], "little")
    keep = len(data) - 100 if cut == "in-the-data" else header - 10
    path.write_bytes(data[:keep])
    with pytest.raises(CheckpointError) as info:
        read(path)
    want = f"{len(data):,}" if cut == "in-the-data" else f"at least {header:,}"
    assert str(info.value) == (f"{path}: not a readable safetensors checkpoint (truncated: {keep:,} of {want} bytes): "
                               "the copy or download was cut short")


def test_a_safetensors_file_with_a_corrupt_header_says_so(tmp_path):
    path = tmp_path / "model.safetensors"
    data = bytearray(_tiny_safetensors(path))
    data[9] = ord("!")  # '{"' -> '{!'
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError) as info:
        read_meta(path)
    assert str(info.value).startswith(f"{path}: not a readable safetensors checkpoint (corrupt header: JSONDecodeError: ")
    assert "truncated" not in str(info.value)


def test_weights_from_another_architecture_are_refused(trained, tmp_path):
    from safetensors.torch import save_file

    meta = read_meta(trained[1])
    meta["recipe"]["model"]["options"]["width"] = 0.25
    tensors = dict(load_model(trained[1]).networks.state_dict())
    path = tmp_path / "other.safetensors"
    save_file(tensors, str(path), metadata={"toolkit": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="weights do not match network 'paper28'"):
        load_model(path)


def test_missing_plugin_is_named(trained, tmp_path):
    from safetensors.torch import save_file

    meta = read_meta(trained[1])
    meta["recipe"]["model"]["network"] = "fancy64"
    meta["plugins"]["fancy"] = "toolkit-fancy 1.0"
    path = tmp_path / "fancy.safetensors"
    save_file({"x": torch.zeros(1)}, str(path), metadata={"toolkit": json.dumps(meta)})
    with pytest.raises(CheckpointError,
                       match=r"network 'fancy64' is not registered here; the file was made with plugins: .*toolkit-fancy 1.0"):
        load_model(path)  # a file from before checkpoints recorded which plugin provides what
    meta["provides"] = {"network": {"fancy64": "fancy"}}
    save_file({"x": torch.zeros(1)}, str(path), metadata={"toolkit": json.dumps(meta)})
    with pytest.raises(CheckpointError, match=r"network 'fancy64' came from plugin 'fancy' \(toolkit-fancy 1.0\), which "
                                              r"is not installed here or was skipped \(see toolkit plugins\); install toolkit-fancy"):
        load_model(path)


def test_checkpoints_record_which_plugin_provides_what(trained):
    meta = read_meta(trained[1])
    assert meta["provides"] == {"dataset": {"fashion-mnist-mini": "data"}, "network": {"paper28": "paper"},
                                "loss": {"sup": "paper", "rec": "paper", "info": "paper", "adv": "paper"}}
    assert meta["plugins"]["paper"].startswith("toolkit-gan ")


def test_a_crash_while_writing_leaves_the_previous_checkpoint_intact(trained, tmp_path, monkeypatch):
    import safetensors.torch

    from toolkit import checkpoint

    trainer, path = trained
    target = tmp_path / "ckpt.safetensors"
    target.write_bytes(open(path, "rb").read())

    def crash(tensors, filename, metadata=None):
        open(filename, "wb").write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", crash)
    with pytest.raises(OSError):
        checkpoint.save_checkpoint(target, trainer.networks, read_meta(path))
    assert load_model(target).step == 2
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.safetensors"]
