"""A corpus of bad input: each case shows the one line a user sees, and that nothing breaks.

Every case runs ``toolkit.cli.main()`` in-process (the same path as the ``toolkit`` command:
a ``ToolkitError`` becomes one line ``error: ...`` on stderr and exit code 1; typer usage
errors exit 2), and checks the exit code, that no traceback escapes, the key part of the
message (what, where, what is valid) and, where it matters, that nothing saved is damaged
and nothing half-written is left behind. The last tests interrupt a real ``toolkit train``
process with SIGTERM and SIGINT and resume it.
"""

import copy
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from tiny import TINY, tiny_recipe, tiny_yaml

import toolkit.cli
import toolkit.data
import toolkit.errors
import toolkit.losses
from toolkit.checkpoint import read_meta
from toolkit.errors import ToolkitError
from toolkit.model import load_model
from toolkit.plugins import resolve
from toolkit.recipe import load_recipe
from toolkit.rundir import RESUME_FILE
from toolkit.train import Trainer


# -- running the CLI in-process --------------------------------------------------------------
@pytest.fixture
def cli(capsys, monkeypatch):
    """``cli(*args) -> (exit code, stdout, stderr)``, through ``toolkit.cli.main()`` as a user runs it."""
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # main() replaces it

    def run(*args):
        monkeypatch.setattr(sys, "argv", ["toolkit", *map(str, args)])
        capsys.readouterr()
        try:
            toolkit.cli.main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        # any other exception propagates: that is a traceback the user would see
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def error_line(code, err, *fragments, exit_code=1):
    """Check a user error: the exit code, one ``error:`` line, no traceback, the key fragments."""
    assert "Traceback" not in err, err
    assert code == exit_code, err
    lines = err.strip().splitlines()
    if exit_code == 1:
        assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    return lines[0] if lines else ""


