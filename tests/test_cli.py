"""The command line end to end: train, then generate / translate / interpolate from the file."""

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from tiny import tiny_yaml


def toolkit(*args, cwd):
    return subprocess.run([sys.executable, "-m", "toolkit", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder in which a tiny run was trained with `toolkit train` (into ./runs)."""
    cwd = tmp_path_factory.mktemp("cli")
    recipe = tiny_yaml(cwd / "tiny.yaml", steps=4)
    done = toolkit("train", recipe, "--set", "seed=3", cwd=cwd)
    assert done.returncode == 0, done.stderr
    assert "encoder accuracy on held-out images: item" in done.stderr
    assert "train 4/4 " in done.stderr  # not a terminal: progress comes as plain log lines
    Image.fromarray((np.random.default_rng(0).random((40, 30, 3)) * 255).astype(np.uint8)).save(cwd / "photo.png")
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(cwd / "digit.png")
    return cwd


def test_train_writes_a_run_folder(workdir):
    (run,) = (workdir / "runs").iterdir()
    assert run.name.startswith("tiny-")
    assert "seed: 3" in (run / "recipe.yaml").read_text()
    assert len(list((run / "checkpoints").glob("*.safetensors"))) == 2


def test_generate_uses_the_newest_checkpoint_and_sets_a_class(workdir):
    done = toolkit("generate", "--set", "item=trouser", "--n", "4", "-o", "g.png", cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert "using the newest checkpoint" in done.stderr
    assert Image.open(workdir / "g.png").size == (2 * 30 + 2, 2 * 30 + 2)  # 2x2 grid of 28 px + padding
    done = toolkit("generate", "--set", "item=8", "--set", "c1=0.5", "--n", "1", "-o", "g8.png", cwd=workdir)
    assert done.returncode == 0 and "(item=bag, c1=0.5)" in done.stdout, "a class position is named by its class"


def test_generate_without_a_class_gives_one_row_per_class(workdir):
    done = toolkit("generate", "--n", "3", "-o", "rows.png", cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert Image.open(workdir / "rows.png").size == (3 * 30 + 2, 10 * 30 + 2)


def test_translate_and_interpolate_convert_other_sizes_and_channels(workdir):
    done = toolkit("translate", "--set", "item=Bag", "photo.png", "digit.png", "-o", "t.png", cwd=workdir)
    assert done.returncode == 0 and "(input | item=bag)" in done.stdout, done.stderr
    assert Image.open(workdir / "t.png").size == (2 * 30 + 2, 2 * 30 + 2)
    done = toolkit("translate", "--sweep", "item", "digit.png", "-o", "sweep.png", cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert Image.open(workdir / "sweep.png").size == (11 * 30 + 2, 30 + 2)
    done = toolkit("translate", "--sweep", "item", "--strength", "2", "--keep-details", "digit.png", "-o", "kept.png",
                   cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert Image.open(workdir / "kept.png").size == (11 * 30 + 2, 30 + 2)
    done = toolkit("interpolate", "photo.png", "digit.png", "--steps", "5", "-o", "i.png", cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert Image.open(workdir / "i.png").size == (7 * 30 + 2, 30 + 2)


@pytest.mark.parametrize(
    "args, message",
    [
        (["generate", "--set", "colour=red"], "unknown latent variable 'colour'"),
        (["generate", "--set", "item=spaceship"], "'spaceship' is not a class of 'item'"),
        (["generate", "--set", "c1=abc"], "'c1' is continuous: expected a number"),
        (["translate", "--set", "item=bag", "missing.png"], "missing.png: no such file"),
        (["generate", "-c", "tiny.yaml"], "not a readable safetensors checkpoint"),
        (["train", "tiny.yaml", "--set", "train.stepz=3"], "train.stepz: unknown key; did you mean 'steps'? allowed: steps"),
        (["train", "tiny.yaml", "--set", "model.network=paper28x"], "unknown network 'paper28x'"),
        (["train", "nothere.yaml"], "recipe not found: nothere.yaml"),
        (["train", "tiyn.yaml"], "recipe not found: tiyn.yaml; did you mean 'tiny.yaml'? recipes in .:"),
        (["train", "--resume", "runs"], "nothing to resume"),
    ],
)
def test_user_errors_print_one_line_and_exit_1(workdir, args, message):
    done = toolkit(*args, cwd=workdir)
    assert done.returncode == 1
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2  # the error (and possibly "using the newest checkpoint")


def test_debug_shows_the_traceback(workdir):
    done = toolkit("--debug", "generate", "--set", "colour=red", cwd=workdir)
    assert done.returncode == 1 and "Traceback" in done.stderr


def test_resume_continues_a_run(workdir):
    (run,) = (workdir / "runs").iterdir()
    done = toolkit("train", "--resume", run, "--set", "train.steps=6", cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert "resuming" in done.stderr and "step 6" in done.stderr


def test_plugins_and_recipe_commands(workdir):
    done = toolkit("plugins", "--json", cwd=workdir)
    assert done.returncode == 0 and '"paper28"' in done.stdout and '"fashion-mnist-mini"' in done.stdout
    done = toolkit("recipe", "show", "tiny.yaml", "--set", "optim.lr_d=3e-4", cwd=workdir)
    assert done.returncode == 0 and "lr_d: 0.0003" in done.stdout and "d_regularizer: noise" in done.stdout
    done = toolkit("recipe", "schema", cwd=workdir)
    assert done.returncode == 0 and '"Recipe"' in done.stdout


def test_progress_in_logs_prints_a_line_per_interval_and_at_the_end():
    from rich.console import Console

    from toolkit.cli.progress import LineProgress

    console = Console(file=io.StringIO(), width=200)
    with LineProgress(console, "train", total=10, interval=3600) as bar:
        for step in range(1, 11):
            bar.update(step, info=f"loss={step}")
    lines = console.file.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("train 10/10 ") and lines[0].endswith("loss=10")
    with LineProgress(console, "classifier", total=None, interval=0) as bar:
        bar.update(3, total=6, info="epoch 1/2")
    assert "classifier 3/6 " in console.file.getvalue().splitlines()[-1]


def test_version_prints_without_a_command(tmp_path):
    from toolkit import __version__

    for args in (["--version"], ["--version", "generate"]):
        done = toolkit(*args, cwd=tmp_path)
        assert done.returncode == 0 and done.stdout.strip() == f"toolkit {__version__}", done.stderr


def test_resuming_a_finished_run_repeats_nothing(workdir, tmp_path):
    (run,) = (workdir / "runs").iterdir()
    done = toolkit("train", "--resume", run, cwd=workdir)  # trained to its train.steps already
    assert done.returncode == 0, done.stderr
    metrics = (run / "metrics.jsonl").read_text()
    again = toolkit("train", "--resume", run, cwd=workdir)
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stderr and "--set train.steps=" in again.stderr
    assert (run / "metrics.jsonl").read_text() == metrics  # no second evaluation row of the same step


def test_help_shows_flags_as_flags_and_settings_as_name_value(tmp_path):
    for command in ([], ["translate"], ["train"], ["explore"]):
        done = toolkit(*command, "--help", cwd=tmp_path)
        assert done.returncode == 0 and "<bool>" not in done.stdout, done.stdout  # a flag takes no value
    assert "--set NAME=VALUE" in toolkit("translate", "--help", cwd=tmp_path).stdout
    assert "--set KEY=VALUE" in toolkit("train", "--help", cwd=tmp_path).stdout
