"""Evaluation metrics on hand-made cases, the paper's figures, and resumable sweeps."""

import json
import subprocess
import sys

import pytest
import torch
from PIL import Image
from tiny import tiny_recipe, tiny_yaml
from torch import nn

from toolkit.data import ImageSet
from toolkit.evaluate import class_spread, encoder_metrics, evaluate, generator_error, translation_accuracy
from toolkit.latent import LatentSpec, Variable

CLASSES = [str(i) for i in range(10)]


class Oracle(nn.Module):
    """A 'classifier' that reads the class from the brightest of ten pixels."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, images):
        return images.flatten(1)[:, :10] * 10 + self.dummy


class FakeModel:
    """G writes the class it is asked for (perfect) or a random one (useless) into a pixel."""

    from toolkit.model import Model

    translate, translations, _values = Model.translate, Model.translations, Model._values  # real translation, fake networks
    del Model

    def __init__(self, useless: bool):
        self.spec = LatentSpec(2, [Variable("digit", "categorical", CLASSES, label="digit")])
        self.useless = useless
        self.g = torch.Generator().manual_seed(0)

    def encode(self, x):
        z = torch.zeros(len(x), self.spec.dim)
        z[:, self.spec.slices["digit"].start] = 1.0  # every test image reads as class 0
        return z

    def decode(self, z):
        k = z[:, self.spec.slices["digit"]].argmax(1)
        if self.useless:
            k = torch.randint(10, k.shape, generator=self.g)
        images = torch.zeros(len(z), 1, 28, 28)
        images.view(len(z), -1)[torch.arange(len(z)), k] = 1.0
        return images


def test_a_perfect_generator_has_zero_error_and_a_useless_one_about_ninety_percent():
    perfect = generator_error(FakeModel(useless=False), Oracle(), "digit", per_class=200, seed=0)
    assert perfect["overall"] == 0.0 and set(perfect["per_class"]) == set(CLASSES)
    useless = generator_error(FakeModel(useless=True), Oracle(), "digit", per_class=200, seed=0)
    assert 0.85 < useless["overall"] < 0.95


def test_within_class_spread_is_zero_for_one_image_per_class_and_the_pixel_std_otherwise():
    collapsed = generator_error(FakeModel(useless=False), Oracle(), "digit", per_class=50, seed=0)
    assert collapsed["spread"] == 0.0 and set(collapsed["spread_per_class"].values()) == {0.0}
    varied = generator_error(FakeModel(useless=True), Oracle(), "digit", per_class=400, seed=0)
    # ten possible images, one bright pixel each: each of 10 pixels has std sqrt(p (1 - p)), p = 1/10
    expected = 10 * (0.1 * 0.9) ** 0.5 / (28 * 28)
    assert abs(varied["spread"] - expected) < 0.1 * expected
    images = torch.tensor([0, 255, 0, 0], dtype=torch.uint8).view(4, 1, 1, 1).expand(4, 1, 2, 2).contiguous()
    spread = class_spread(images, torch.tensor([0, 0, 1, -1]), ["a", "b", "c"])
    assert spread == {"a": 0.5, "b": None, "c": None}  # half black, half white: std 0.5; one image: none


def test_translation_accuracy_counts_translations_judged_as_the_requested_class():
    from types import SimpleNamespace

    test = SimpleNamespace(images=torch.zeros(30, 1, 28, 28, dtype=torch.uint8))
    perfect = translation_accuracy(FakeModel(useless=False), Oracle(), "digit", test, n=20)
    assert perfect["overall"] == 1.0 and perfect["images"] == 20 and set(perfect["per_class"]) == set(CLASSES)
    useless = translation_accuracy(FakeModel(useless=True), Oracle(), "digit", test, n=30)
    assert 0.0 < useless["overall"] < 0.25
    assert perfect["mean_abs_change"] == pytest.approx(1 / 784)  # one lit pixel in each blank input


def test_translation_accuracy_keeping_details_changes_only_what_the_edit_changes():
    from types import SimpleNamespace

    test = SimpleNamespace(images=torch.zeros(20, 1, 28, 28, dtype=torch.uint8))
    kept = translation_accuracy(FakeModel(useless=False), Oracle(), "digit", test, n=20, keep_details=True)
    redrawn = translation_accuracy(FakeModel(useless=False), Oracle(), "digit", test, n=20)
    assert kept["overall"] == 1.0 and kept["keep_details"] is True and redrawn["keep_details"] is False
    # into class 0 (what every input already reads as) nothing changes; into the 9 others, one
    # (smoothed) pixel: about 9/10 of the redrawn images' change
    assert 0.75 * redrawn["mean_abs_change"] < kept["mean_abs_change"] <= 0.9 * redrawn["mean_abs_change"] + 1e-9


def test_images_the_judge_refuses_are_errors_and_counted_as_refused():
    from types import SimpleNamespace

    class Refusing(Oracle):
        reject_index = 9  # its tenth output is "no class": every image of class 9 is refused

    ge = generator_error(FakeModel(useless=False), Refusing(), "digit", per_class=50, seed=0)
    assert ge["per_class"]["9"] == 1.0 and ge["overall"] == pytest.approx(0.1) and ge["refused"] == pytest.approx(0.1)
    test = SimpleNamespace(images=torch.zeros(20, 1, 28, 28, dtype=torch.uint8))
    ta = translation_accuracy(FakeModel(useless=False), Refusing(), "digit", test, n=20)
    assert ta["per_class"]["9"] == 0.0 and ta["refused"] == pytest.approx(0.1)
    assert generator_error(FakeModel(useless=False), Oracle(), "digit", per_class=20, seed=0)["refused"] == 0.0


def test_generator_error_is_reproducible_for_a_seed():
    a = generator_error(FakeModel(useless=False), Oracle(), "digit", per_class=10, seed=3)
    assert a == generator_error(FakeModel(useless=False), Oracle(), "digit", per_class=10, seed=3)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from toolkit.train import Trainer

    run = tmp_path_factory.mktemp("run")
    return Trainer(tiny_recipe(steps=2), run, "cpu").run()["checkpoint"]


def test_encoder_metrics_on_a_test_set(checkpoint):
    from toolkit.model import load_model

    model = load_model(checkpoint)
    images = (torch.rand(20, 1, 28, 28) * 255).to(torch.uint8)
    labels = torch.tensor([k % 10 for k in range(20)])
    labels[:5] = -1
    test = ImageSet(images, {"item": labels}, {"item": model.spec["item"].classes})
    report = encoder_metrics(model, test)
    predicted = model.classify(images.float() / 255, "item")
    expected = float((predicted[5:] == labels[5:]).float().mean())
    assert report["encoder_accuracy"]["item"] == pytest.approx(expected)
    assert 0 < report["reconstruction_mse"] < 1
    recalls = [float((predicted[5:][labels[5:] == k] == k).float().mean()) for k in range(10) if (labels[5:] == k).any()]
    assert report["encoder_balanced_accuracy"]["item"] == pytest.approx(sum(recalls) / len(recalls))


def test_a_judge_blind_to_a_class_is_named_in_a_warning():
    from toolkit.evaluate import judge_warnings

    blind = {"attribute": "pale", "class_accuracy": {"no": 0.99, "yes": 0.12}}
    lines = judge_warnings(blind, "pale.safetensors")
    assert len(lines) == 1 and "recognises only 12% of real 'yes' images of 'pale'" in lines[0]
    assert judge_warnings({"attribute": "pale", "class_accuracy": {"no": 0.95, "yes": 0.81}}, "p") == []
    assert judge_warnings({"attribute": "pale"}, "old.safetensors") == []  # from before per-class accuracy


def test_figures_have_the_paper_layout(checkpoint, tmp_path):
    done = subprocess.run([sys.executable, "-m", "toolkit", "figures", "-c", checkpoint, "-o", tmp_path / "fig"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    cell = 30  # 28 px + 2 px padding
    sizes = {p.name: Image.open(p).size for p in (tmp_path / "fig").iterdir()}
    assert sizes["generation.png"] == (5 * cell + 2, 10 * cell + 2)  # c1 swept over 5 columns, a row per class
    assert sizes["translation.png"] == (11 * cell + 2, 10 * cell + 2)  # original + 10 classes, one image per class
    assert sizes["interpolation.png"] == (11 * cell + 2, 5 * cell + 2)  # a, 9 steps, b; 5 pairs
    assert sizes["sweep-c1.png"] == (6 * cell + 2, 10 * cell + 2)


def test_sweep_trains_every_setting_and_resumes_without_retraining(tmp_path):
    recipe = tiny_yaml(tmp_path / "tiny.yaml", steps=2)
    args = [sys.executable, "-m", "toolkit", "sweep", recipe, "--seeds", "0,1", "--labels", "20", "--out", tmp_path / "sweep"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "sweep" / "summary.json").read_text())
    assert summary["20"]["encoder_accuracy.item"]["n"] == 2
    assert "| 20 | 2 |" in (tmp_path / "sweep" / "summary.md").read_text()
    again = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("done:") == 2 and "training" not in again.stderr


def test_evaluation_during_training_goes_to_the_metrics_log(tmp_path):
    from toolkit.classifier import save_classifier, train_classifier
    from toolkit.train import Trainer

    module, meta = train_classifier("fashion-mnist-mini", {}, "item", network_options={"width": 0.25},
                                    epochs=1, batch_size=32, limit=200)
    judge = save_classifier(tmp_path / "judge.safetensors", module, meta)
    recipe = tiny_recipe(steps=4, checkpoint_every=100)
    recipe.evaluate.classifier = str(judge)
    recipe.evaluate.every = 2
    recipe.evaluate.samples_per_class = 3
    result = Trainer(recipe, tmp_path / "run", "cpu").run()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evaluations = [r for r in records if "generator_error" in r]
    assert [r["step"] for r in evaluations] == [2, 4]
    assert 0 <= evaluations[0]["generator_error"] <= 1 and len(evaluations[0]["generator_error_per_class"]) == 10
    assert all(0 <= r["generator_spread"] <= 0.5 and 0 < r["real_spread"] <= 0.5 for r in evaluations)
    assert all(0 <= r["translation_accuracy"] <= 1 for r in evaluations)
    # the best checkpoint (lowest generator error; ties: the later step) is kept beside the final one
    errors = [r["generator_error"] for r in evaluations]
    best_step = max(r["step"] for r in evaluations if r["generator_error"] == min(errors))
    best = json.loads((tmp_path / "run" / "best.json").read_text())
    assert best["step"] == best_step and best["generator_error"] == min(errors)
    assert evaluations[-1]["best"] == best
    # what `toolkit train` prints at the end: the final checkpoint's figures, and the best one when it differs
    from toolkit.cli.train import evaluation_lines

    assert result["evaluation"]["generator_error"] == evaluations[-1]["generator_error"]
    lines = evaluation_lines(result["evaluation"], tmp_path / "run" / "best.safetensors")
    assert lines[0].startswith("encoder accuracy on held-out images: item ")
    assert lines[1].startswith(f"generator error {evaluations[-1]['generator_error']:.2%}, translation accuracy ")
    assert len(lines) == 3 and lines[2].startswith("best checkpoint: ")
    assert ("this final one" in lines[2]) == (best_step == 4)
    lines = evaluation_lines({**result["evaluation"], "best": {"step": 2, "generator_error": 0.125}}, "B")
    assert lines[-1] == "best checkpoint: step 2, generator error 12.50%: B"
    from toolkit.model import load_model

    assert load_model(tmp_path / "run" / "best.safetensors").step == best_step
    # a report's protocol says what the judge read: 3 generated images per class, the first 3 held-out ones translated
    protocol = evaluate(load_model(tmp_path / "run" / "best.safetensors"), judge, 3, 0)["protocol"]
    assert protocol["samples_per_class"] == 3 and protocol["translated_images"] == 3
    import importlib.util

    if importlib.util.find_spec("tensorboard"):  # optional: pip install toolkit-gan[tensorboard]
        assert (tmp_path / "run" / "tensorboard").is_dir()


def test_evaluating_during_training_does_not_change_the_training(tmp_path):
    """An evaluation draws random numbers of its own only: the weights after 4 steps are the same
    whether the run was judged every 2 steps or not at all (a comparison of recipes over seeds
    must not depend on evaluate.every)."""
    from toolkit.classifier import save_classifier, train_classifier
    from toolkit.train import Trainer

    module, meta = train_classifier("fashion-mnist-mini", {}, "item", network_options={"width": 0.25},
                                    epochs=1, batch_size=32, limit=64)
    judge = save_classifier(tmp_path / "judge.safetensors", module, meta)
    weights = []
    for every in (0, 2):
        recipe = tiny_recipe(steps=4, checkpoint_every=100)
        recipe.evaluate.classifier, recipe.evaluate.every, recipe.evaluate.samples_per_class = str(judge), every, 3
        trainer = Trainer(recipe, tmp_path / f"every-{every}", "cpu")
        trainer.run()
        weights.append(trainer.networks.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_a_sweep_reuses_a_report_only_for_the_same_checkpoint_and_protocol(tmp_path):
    import os

    from toolkit.cli.sweep import _report_key, _reusable
    from toolkit.recipe import EvalConfig

    checkpoint = tmp_path / "step-000002.safetensors"
    checkpoint.write_bytes(b"weights")
    cfg = EvalConfig(samples_per_class=3)
    report = tmp_path / "step-000002.eval.json"
    report.write_text(json.dumps({"step": 2, "reuse_key": _report_key(checkpoint, cfg)}))
    assert _reusable(report, _report_key(checkpoint, cfg))["step"] == 2
    assert _reusable(report, _report_key(checkpoint, EvalConfig(samples_per_class=4))) is None  # another protocol
    st = checkpoint.stat()
    os.utime(checkpoint, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the checkpoint was written again
    assert _reusable(report, _report_key(checkpoint, cfg)) is None
    report.write_text(json.dumps({"step": 2}))  # a report from before reports carried their key
    assert _reusable(report, _report_key(checkpoint, cfg)) is None