def training_error(code, err, *fragments):
    """A user error once training has started: progress lines, then one ``error:`` line, last."""
    assert "Traceback" not in err, err
    assert code == 1, err
    lines = err.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), err
    assert sum(line.startswith("error: ") for line in lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[-1], f"{fragment!r} not in {lines[-1]!r}"
    return lines[-1]


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny trained run (2 steps): its folder, its checkpoint, and a recipe YAML."""
    base = tmp_path_factory.mktemp("bad-input")
    run = base / "run"
    result = Trainer(tiny_recipe(steps=2), run, "cpu").run()
    recipe = tiny_yaml(base / "tiny.yaml", steps=2)
    good = base / "good.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(good)
    return {"run": run, "checkpoint": Path(result["checkpoint"]), "recipe": recipe, "image": good}


# -- recipes ---------------------------------------------------------------------------------
def _edit(change):
    def write(path):
        data = copy.deepcopy(TINY)
        change(data)
        path.write_text(yaml.safe_dump(data))

    return write


def _text(text):
    return lambda path: path.write_text(text)


RECIPES = {
    # id: (write the recipe at path, extra args, fragments of the message)
    "unknown-top-level-key": (_edit(lambda d: d.update(epochs=3)), [],
                              ["epochs: unknown key", "allowed: name, seed, data"]),
    "unknown-nested-key": (_edit(lambda d: d["optim"].update(batchsize=8)), [],
                           ["optim.batchsize: unknown key; did you mean 'batch_size'? allowed: batch_size"]),
    "wrong-type": (_edit(lambda d: d["train"].update(steps="many")), [],
                   ["train.steps:", "integer", "'many'"]),
    "missing-required-key": (_edit(lambda d: d.pop("model")), [], ["model: required key is missing"]),
    "yaml-syntax-error": (_text("name: tiny\nseed: 0\ndata: {dataset: [fashion-mnist-mini\n"), [],
                          ["line 4", "invalid YAML"]),
    "yaml-python-tag": (_text("name: !!python/object/apply:os.system ['touch PWNED']\n"), [],
                        ["line 1", "python/object/apply:os.system"]),
    "not-a-mapping": (_text("- name: tiny\n- seed: 0\n"), [], ["must be a YAML mapping, got list"]),
    "empty-file": (_text(""), [], ["must be a YAML mapping"]),
    "missing-file": (None, [], ["recipe not found:"]),
    "a-directory": (lambda path: path.mkdir(), [], ["cannot read recipe", "directory"]),
    "unknown-dataset": (_edit(lambda d: d["data"].update(dataset="fashion-mnist-maxi")), [],
                        ["unknown dataset 'fashion-mnist-maxi'", "did you mean 'fashion-mnist-mini'"]),
    "unknown-network": (_edit(lambda d: d["model"].update(network="paper29")), [],
                        ["unknown network 'paper29'", "did you mean", "available:", "paper28"]),
    "unknown-loss": (_edit(lambda d: d["losses"].update(supp={})), [], ["unknown loss 'supp'", "did you mean 'sup'"]),
    "bad-plugin-option-key": (_edit(lambda d: d["model"]["options"].update(widht=0.5)), [],
                              ["model.options.widht: unknown key; did you mean 'width'? allowed:", "width"]),
    "bad-plugin-option-value": (_edit(lambda d: d["model"]["options"].update(width=-1)), [],
                                ["model.options.width:", "greater than 0", "(got -1)"]),
    "set-without-equals": (_edit(lambda d: None), ["--set", "train.steps"],
                           ["--set expects KEY.PATH=VALUE, got 'train.steps'"]),
    "set-within-a-scalar": (_edit(lambda d: None), ["--set", "seed.value=3"],
                             ["--set seed.value: 'seed' is a value, not a section"]),
    "set-unknown-key": (_edit(lambda d: None), ["--set", "train.stepz=3"],
                        ["train.stepz: unknown key; did you mean 'steps'? allowed: steps"]),
    "short-form-of-a-key": (_edit(lambda d: None), ["--set", "train.keep=3"],
                            ["train.keep: unknown key; did you mean 'keep_checkpoints'? allowed: steps"]),
    "a-value-for-a-section": (_edit(lambda d: None), ["--set", "losses.rec=0.5"],
                              ["losses.rec: expected a mapping with keys weight, ramp, options (got 0.5)"]),
    "a-value-for-the-data-section": (_edit(lambda d: d.update(data=3)), [],
                                     ["data: expected a mapping with keys dataset, options"]),
}


@pytest.mark.parametrize("case", RECIPES)
def test_bad_recipes(cli, tmp_path, monkeypatch, case):
    write, extra, fragments = RECIPES[case]
    monkeypatch.chdir(tmp_path)
    recipe = tmp_path / "recipe.yaml"
    if write is not None:
        write(recipe)
    code, _, err = cli("train", recipe, *extra, "--out", tmp_path / "run")
    error_line(code, err, *fragments, *([] if case.startswith("set-with") else [str(recipe)]))
    assert not (tmp_path / "run").exists() and not (tmp_path / "runs").exists()  # nothing written
    assert not (tmp_path / "PWNED").exists()  # no YAML tag ran anything
    code, _, err = cli("recipe", "validate", recipe, *extra)
    error_line(code, err, *fragments)


# -- images given to translate / interpolate ---------------------------------------------------
def _rgb(size=(40, 30)):
    return Image.fromarray((np.random.default_rng(0).random((size[1], size[0], 3)) * 255).astype(np.uint8))


def _phone_jpeg(path, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    _rgb((40, 30)).save(path, format="JPEG", exif=exif)


def _truncated(path):
    buffer = io.BytesIO()
    _rgb((64, 64)).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])


IMAGES = {
    # id: (write the image at path, None if it works or the fragments of the message)
    "truncated-png": (_truncated, ["cannot read image", "truncated"]),
    "empty-file": (lambda p: p.write_bytes(b""), ["not an image Pillow can read"]),
    "text-file": (lambda p: p.write_text("this is not an image\n"), ["not an image Pillow can read"]),
    "16-bit-png": (lambda p: Image.fromarray((np.arange(40 * 30).reshape(30, 40) * 50).astype(np.uint16)).save(p), None),
    "cmyk-jpeg": (lambda p: Image.new("CMYK", (30, 40), (0, 128, 255, 20)).save(p, format="JPEG"), None),
    "palette-png": (lambda p: _rgb().convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(p), None),
    "rgba-png": (lambda p: _rgb().convert("RGBA").save(p), None),
    "la-png-with-transparency": (lambda p: Image.new("LA", (20, 20), (200, 0)).save(p), None),
    "decompression-bomb": (lambda p: _rgb((100, 100)).save(p), ["image too large", "refused"]),
    "decompression-bomb-far-over": (lambda p: _rgb((100, 100)).save(p), ["image too large", "refused"]),
    "a-directory": (lambda p: p.mkdir(), ["is a folder, expected an image file"]),
    "missing-file": (None, ["no such file"]),
    "phone-jpeg-with-exif-orientation": (lambda p: _phone_jpeg(p, 6), None),
    "exif-orientation-out-of-range": (lambda p: _phone_jpeg(p, 42), None),
}


@pytest.mark.parametrize("command", ["translate", "interpolate"])
@pytest.mark.parametrize("case", IMAGES)
def test_images(cli, trained, tmp_path, monkeypatch, command, case):
    write, fragments = IMAGES[case]
    monkeypatch.chdir(tmp_path)
    if case.startswith("decompression-bomb"):  # 100x100 = 10,000 pixels: Pillow warns above the limit, fails above twice it
        monkeypatch.setattr("toolkit.images.MAX_PIXELS", 5000 if case == "decompression-bomb" else 1000)
    image = tmp_path / "input.png"
    if write is not None:
        write(image)
    out = tmp_path / "out.png"
    if command == "translate":
        args = ["translate", image, trained["image"], "--set", "item=bag"]
    else:
        args = ["interpolate", trained["image"], image, "--steps", "3"]
    code, stdout, err = cli(*args, "-c", trained["checkpoint"], "-o", out, "--device", "cpu")
    if fragments is None:
        assert code == 0 and "Traceback" not in err, err
        assert f"wrote {out}" in stdout
        assert Image.open(out).size == ((2 * 30 + 2, 2 * 30 + 2) if command == "translate" else (5 * 30 + 2, 30 + 2))
    else:
        error_line(code, err, str(image), *fragments)
        assert not out.exists()


# -- checkpoints --------------------------------------------------------------------------------
def _other_width(trained, path):
    from safetensors.torch import save_file

    from toolkit.latent import LatentSpec
    from toolkit.networks import build_networks

    meta = read_meta(trained["checkpoint"])
    options = dict(meta["recipe"]["model"]["options"], width=0.25)
    nets = build_networks("paper28", LatentSpec.from_dict(meta["latent"]), (1, 28, 28), options)
    save_file(dict(nets.state_dict()), str(path), metadata={"toolkit": json.dumps(meta)})


def _without_metadata(trained, path):
    from safetensors.torch import load_file, save_file

    save_file(load_file(str(trained["checkpoint"])), str(path))


def _pickle(trained, path):
    from safetensors.torch import load_file

    torch.save(load_file(str(trained["checkpoint"])), path)


def _classifier(trained, path):
    from toolkit.checkpoint import FORMAT
    from toolkit.classifier import build_classifier, save_classifier

    meta = {"format": FORMAT, "kind": "classifier", "dataset": "fashion-mnist-mini", "attribute": "item",
            "classes": [str(i) for i in range(10)], "image_shape": [1, 28, 28], "network": "cnn28",
            "network_options": {}}
    save_classifier(path, build_classifier("cnn28", (1, 28, 28), 10), meta)


def _incomplete_metadata(trained, path):
    from safetensors.torch import load_file, save_file

    meta = read_meta(trained["checkpoint"])
    del meta["latent"]
    save_file(load_file(str(trained["checkpoint"])), str(path), metadata={"toolkit": json.dumps(meta)})


def _newer_recipe(trained, path):
    from safetensors.torch import load_file, save_file

    meta = read_meta(trained["checkpoint"])
    meta["recipe"]["train"]["swa_start"] = 1000  # an option this version does not know
    save_file(load_file(str(trained["checkpoint"])), str(path), metadata={"toolkit": json.dumps(meta)})


NOT_SAFETENSORS = "(expected a .safetensors checkpoint written by toolkit train, or a classifier written by toolkit classifier train)"
CHECKPOINTS = {
    # id: (write a bad checkpoint at path, fragments of the message)
    "truncated": (lambda t, p: p.write_bytes(t["checkpoint"].read_bytes()[: t["checkpoint"].stat().st_size // 2]),
                  ["not a readable safetensors checkpoint (truncated:", "the copy or download was cut short"]),
    "truncated-header": (lambda t, p: p.write_bytes(t["checkpoint"].read_bytes()[:100]),
                         ["not a readable safetensors checkpoint (truncated: 100 of at least", "cut short"]),
    "empty-file": (lambda t, p: p.write_bytes(b""), ["an empty file (0 bytes), not a readable safetensors checkpoint", NOT_SAFETENSORS]),
    "png-image": (lambda t, p: p.write_bytes(t["image"].read_bytes()),
                  ["a PNG image, not a readable safetensors checkpoint", NOT_SAFETENSORS]),
    "text-file": (lambda t, p: p.write_text("my notes\n"), ["a text file, not a readable safetensors checkpoint", NOT_SAFETENSORS]),
    "another-architecture": (_other_width, ["weights do not match network 'paper28'", "shape of"]),
    "missing-metadata": (_without_metadata, ["without toolkit metadata"]),
    "incomplete-metadata": (_incomplete_metadata, ["incomplete toolkit metadata: no 'latent'"]),
    "recipe-from-a-newer-version": (_newer_recipe, ["its recipe does not validate here", "recipe.train.swa_start: unknown key"]),
    "pickle-renamed": (_pickle, ["looks like a pickle", "only safetensors checkpoints are loaded"]),
    "non-existent": (None, ["checkpoint not found"]),
    "a-directory": (lambda t, p: p.mkdir(), ["is a folder"]),
    "classifier-file": (_classifier, ["a toolkit classifier file, not a model checkpoint"]),
    "resume-file": (lambda t, p: p.write_bytes((t["run"] / RESUME_FILE).read_bytes()),
                    ["a toolkit resume file, not a model checkpoint", "checkpoints"]),
}


def test_a_run_folder_given_as_checkpoint_names_the_files_to_give(cli, trained, tmp_path):
    out = tmp_path / "out.png"
    code, _, err = cli("generate", "--n", "1", "-c", trained["run"], "-o", out, "--device", "cpu")
    newest = sorted((trained["run"] / "checkpoints").glob("step-*.safetensors"))[-1]
    error_line(code, err, f"{trained['run']}: is a folder, expected a .safetensors file; this run's newest: {newest}")
    assert not out.exists()


@pytest.mark.parametrize("command", ["generate", "translate"])
@pytest.mark.parametrize("case", CHECKPOINTS)
def test_bad_checkpoints(cli, trained, tmp_path, monkeypatch, command, case):
    write, fragments = CHECKPOINTS[case]
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "model.safetensors"
    if write is not None:
        write(trained, path)
    out = tmp_path / "out.png"
    args = ["generate", "--n", "1"] if command == "generate" else ["translate", trained["image"], "--set", "item=bag"]
    code, _, err = cli(*args, "-c", path, "-o", out, "--device", "cpu")
    error_line(code, err, str(path), *fragments)
    assert not out.exists()


@pytest.mark.parametrize("command", ["classifier-show", "evaluate"])
@pytest.mark.parametrize("case", ["png-image", "text-file"])
def test_a_classifier_that_is_not_safetensors(cli, trained, tmp_path, monkeypatch, command, case):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / ("coat.png" if case == "png-image" else "notes.txt")
    CHECKPOINTS[case][0](trained, path)
    if command == "classifier-show":
        code, _, err = cli("classifier", "show", path)
    else:
        code, _, err = cli("evaluate", "-c", trained["checkpoint"], "--classifier", path, "--n", "1",
                           "-o", tmp_path / "r.json", "--device", "cpu")
    error_line(code, err, *([str(path)] + CHECKPOINTS[case][1]))
    assert not (tmp_path / "r.json").exists()


def test_generate_help_says_what_no_n_means(cli):
    code, out, _ = cli("generate", "--help")
    row = next(line for line in out.splitlines() if "--n " in line)
    assert code == 0 and "[default:" not in row and "Images (default: 64)" in out


def test_a_misspelt_checkpoint_names_the_closest_one_in_its_folder(cli, trained, tmp_path):
    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    for step in (600, 1200):
        (folder / f"step-{step:06d}.safetensors").write_bytes(trained["checkpoint"].read_bytes())
    code, _, err = cli("generate", "-c", folder / "step-00120.safetensors", "-o", tmp_path / "g.png")
    error_line(code, err, f"checkpoint not found: {folder / 'step-00120.safetensors'}; "
               f"did you mean '{folder / 'step-001200.safetensors'}'? "
               f"checkpoints in {folder}: step-000600.safetensors, step-001200.safetensors")
    code, _, err = cli("generate", "-c", tmp_path / "elsewhere" / "x.safetensors", "-o", tmp_path / "g.png")
    error_line(code, err, f"checkpoint not found: {tmp_path / 'elsewhere' / 'x.safetensors'}")
    assert "did you mean" not in err and not (tmp_path / "g.png").exists()


@pytest.mark.parametrize("how", ["given", "the-newest"])
def test_a_truncated_newest_checkpoint_offers_the_older_one_that_reads(cli, trained, tmp_path, monkeypatch, how):
    folder = tmp_path / "runs" / "tiny" / "checkpoints"
    folder.mkdir(parents=True)
    good, bad = folder / "step-000001.safetensors", folder / "step-000002.safetensors"
    data = trained["checkpoint"].read_bytes()
    good.write_bytes(data)
    (folder / "step-000000.safetensors").write_bytes(data[:100])  # older still, and damaged too
    bad.write_bytes(data[: len(data) // 2])
    os.utime(bad, (time.time() + 5, time.time() + 5))
    monkeypatch.chdir(tmp_path)
    if how == "the-newest":  # found under ./runs, named as found
        bad, good = bad.relative_to(tmp_path), good.relative_to(tmp_path)
    code, _, err = cli("generate", *(["-c", bad] if how == "given" else []), "-o", tmp_path / "g.png")
    assert code == 1 and "Traceback" not in err
    if how == "the-newest":
        assert err.startswith(f"using the newest checkpoint: {bad}\n"), err
        err = err.split("\n", 1)[1]
    error_line(code, err, f"{bad}: not a readable safetensors checkpoint (truncated:", f"an older checkpoint of this run reads: -c {good}")
    code, _, err = cli("generate", "-c", good, "-o", tmp_path / "g.png")
    assert code == 0, err


def test_resume_without_a_resume_file(cli, trained, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "recipe.yaml").write_bytes((trained["run"] / "recipe.yaml").read_bytes())
    before = snapshot(run)
    code, _, err = cli("train", "--resume", run)
    error_line(code, err, f"{run}: no {RESUME_FILE} here, nothing to resume")
    assert snapshot(run) == before
    code, _, err = cli("train", "--resume", tmp_path / "nowhere")
    error_line(code, err, "nothing to resume")


@pytest.mark.parametrize("what", ["a-finished-run", "a-run-without-resume-file", "a-file"])
def test_train_refuses_an_out_folder_that_holds_a_run(cli, trained, tmp_path, what):
    if what == "a-finished-run":
        out = trained["run"]
    elif what == "a-run-without-resume-file":  # e.g. stopped before its first checkpoint
        out = tmp_path / "run"
        out.mkdir()
        for name in ("recipe.yaml", "metrics.jsonl"):
            (out / name).write_bytes((trained["run"] / name).read_bytes())
    else:
        out = tmp_path / "run"
        out.write_text("my notes\n")
    before = snapshot(out) if out.is_dir() else out.read_bytes()
    code, _, err = cli("train", trained["recipe"], "--out", out)
    expected = {"a-finished-run": ["already holds a run", f"use --resume {out} or another --out"],
                "a-run-without-resume-file": ["already holds a run (recipe.yaml, metrics.jsonl)", "another --out"],
                "a-file": ["is a file, not a folder"]}[what]
    error_line(code, err, str(out), *expected)
    assert (snapshot(out) if out.is_dir() else out.read_bytes()) == before


@pytest.mark.parametrize("how", ["new-run", "resume"])
def test_a_second_process_training_into_a_folder_in_use_is_refused(cli, trained, tmp_path, how):
    from toolkit.rundir import RunDir

    run = tmp_path / "run"
    if how == "new-run":
        run.mkdir()
        args = ["train", trained["recipe"], "--out", run]
    else:
        shutil.copytree(trained["run"], run)
        args = ["train", "--resume", run, "--set", "train.steps=3"]
    before = snapshot(run)
    holder = RunDir(run)
    holder.lock()  # another training process holds the folder (a lock is per open file, even in one process)
    try:
        code, _, err = cli(*args)
    finally:
        holder.release()
    error_line(code, err, f"{run} is in use: another process is training into it")
    assert snapshot(run) == before


@pytest.mark.parametrize("existing", [False, True], ids=["new-folder", "empty-folder"])
def test_the_run_folder_is_claimed_before_the_data_and_left_free_when_the_run_fails_before_training(
        cli, trained, tmp_path, monkeypatch, existing):
    import toolkit.train
    from toolkit.rundir import RunDir

    run = tmp_path / "run"
    if existing:
        run.mkdir()

    def load_dataset(recipe, split):  # the first slow thing: the folder is claimed by then
        assert run.is_dir()
        with pytest.raises(ToolkitError, match="is in use"):
            RunDir(run).lock()
        raise ToolkitError("the data cannot be read")

    monkeypatch.setattr(toolkit.train, "load_dataset", load_dataset)
    code, _, err = cli("train", trained["recipe"], "--out", run)
    error_line(code, err, "the data cannot be read")
    assert run.is_dir() == existing and (not existing or not any(run.iterdir()))


def test_a_dry_run_claims_and_creates_nothing(cli, trained, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("train", trained["recipe"], "--dry-run")
    assert code == 0 and "# run folder: runs/tiny-" in out, err
    assert not (tmp_path / "runs").exists()


def test_a_run_that_fails_in_its_first_step_leaves_nothing_that_blocks_its_out_folder(cli, trained, tmp_path, monkeypatch):
    import toolkit.train

    def broken_step(self, step):
        raise ToolkitError("a plugin failed in step 1")

    monkeypatch.setattr(toolkit.train.Trainer, "train_step", broken_step)
    monkeypatch.chdir(tmp_path)
    for args in (["--out", tmp_path / "run"], []):  # a given folder, and the default runs/NAME-TIMESTAMP
        code, _, err = cli("train", trained["recipe"], *args)
        assert code == 1 and "Traceback" not in err, err
        assert err.strip().splitlines()[-1] == "error: a plugin failed in step 1"  # after the line "training ..."
    assert not (tmp_path / "run").exists() and not any((tmp_path / "runs").iterdir())


def test_a_teacher_of_averaged_weights_without_train_ema_is_refused_before_training(cli, trained, tmp_path):
    run = tmp_path / "run"
    code, _, err = cli("train", trained["recipe"], "--out", run, "--set", "losses.consistency.options.teacher=averaged")
    error_line(code, err, "losses.consistency reads E's averaged weights, but train.ema is off")
    assert not run.exists()


# -- --set NAME=VALUE for generate / translate ------------------------------------------------
SETS = {
    "unknown-variable": (["--set", "colour=red"], ["unknown latent variable 'colour'", "available: item, c1"]),
    "unknown-class": (["--set", "item=spaceship"], ["'spaceship' is not a class of 'item'", "available: t-shirt"]),
    "class-index-out-of-range": (["--set", "item=10"], ["index 10 is out of range", "0..9"]),
    "negative-class-index": (["--set", "item=-1"], ["index -1 is out of range", "0..9"]),
    "continuous-out-of-range": (["--set", "c1=5"], ["'c1=5' is out of range", "from -2 to 2"]),
    "continuous-not-finite": (["--set", "c1=nan"], ["'c1=nan' is out of range"]),
    "wrong-type": (["--set", "c1=abc"], ["'c1' is continuous: expected a number, got 'abc'"]),
    "missing-equals": (["--set", "item"], ["--set expects VARIABLE=VALUE, got 'item'", "variables: item, c1"]),
    "empty-value": (["--set", "item="], ["--set expects VARIABLE=VALUE, got 'item='"]),
    "variable-twice": (["--set", "item=bag", "--set", "c1=0", "--set", "item=ankle boot"],
                       ["item set more than once (item=bag, item=ankle boot): give each variable once"]),
}


@pytest.mark.parametrize("command", ["generate", "translate"])
@pytest.mark.parametrize("case", SETS)
def test_bad_latent_settings(cli, trained, tmp_path, monkeypatch, command, case):
    extra, fragments = SETS[case]
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out.png"
    args = ["generate", "--n", "1"] if command == "generate" else ["translate", trained["image"]]
    code, _, err = cli(*args, *extra, "-c", trained["checkpoint"], "-o", out, "--device", "cpu")
    error_line(code, err, *fragments)
    assert not out.exists()


def test_translate_sweep_of_an_unknown_variable(cli, trained, tmp_path):
    code, _, err = cli("translate", trained["image"], "--sweep", "colour", "-c", trained["checkpoint"],
                       "-o", tmp_path / "out.png", "--device", "cpu")
    error_line(code, err, "unknown latent variable 'colour'", "available: item, c1")


def test_translate_sweep_of_a_variable_also_set(cli, trained, tmp_path):
    out = tmp_path / "out.png"
    code, _, err = cli("translate", trained["image"], "--sweep", "item", "--set", "item=bag", "-c", trained["checkpoint"],
                       "-o", out, "--device", "cpu")
    error_line(code, err, "--sweep item shows every value of item: drop --set item=...")
    assert not out.exists()
    code, _, err = cli("translate", trained["image"], "--sweep", "item", "--set", "c1=0.5", "-c", trained["checkpoint"],
                       "-o", out, "--device", "cpu")
    assert code == 0 and out.is_file(), err  # the other variables may be fixed


def test_translate_with_nothing_to_change(cli, trained, tmp_path):
    code, _, err = cli("translate", trained["image"], "-c", trained["checkpoint"], "-o", tmp_path / "out.png")
    error_line(code, err, "nothing to change: give --set NAME=VALUE or --sweep NAME")


@pytest.mark.parametrize("args, fragments", [
    (["generate", "--n", "-1"], ["Invalid value for '--n'"]),
    (["interpolate", "a.png", "b.png", "--steps", "1"], ["Invalid value for '--steps'"]),
    (["generate", "--nn", "3"], ["No such option", "--nn"]),
    (["generate", "--n", "0"], ["Invalid value for '--n'"]),
    (["translate"], ["Missing argument"]),
], ids=["out-of-range-option", "steps-below-2", "unknown-option", "generate-zero-images", "missing-argument"])
def test_usage_errors_exit_2(cli, tmp_path, monkeypatch, args, fragments):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(*args)
    error_line(code, err, *fragments, exit_code=2)


# -- an image-folder dataset ---------------------------------------------------------------------
def _folder_recipe(tmp_path, folder, labels_csv=None, variables=None):
    data = copy.deepcopy(TINY)
    options = {"folder": str(folder), "test_fraction": 0.25}
    if labels_csv is not None:
        options["labels_csv"] = str(labels_csv)
    data["data"] = {"dataset": "image-folder", "options": options, "labels": 2, "labeled_ramp": 4}
    data["latent"]["variables"] = variables or {"c1": {"kind": "continuous"}}
    if variables is None:
        data["losses"].pop("sup")
    path = tmp_path / "folder.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _images(folder, n=4):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("L", (28, 28), 40 * i).save(folder / f"img{i}.png")
    return folder


KIND = {"kind": {"kind": "categorical", "label": "kind"}}
FOLDERS = {
    # id: (make the folder, the CSV text or None, latent variables or None, fragments of the message)
    "missing-folder": (lambda f: None, None, None, ["image folder", "does not exist"]),
    "a-file-as-folder": (lambda f: f.write_text("x"), None, None, ["is not a folder"]),
    "no-images": (lambda f: f.mkdir(), None, None, ["no images found under", ".png"]),
    "unreadable-image": (lambda f: (_images(f) / "broken.png").write_text("not a png"), None, None,
                         ["broken.png: not an image Pillow can read"]),
    "truncated-image": (lambda f: _truncated(_images(f) / "half.png"), None, None, ["half.png: cannot read image"]),
    "csv-without-file-column": (_images, "filename,kind\nimg0.png,a\nimg1.png,b\n", KIND,
                                ["has no 'file' column", "columns found: filename, kind"]),
    "csv-row-naming-a-missing-file": (_images, "file,kind\nimg0.png,a\nghost.png,b\n", KIND,
                                      ["line 3: file 'ghost.png' does not exist under"]),
    "csv-missing": (_images, None, KIND, ["cannot read labels CSV", "No such file"]),
    "csv-empty": (_images, "", KIND, ["is empty", "'file' column"]),
    "csv-too-many-cells": (_images, "file,kind\nimg0.png,a,extra\n", KIND, ["line 2: 3 cells but the header has 2"]),
    "label-not-in-csv": (_images, "file,colour\nimg0.png,a\nimg1.png,b\n", KIND,
                         ["latent.variables.kind.label", "no attribute 'kind'", "colour"]),
    "only-hidden-files": (lambda f: (f.mkdir(), (f / "._img0.png").write_bytes(b"\x00\x05\x16\x07"),
                                     (f / ".DS_Store").write_bytes(b"Bud1")), None, None,
                          ["no images found under", "hidden files are skipped"]),
    "csv-names-a-hidden-file": (lambda f: (_images(f), (f / "._img0.png").write_bytes(b"\x00\x05\x16\x07")),
                                "file,kind\nimg0.png,a\n._img0.png,b\n", KIND,
                                ["line 3: file '._img0.png' is a hidden file or in a hidden folder"]),
    "csv-name-fits-several-images": (lambda f: (_images(f), Image.new("L", (28, 28)).save(f / "img0.jpg")),
                                     "file,kind\nimg0,a\nimg1.png,b\n", KIND,
                                     ["line 2: file 'img0' fits several images (without its extension): img0.jpg, img0.png"]),
    "csv-one-class-only": (_images, "file,kind\nimg0.png,a\nimg1.png,a\n", KIND,
                           ["latent.variables.kind: attribute 'kind' has 1 class (a)"]),
}


@pytest.mark.parametrize("case", FOLDERS)
def test_image_folder_datasets(cli, tmp_path, monkeypatch, case):
    make, csv_text, variables, fragments = FOLDERS[case]
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "images"
    make(folder)
    csv_path = None
    if variables is not None:
        csv_path = tmp_path / "labels.csv"
        if csv_text is not None:
            csv_path.write_text(csv_text)
    recipe = _folder_recipe(tmp_path, folder, csv_path, variables)
    code, _, err = cli("train", recipe, "--out", tmp_path / "run")
    error_line(code, err, *fragments)
    assert not (tmp_path / "run").exists()


def _project(tmp_path, folder):
    """A recipe in its own folder that names its image folder relative to itself."""
    project = tmp_path / "project"
    project.mkdir()
    data = copy.deepcopy(TINY)
    data["data"] = {"dataset": "image-folder", "options": {"folder": folder, "test_fraction": 0.25}}
    data["latent"]["variables"] = {"c1": {"kind": "continuous"}}
    data["losses"].pop("sup")
    data["train"].update(steps=2, checkpoint_every=2)
    (project / "recipe.yaml").write_text(yaml.safe_dump(data))
    return project


def test_a_run_folder_works_from_any_working_directory(cli, tmp_path, monkeypatch):
    project = _project(tmp_path, "imgs")
    _images(project / "imgs", n=16)  # enough for the recipe's batch of 8 after the held-out split
    for name in ("elsewhere", "other"):
        (tmp_path / name).mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    code, _, err = cli("train", project / "recipe.yaml", "--out", tmp_path / "run")
    assert code == 0, err
    kept = yaml.safe_load((tmp_path / "run" / "recipe.yaml").read_text())
    assert kept["data"]["options"]["folder"] == str(project / "imgs")
    monkeypatch.chdir(tmp_path / "other")
    code, _, err = cli("train", "--resume", tmp_path / "run", "--set", "train.steps=3")
    assert code == 0, err
    code, out, err = cli("figures", "-c", tmp_path / "run" / "checkpoints" / "step-000003.safetensors", "-o", "figs")
    assert code == 0 and (tmp_path / "other" / "figs" / "generation.png").is_file(), err


def test_a_missing_relative_folder_is_named_by_its_absolute_path(cli, tmp_path, monkeypatch):
    project = _project(tmp_path, "imgs")
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("train", "project/recipe.yaml", "--out", tmp_path / "run")
    error_line(code, err, f"image folder {project / 'imgs'} does not exist")
    assert not (tmp_path / "run").exists()


# -- training interrupted ------------------------------------------------------------------------
def _tensors(path):
    from safetensors.torch import load_file

    return load_file(str(path))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=["SIGTERM", "SIGINT", "SIGKILL"])
def test_interrupted_training_saves_and_resumes_exactly(cli, trained, tmp_path, signum):
    run = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    every = 2 if signum == signal.SIGKILL else 100000  # a killed run resumes from its last checkpoint
    args = [sys.executable, "-m", "toolkit", "train", trained["recipe"], "--out", run, "--set", "train.steps=100000",
            "--set", f"train.checkpoint_every={every}", "--set", "train.sample_every=100000", "--set", "train.log_every=1"]
    # a shell may start background jobs with SIGINT ignored; a user's Ctrl-C reaches a default handler
    proc = subprocess.Popen([str(a) for a in args], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def logged():  # steps in metrics.jsonl
        text = (run / "metrics.jsonl").read_text() if (run / "metrics.jsonl").exists() else ""
        return [json.loads(line)["step"] for line in text.splitlines() if line.endswith("}")]

    try:
        deadline = time.time() + 240
        # SIGKILL: once a resume file exists and later steps are logged (they will be written again)
        while not logged() or (signum == signal.SIGKILL and (not (run / RESUME_FILE).exists() or max(logged()) < 5)):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.time() < deadline, "training did not log within 240 s"
            time.sleep(0.05)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if signum == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 128 + signum, err  # 143 for SIGTERM, 130 for Ctrl-C
        assert "Traceback" not in err, err
        assert "interrupted, saved: step" in err and f"continue with: toolkit train --resume {run}" in err
        assert "encoder accuracy" not in err  # it stops at once: no final evaluation
    step = read_meta(run / RESUME_FILE)["step"]
    assert 1 <= step < 100000
    assert load_model(run / "checkpoints" / f"step-{step:06d}.safetensors").step == step

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the process above (OMP_NUM_THREADS=1): the same sums in the same order
    try:
        code, _, err = cli("train", "--resume", run, "--set", f"train.steps={step + 2}")
        same = [f"train.steps={step + 2}", f"train.checkpoint_every={every}", "train.sample_every=100000"]
        straight = Trainer(resolve(load_recipe(trained["recipe"], same)), tmp_path / "straight", "cpu")
        reference = Path(straight.run()["checkpoint"])
    finally:
        torch.set_num_threads(threads)
    assert code == 0 and "Traceback" not in err, err
    assert f"resuming {run} at step {step}" in err and f"done: step {step + 2}" in err
    final = run / "checkpoints" / f"step-{step + 2:06d}.safetensors"
    assert read_meta(final)["step"] == step + 2
    losses = [s for s in logged() if s <= step + 2]
    assert sorted(set(logged())) == list(range(1, step + 3)) and losses == sorted(losses)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "losses" in r] == list(range(1, step + 3))  # each step once

    # bit for bit what an uninterrupted run of step + 2 steps gives
    a, b = _tensors(final), _tensors(reference)
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


# -- plugins that break their contract: checked where their output enters the core ----------------
def _synthetic_recipe(path, losses=None, dataset="synthetic", network="paper28", steps=1):
    data = {"name": "contract", "data": {"dataset": dataset, "labels": 4, "labeled_ramp": 1,
                                         **({"options": {"n": 16}} if dataset == "synthetic" else {})},
            "latent": {"u": {"size": 3}, "variables": {"shape": {"kind": "categorical", "label": "shape"}}},
            "model": {"network": network, **({"options": {"width": 0.125}} if network == "paper28" else {})},
            "losses": losses or {"sup": {}, "rec": {}, "adv": {}},
            "optim": {"batch_size": 4},
            "train": {"steps": steps, "log_every": 1, "sample_every": 100, "checkpoint_every": 100, "device": "cpu",
                      "bn_recalibration": 0}}
    path.write_text(yaml.safe_dump(data))
    return path


def _loss_plugin(**terms):
    from types import SimpleNamespace

    from toolkit.hookspecs import hookimpl

    @hookimpl
    def register_losses(register):
        for name, call in terms.items():
            register(name, lambda spec, options=None, _call=call: _call, description=f"test term {name}")

    return SimpleNamespace(register_losses=register_losses)


def _dataset_plugin(**datasets):
    from types import SimpleNamespace

    from toolkit.hookspecs import hookimpl

    @hookimpl
    def register_datasets(register):
        for name, load in datasets.items():
            register(name, lambda options=None, split="train", _load=load: _load(split))

    return SimpleNamespace(register_datasets=register_datasets)


def _network_plugin(name, build):
    from types import SimpleNamespace

    from toolkit.hookspecs import hookimpl

    @hookimpl
    def register_networks(register):
        register(name, build)

    return SimpleNamespace(register_networks=register_networks)


def _bars(split, labels=None, n=16):
    from toolkit.testing import synthetic_dataset

    data = synthetic_dataset(n=n, seed=0 if split == "train" else 1)
    if labels is not None:
        data.labels["shape"] = labels(data.labels["shape"])
    return data


def _raise(exc):
    raise exc


def _channels_last(data):
    data.images = data.images.permute(0, 2, 3, 1).contiguous()
    return data


def _raw_plugin(kind, name, factory):
    """A plugin registering ``factory`` as it is, whatever its signature."""
    from types import SimpleNamespace

    from toolkit.hookspecs import hookimpl

    @hookimpl
    def register_datasets(register):
        register(name, factory)

    @hookimpl
    def register_losses(register):
        register(name, factory)

    hooks = {"datasets": register_datasets, "losses": register_losses}
    return SimpleNamespace(**{f"register_{kind}": hooks[kind]})


class _TensorViews(toolkit.losses.LossTerm):
    """A term whose extra_passes returns E's raw code, not a dict of it."""

    def extra_passes(self, nets, batch, step):
        return nets.encoder(batch["x_real"])

    def __call__(self, out):
        return {"ge": out.x_rec.mean()}


def _failing_networks(spec, image_shape, options=None):
    from toolkit.testing import linear_networks

    nets = linear_networks(spec, image_shape)
    nets.encoder.forward = lambda x: _raise(RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x784 and 10x3)"))
    return nets


CONTRACTS = {
    # id: (plugin factory, recipe keywords, fragments of the one line)
    "loss-part-named-g": (lambda: _loss_plugin(typo=lambda out: {"g": out.x_rec.mean()}),
                          {"losses": {"rec": {}, "typo": {}}},
                          ["loss 'typo' (plugin 'broken', (in-process)) returned unknown part(s) 'g'",
                           "allowed: 'ge' for G and E, 'd' for D"]),
    "loss-part-not-a-scalar": (lambda: _loss_plugin(wide=lambda out: {"ge": (out.x_rec - out.x_real).abs()}),
                               {"losses": {"wide": {}}},
                               ["loss 'wide' (plugin 'broken', (in-process)) part 'ge' must be a scalar", "(4, 1, 28, 28)"]),
    "loss-not-a-dict": (lambda: _loss_plugin(bare=lambda out: out.x_rec.mean()),
                        {"losses": {"bare": {}}}, ["loss 'bare' (plugin 'broken', (in-process)) must return a dict"]),
    "loss-detached": (lambda: _loss_plugin(flat=lambda out: {"ge": out.x_rec.detach().mean()}),
                      {"losses": {"flat": {}}}, ["loss 'flat'", "part 'ge' does not depend on G and E"]),
    "loss-raises": (lambda: _loss_plugin(boom=lambda out: _raise(IndexError("index 5 is out of bounds"))),
                    {"losses": {"rec": {}, "boom": {}}},
                    ["loss 'boom' (plugin 'broken', (in-process)) raised IndexError: index 5 is out of bounds"]),
    "loss-nan-at-step-1": (lambda: _loss_plugin(nan=lambda out: {"ge": out.x_rec.mean() * float("nan")}),
                           {"losses": {"rec": {}, "nan": {}}},
                           ["loss 'nan' (plugin 'broken', (in-process)), part 'ge', became nan at step 1",
                            "no checkpoint was written before it"]),
    "dataset-labels-out-of-range": (lambda: _dataset_plugin(wild=lambda s: _bars(s, lambda lab: lab + 1)),
                                    {"dataset": "wild"},
                                    ["dataset 'wild' (plugin 'broken', (in-process)) labels['shape'] hold values outside -1..3",
                                     "found 4"]),
    "dataset-float-labels": (lambda: _dataset_plugin(floaty=lambda s: _bars(s, lambda lab: lab.float())),
                             {"dataset": "floaty"}, ["dataset 'floaty'", "labels['shape'] are torch.float32, expected integers"]),
    "dataset-empty": (lambda: _dataset_plugin(empty=lambda s: _bars(s, n=0)), {"dataset": "empty"},
                      ["dataset 'empty' (plugin 'broken', (in-process)) has no images in split 'train'"]),
    "dataset-not-an-imageset": (lambda: _dataset_plugin(listy=lambda s: [1, 2, 3]), {"dataset": "listy"},
                                ["dataset 'listy' (plugin 'broken', (in-process)) returned list for split 'train'"]),
    "dataset-factory-raises": (lambda: _dataset_plugin(oops=lambda s: {}["images"]), {"dataset": "oops"},
                               ["dataset 'oops' (plugin 'broken', (in-process)) failed to build: KeyError: 'images'"]),
    "dataset-channels-last": (lambda: _dataset_plugin(hwc=lambda s: _channels_last(_bars(s))), {"dataset": "hwc"},
                              ["dataset 'hwc' (plugin 'broken', (in-process)) returned images of shape (16, 28, 28, 1) "
                               "in split 'train': channels last (N, H, W, C)", "images.permute(0, 3, 1, 2)"]),
    "dataset-factory-signature": (lambda: _raw_plugin("datasets", "sig", lambda opts, part: _bars(part)), {"dataset": "sig"},
                                  ["dataset 'sig' (plugin 'broken', (in-process)): its factory test_bad_input:<lambda>(opts, "
                                   "part) cannot be called as the toolkit calls a dataset factory, <lambda>(options, split)",
                                   "missing a required argument: 'opts'"]),
    "loss-factory-signature": (lambda: _raw_plugin("losses", "sig", lambda options, spec: None),
                               {"losses": {"rec": {}, "sig": {}}},
                               ["loss 'sig' (plugin 'broken', (in-process)): its factory test_bad_input:<lambda>(options, "
                                "spec) cannot be called as the toolkit calls a loss factory, <lambda>(spec, options)",
                                "multiple values for argument 'options'"]),
    "loss-extra-passes-not-a-dict": (lambda: _loss_plugin(views=_TensorViews(None)), {"losses": {"rec": {}, "views": {}}},
                                     ["loss 'views' (plugin 'broken', (in-process)) returned Tensor from extra_passes, "
                                      "expected a dict of tensors by name"]),
    "network-not-networks": (lambda: _network_plugin("tuple", lambda spec, shape, options=None: (1, 2)), {"network": "tuple"},
                             ["network 'tuple' (plugin 'broken', (in-process)) returned tuple, expected toolkit.networks.Networks"]),
    "network-fails-in-the-step": (lambda: _network_plugin("crash", _failing_networks), {"network": "crash"},
                                  ["network 'crash' (plugin 'broken', (in-process))", "RuntimeError: mat1 and mat2"]),
}


@pytest.mark.parametrize("case", CONTRACTS)
def test_plugins_breaking_their_contract(cli, register_plugin, tmp_path, monkeypatch, case):
    from toolkit.testing import SyntheticPlugin

    make, keywords, fragments = CONTRACTS[case]
    monkeypatch.chdir(tmp_path)
    register_plugin(SyntheticPlugin(), "synthetic")
    register_plugin(make(), "broken")
    recipe = _synthetic_recipe(tmp_path / "recipe.yaml", **keywords)
    code, _, err = cli("train", recipe, "--out", tmp_path / "run")
    training_error(code, err, *fragments)
    if case.startswith("loss-") and case != "loss-nan-at-step-1":  # refused before the run, by validate too
        assert not (tmp_path / "run").exists()
        code, _, err = cli("recipe", "validate", recipe)
        error_line(code, err, str(recipe), *fragments)
    if case in ("loss-raises", "dataset-factory-raises"):  # --debug: the plugin's own traceback
        with pytest.raises(toolkit.errors.PluginError) as info:
            cli("--debug", "train", recipe, "--out", tmp_path / "run2")
        assert isinstance(info.value.__cause__, (IndexError, KeyError))


def test_a_dataset_with_labels_of_another_integer_type_trains(cli, register_plugin, tmp_path, monkeypatch):
    """int32 or uint8 labels (numpy's, a CSV reader's) are class indices like int64 ones: stored as int64,
    where the losses would otherwise fail on them at step 1 and blame the loss."""
    from toolkit.testing import SyntheticPlugin

    monkeypatch.chdir(tmp_path)
    register_plugin(SyntheticPlugin(), "synthetic")
    register_plugin(_dataset_plugin(narrow=lambda s: _bars(s, lambda lab: lab.int()),
                                    small=lambda s: _bars(s, lambda lab: lab.clamp(min=0).to(torch.uint8))), "narrow")
    for name in ("narrow", "small"):
        recipe = _synthetic_recipe(tmp_path / f"{name}.yaml", dataset=name)
        code, _, err = cli("train", recipe, "--out", tmp_path / name)
        assert code == 0, err
        assert (tmp_path / name / "checkpoints" / "step-000001.safetensors").exists()
    data = toolkit.data.ImageSet(torch.zeros(3, 1, 8, 8, dtype=torch.uint8), given := {"a": torch.tensor([0, 1, -1],
                                 dtype=torch.int32)}, {"a": ["x", "y"]})
    assert data.labels["a"].dtype == torch.int64 and data.labels["a"].tolist() == [0, 1, -1]
    assert given["a"].dtype == torch.int32, "the plugin's own dict is left as it was"


# -- recipes that cannot run: refused by validate, --dry-run and train, before anything is made -----
IMPOSSIBLE = {
    # id: (--set overrides, fragments of the one line)
    "batch-of-1-with-batchnorm": (["optim.batch_size=1"],
                                  ["optim.batch_size: 1 with network 'paper28', which has BatchNorm layers",
                                   "at least 2 images per batch"]),
    "batch-larger-than-the-data": (["optim.batch_size=100000"],
                                   ["optim.batch_size: 100,000 is larger than the training set (6,000 images of dataset "
                                    "'fashion-mnist-mini'); use at most 6000"]),
    "fewer-labels-than-classes": (["data.labels=5"],
                                  ["data.labels: 5 labeled images cannot cover the 10 classes of 'item'", "use at least 10"]),
    "more-labels-than-labeled-images": (["data.labels=100000"],
                                        ["data.labels: 100,000 labeled images asked for, but only 6,000 of the 6,000 "
                                         "training images have a label for 'item'"]),
    "negative-labels": (["data.labels=-3"], ["data.labels: must be 0 or more"]),
    "a-zero-lr-factor": (["optim.lr_milestones=[10]", "optim.lr_factors=[0]"], ["lr_factors must be above 0"]),
    "no-loss-terms": (["losses={}"], ["losses: a recipe needs at least one loss term"]),
    "a-one-class-variable": (["latent.variables.style={kind: categorical, classes: 1}"],
                             ["latent.variables.style: a categorical variable needs at least 2 classes"]),
    "repeated-class-names": (["latent.variables.style={kind: categorical, classes: [a, b, a]}"],
                             ["class names must be distinct: a, b, a"]),
}


@pytest.mark.parametrize("how", ["train", "dry-run", "validate"])
@pytest.mark.parametrize("case", IMPOSSIBLE)
def test_impossible_recipes_are_refused_before_the_run(cli, trained, tmp_path, monkeypatch, case, how):
    overrides, fragments = IMPOSSIBLE[case]
    monkeypatch.chdir(tmp_path)
    sets = [item for o in overrides for item in ("--set", o)]
    if how == "validate":
        code, _, err = cli("recipe", "validate", trained["recipe"], *sets)
    else:
        code, _, err = cli("train", trained["recipe"], *sets, "--out", tmp_path / "run",
                           *(["--dry-run"] if how == "dry-run" else []))
    error_line(code, err, str(trained["recipe"]) if how == "validate" else "", *fragments)
    assert not (tmp_path / "run").exists() and not (tmp_path / "runs").exists()


def test_validate_without_data_checks_the_recipe_alone(cli, trained, tmp_path):
    code, out, err = cli("recipe", "validate", trained["recipe"], "--set", "optim.batch_size=100000", "--no-data")
    assert code == 0 and "data not checked (--no-data)" in out, err
    code, out, err = cli("recipe", "validate", trained["recipe"])
    assert code == 0 and "6,000 training images (1, 28, 28), checked against data, networks and loss terms" in out, err


# -- output paths: a folder gets the file inside it; what cannot be written is one line, before any work --
def _a_file(tmp_path):
    (tmp_path / "notes.txt").write_text("my notes\n")
    return tmp_path / "notes.txt"


def _image_args(command, trained):
    return {"generate": ["generate", "--n", "1"],
            "translate": ["translate", trained["image"], "--set", "item=bag"],
            "interpolate": ["interpolate", trained["image"], trained["image"], "--steps", "2"]}[command]


OUTPUTS = {
    # id: (make the -o path under tmp_path, None when it works, else fragments of the one line)
    "an-existing-folder": (lambda t: (t / "out").mkdir() or t / "out", None),
    "a-new-folder-with-a-slash": (lambda t: str(t / "new") + "/", ["new: no extension is not a file type"]),
    "missing-parent-folders": (lambda t: t / "a" / "b" / "grid.png", None),
    "jpeg-by-extension": (lambda t: t / "grid.jpg", None),
    "below-a-file": (lambda t: _a_file(t) / "grid.png", ["notes.txt is a file, not a folder"]),
    "unknown-extension": (lambda t: t / "grid.xyz", ["'.xyz' is not a file type this command writes", ".png"]),
    "no-extension": (lambda t: t / "grid", ["no extension is not a file type this command writes"]),
}


@pytest.mark.parametrize("command", ["generate", "translate", "interpolate"])
@pytest.mark.parametrize("case", OUTPUTS)
def test_image_outputs(cli, trained, tmp_path, monkeypatch, command, case):
    make, fragments = OUTPUTS[case]
    monkeypatch.chdir(tmp_path)
    target = make(tmp_path)
    code, out, err = cli(*_image_args(command, trained), "-c", trained["checkpoint"], "-o", target, "--device", "cpu")
    if fragments is not None:
        error_line(code, err, "-o", *fragments)
        return
    assert code == 0 and "Traceback" not in err, err
    written = Path(out.split("wrote ")[1].split(" (")[0])
    if case == "an-existing-folder":
        default = {"generate": "generated.png", "translate": "translated.png", "interpolate": "interpolated.png"}[command]
        assert written == Path(str(target).rstrip("/")) / default
    assert written.is_file()
    assert Image.open(written).format == ("JPEG" if case == "jpeg-by-extension" else "PNG")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_folder_is_refused_before_the_work(cli, trained, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, _, err = cli("generate", "-c", trained["checkpoint"], "-o", locked / "grid.png")
        error_line(code, err, "cannot write in", "permission denied")
    finally:
        locked.chmod(0o700)


def test_a_folder_without_write_permission_is_refused(cli, trained, tmp_path, monkeypatch):
    monkeypatch.setattr("toolkit.outputs.os.access", lambda path, mode: Path(path) != tmp_path)  # as a non-root user sees it
    code, _, err = cli("generate", "-c", trained["checkpoint"], "-o", tmp_path / "grid.png")
    error_line(code, err, f"cannot write in {tmp_path} (permission denied)")


def test_a_failure_while_writing_is_one_line(cli, trained, tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("toolkit.images.atomic_write", full)
    code, _, err = cli("generate", "--n", "1", "-c", trained["checkpoint"], "-o", tmp_path / "grid.png")
    error_line(code, err, f"cannot write {tmp_path / 'grid.png'}: No space left on device")


def test_evaluate_and_figures_outputs(cli, trained, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "reports").mkdir()
    code, out, err = cli("evaluate", "-c", trained["checkpoint"], "--n", "2", "-o", tmp_path / "reports", "--device", "cpu")
    assert code == 0 and "Traceback" not in err, err
    assert json.loads((tmp_path / "reports" / "report.eval.json").read_text())["step"] == 2
    assert f"{trained['checkpoint']} (step 2)" in out.splitlines()  # the whole path on one line, however long
    code, _, err = cli("evaluate", "-c", trained["checkpoint"], "--n", "2", "-o", _a_file(tmp_path) / "r.json")
    error_line(code, err, "notes.txt is a file, not a folder")
    code, _, err = cli("figures", "-c", trained["checkpoint"], "-o", tmp_path / "notes.txt")
    error_line(code, err, "-o", "notes.txt: is a file, not a folder")


def test_classifier_and_sweep_outputs_are_checked_before_training(cli, trained, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    note = _a_file(tmp_path)
    code, _, err = cli("classifier", "train", "fashion-mnist-mini", "-a", "item", "-o", note / "c.safetensors")
    error_line(code, err, "notes.txt is a file, not a folder")
    code, _, err = cli("sweep", trained["recipe"], "--out", note)
    error_line(code, err, "--out", "is a file, not a folder")
    assert not (tmp_path / "runs").exists()


# -- a run or checkpoint used where the plugin it needs is missing ----------------------------------
def test_a_run_or_checkpoint_without_its_plugin_names_it(cli, tmp_path, monkeypatch):
    from toolkit.testing import SyntheticPlugin, plugin_registered

    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    with plugin_registered(SyntheticPlugin(), "synthetic"):
        recipe = _synthetic_recipe(tmp_path / "recipe.yaml", steps=1)
        code, _, err = cli("train", recipe, "--out", run)
        assert code == 0, err
    checkpoint = run / "checkpoints" / "step-000001.safetensors"
    code, _, err = cli("train", "--resume", run, "--set", "train.steps=2")
    error_line(code, err, f"cannot resume {run}: dataset 'synthetic' came from plugin 'synthetic' ((in-process)), "
                          "which is not installed here or was skipped (see toolkit plugins)")
    code, _, err = cli("evaluate", "-c", checkpoint, "--n", "1", "--device", "cpu")
    training_error(code, err, str(checkpoint), "dataset 'synthetic' came from plugin 'synthetic'")  # after a note
    code, _, err = cli("figures", "-c", checkpoint, "-o", tmp_path / "figures", "--device", "cpu")
    error_line(code, err, "dataset 'synthetic' came from plugin 'synthetic'")
    code, out, err = cli("generate", "--n", "1", "-c", checkpoint, "-o", tmp_path / "g.png", "--device", "cpu")
    assert code == 0, err  # generating needs the network's plugin only


# -- real folders and spreadsheet labels that must just work ---------------------------------------
def test_a_folder_from_a_mac_share_and_pandas_labels_train(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "images"
    for i in range(20):
        (folder / ("sub" if i % 2 else "")).mkdir(parents=True, exist_ok=True)
        Image.new("L", (28, 28), 10 * i).save(folder / ("sub" if i % 2 else "") / f"img{i:02d}.png")
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(64))
    (folder / "._img00.png").write_bytes(b"\x00\x05\x16\x07AppleDouble")
    (folder / "__MACOSX").mkdir()
    (folder / "__MACOSX" / "._img02.png").write_bytes(b"\x00\x05\x16\x07")
    rows = "".join(f",.\\{'sub' + chr(92) if i % 2 else ''}IMG{i:02d}.PNG,{float(i % 10 + 1)}\n" for i in range(18))
    (tmp_path / "labels.csv").write_text(",file,label\n" + rows + ",img18.png,\n,sub/img19.png,NaN\n")
    data = copy.deepcopy(TINY)
    data["data"] = {"dataset": "image-folder", "labels": 10, "labeled_ramp": 2,
                    "options": {"folder": str(folder), "labels_csv": str(tmp_path / "labels.csv"), "test_fraction": 0}}
    data["latent"]["variables"] = {"label": {"kind": "categorical", "label": "label"}}
    data["train"].update(steps=1, checkpoint_every=1, sample_every=1, log_every=1)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(data))
    code, out, err = cli("train", recipe, "--out", tmp_path / "run")
    assert code == 0 and "Traceback" not in err, err
    checkpoint = tmp_path / "run" / "checkpoints" / "step-000001.safetensors"
    assert load_model(checkpoint).spec["label"].classes == [f"{float(k)}" for k in range(1, 11)]
    code, out, err = cli("generate", "--set", "label=1", "--n", "2", "-c", checkpoint, "-o", tmp_path / "ones.png")
    assert code == 0, err
    code, _, err = cli("generate", "--set", "label=0", "-c", checkpoint, "-o", tmp_path / "zero.png")
    error_line(code, err, "'0' is not a class of 'label'", "never as a position")


def test_train_out_that_cannot_be_written(cli, trained, tmp_path):
    note = tmp_path / "notes.txt"
    note.write_text("my notes\n")
    code, _, err = cli("train", trained["recipe"], "--out", note / "run")
    error_line(code, err, "--out", "notes.txt is a file, not a folder")


def test_an_os_error_anywhere_is_one_line(cli, trained, tmp_path, monkeypatch):
    def full(self, *args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "run" / "recipe.yaml"))

    monkeypatch.setattr(Path, "write_text", full)
    code, _, err = cli("train", trained["recipe"], "--out", tmp_path / "run")
    training_error(code, err, f"{tmp_path / 'run' / 'recipe.yaml'}: No space left on device")


def _wide_encoder(spec, image_shape, options=None):
    import torch.nn as nn

    from toolkit.testing import linear_networks

    nets = linear_networks(spec, image_shape)
    nets.encoder = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, spec.dim + 2))
    return nets


def test_a_network_that_returns_wrong_shapes_is_named_before_training(cli, register_plugin, tmp_path, monkeypatch):
    from toolkit.testing import SyntheticPlugin

    monkeypatch.chdir(tmp_path)
    register_plugin(SyntheticPlugin(), "synthetic")
    register_plugin(_network_plugin("wide", _wide_encoder), "broken")
    recipe = _synthetic_recipe(tmp_path / "recipe.yaml", network="wide")
    for args in (["train", recipe, "--out", tmp_path / "run"], ["recipe", "validate", recipe]):
        code, _, err = cli(*args)
        error_line(code, err, "network 'wide' (plugin 'broken', (in-process)): E(x) has shape (2, 9), expected (2, 7)")
    assert not (tmp_path / "run").exists()


def test_evaluate_without_the_recipes_judge_still_measures_the_encoder(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    judge = tmp_path / "judges" / "item.safetensors"  # named by the recipe, never made
    recipe = tiny_yaml(tmp_path / "tiny.yaml", steps=2)
    code, _, err = cli("train", recipe, "--set", f"evaluate.classifier={judge}", "--out", tmp_path / "run")
    assert code == 0, err
    checkpoint = tmp_path / "run" / "checkpoints" / "step-000002.safetensors"
    code, out, err = cli("evaluate", "-c", checkpoint, "--n", "2", "--device", "cpu")
    assert code == 0 and "Traceback" not in err, err
    assert f"the recipe's classifier {judge} is not there" in err
    assert f"toolkit classifier train fashion-mnist-mini --attribute item -o {judge}" in err
    report = json.loads((tmp_path / "run" / "checkpoints" / "step-000002.eval.json").read_text())
    assert "item" in report["encoder_accuracy"] and "generator_error" not in report
    assert "samples_per_class" not in report["protocol"], "no judge: no generated images, none counted"
    assert "encoder accuracy (item)" in out and "samples_per_class" not in out
    code, _, err = cli("evaluate", "-c", checkpoint, "--n", "2", "--classifier", judge, "--device", "cpu")
    error_line(code, err, f"classifier not found: {judge}")  # asked for by name: an error
