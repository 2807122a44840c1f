"""Smoke tests of the benchmarks: a few tiny steps, in-process, on the CPU."""

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "train_step.py"


def load_benchmark(path=BENCH):
    spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_step_benchmark_runs(tmp_path, capsys):
    import torch

    bench = load_benchmark()
    output = tmp_path / "R.md"
    threads = torch.get_num_threads()
    try:
        rows = bench.main(["--device", "cpu", "--width", "0.125", "--steps", "2", "--warmup", "1", "--repeats", "1",
                           "--families", "paper28", "--threads", "1", "--output", str(output)])
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    assert [(r["family"], r["implementation"]) for r in rows] == [("paper28", "toolkit default"), ("paper28", "baseline")]
    assert all(r["steps_per_s"] > 0 and r["images_per_s"] == r["steps_per_s"] * 64 for r in rows)
    assert rows[1]["speedup"] == 1.0
    assert "| paper28 | toolkit default |" in printed and "| paper28 | baseline |" in printed
    text = output.read_text()
    assert text.startswith("# Training-step benchmark results")
    assert "| paper28 | toolkit default |" in text and "| paper28 | baseline |" in text
    assert "--width 0.125" in text and "torch " in text and "threads: 1" in text

    try:
        bench.main(["--device", "cpu", "--width", "0.125", "--steps", "1", "--warmup", "0", "--repeats", "1",
                    "--families", "paper28", "--threads", "1", "--output", str(output)])
    finally:
        torch.set_num_threads(threads)
    assert output.read_text().count("\n## ") == 2  # appended, not overwritten


def test_benchmark_times_each_speed_setting_against_the_baseline(tmp_path):
    import pytest
    import torch

    bench = load_benchmark()
    assert bench.speed_options("off+channels_last") == {"precision": "fp32", "channels_last": True,
                                                        "compile": False, "optimizer": "loop"}
    threads = torch.get_num_threads()
    try:
        rows = bench.main(["--device", "cpu", "--width", "0.125", "--steps", "1", "--warmup", "0", "--repeats", "1",
                           "--families", "paper28", "--threads", "1", "--configs", "off,channels_last+foreach",
                           "--output", str(tmp_path / "R.md")])
        with pytest.raises(SystemExit):
            bench.main(["--configs", "warp-speed", "--output", str(tmp_path / "R.md")])
    finally:
        torch.set_num_threads(threads)
    assert [r["implementation"] for r in rows] == ["toolkit off", "toolkit channels_last+foreach", "baseline"]


def test_ema_effect_reports_averaged_and_raw_weights_of_one_run(tmp_path, capsys):
    from tiny import tiny_recipe

    from toolkit.train import Trainer

    bench = load_benchmark(BENCH.parent / "ema_effect.py")
    plain = tmp_path / "plain"
    Trainer(tiny_recipe(steps=2), plain, "cpu").run()
    assert bench.main([str(plain)]) == 2

    run = tmp_path / "run"
    Trainer(tiny_recipe(steps=4, ema=0.9), run, "cpu").run()
    assert "ema: 0.9" in (run / "recipe.yaml").read_text()
    assert bench.main([str(run), "--n", "4"]) == 0
    table = capsys.readouterr().out
    assert "| ema | no-judge |" in table and "| raw | no-judge |" in table
    ema, raw = (run / "ema-effect" / "ema" / "no-judge.json"), (run / "ema-effect" / "raw" / "no-judge.json")
    assert ema.is_file() and raw.is_file()
    assert (run / "ema-effect" / "raw" / "generation.png").is_file()
    assert ema.read_text() != raw.read_text()


def test_encoder_gap_reports_generated_agreement_real_accuracy_and_confusion(tmp_path, capsys):
    from tiny import tiny_recipe

    from toolkit.train import Trainer

    bench = load_benchmark(BENCH.parent / "encoder_gap.py")
    Trainer(tiny_recipe(steps=2), tmp_path, "cpu").run()
    checkpoint = str(tmp_path / "checkpoints" / "step-000002.safetensors")
    assert bench.main([checkpoint, "--n", "20", "--test", "50"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("E gives 20 generated images their class: ")
    assert lines[1].startswith("E's accuracy on 50 held-out images, BatchNorm statistics as saved: ")
    assert [line.split(":")[0] for line in lines[2:5]] == [
        "  ... re-estimated on real images", "  ... re-estimated on real and generated images",
        "  ... re-estimated on generated images"]
    rows = lines[7:]
    assert len(rows) == 10 and sum(int(v) for row in rows for v in row.split()[1:]) == 50
    assert bench.main([checkpoint, "--variable", "colour"]) == 2
    assert "--variable colour: not a labeled categorical variable (these are: item)" in capsys.readouterr().err


def test_method_cost_times_each_option_against_the_recipe(tmp_path, capsys):
    from tiny import tiny_yaml

    bench = load_benchmark(BENCH.parent / "method_cost.py")
    recipe = tiny_yaml(tmp_path / "tiny.yaml")
    output = tmp_path / "R.md"
    assert bench.main(["--recipe", str(recipe), "--steps", "1", "--warmup", "1", "--repeats", "1",
                       "--only", "base,consistency (FixMatch),r1 every step", "--output", str(output)]) == 0
    table = [line for line in output.read_text().splitlines() if line.startswith("| ") and "ms per step" not in line]
    assert [row.split(" | ")[0] for row in table] == ["| base", "| consistency (FixMatch)", "| r1 every step"]
    assert table[0].endswith("| 1.00 |")
    assert all(float(row.split(" | ")[1]) > 0 for row in table)


def test_every_method_cost_option_set_is_a_valid_recipe():
    from toolkit.plugins import load_resolved

    bench = load_benchmark(BENCH.parent / "method_cost.py")
    for name, overrides in bench.OPTIONS.items():
        assert load_resolved(str(BENCH.parent.parent / "recipes" / "quickstart.yaml"), [*overrides, "train.device=cpu"]), name


def test_method_cost_only_names_every_option_set_and_rejects_unknown_ones(tmp_path, capsys):
    bench = load_benchmark(BENCH.parent / "method_cost.py")
    assert not [name for name in bench.OPTIONS if "," in name]  # --only splits on commas
    with pytest.raises(SystemExit) as stop:
        bench.main(["--only", "base,info augment translation,blur", "--output", str(tmp_path / "R.md")])
    assert stop.value.code == 2
    assert "--only: unknown option set 'info augment translation' (valid: base, " in capsys.readouterr().err
    assert not (tmp_path / "R.md").exists()


def test_encoder_ceiling_trains_the_encoder_alone_over_seeds(tmp_path, capsys):
    from tiny import tiny_yaml

    bench = load_benchmark(BENCH.parent / "encoder_ceiling.py")
    recipe = tiny_yaml(tmp_path / "tiny.yaml")
    assert bench.main([str(recipe), "--seeds", "0,1", "--steps", "4", "--every", "2", "--labels", "20",
                       "--augment-labeled", "--consistency", "1", "--threshold", "0"]) == 0
    out = capsys.readouterr().out.splitlines()
    curves = [line for line in out if line.startswith("seed ")]
    assert [line.split(":")[0] for line in curves] == ["seed 0", "seed 1"]
    accuracies = [float(part.split(":")[1]) for line in curves for part in line.split("(")[0].split()[2:]]
    assert len(accuracies) == 4 and all(0 <= a <= 100 for a in accuracies)
    assert out[-2].startswith("  step 2: ") and out[-1].startswith("  step 4: ") and out[-1].endswith("%")
    # the fully supervised reference: every training image labeled
    from toolkit.recipe import load_recipe

    history = bench.train_encoder(load_recipe(recipe), 0, 2, "all", 8, False, 0.0, 0.9, every=1)
    assert list(history) == [1, 2] and all(0 <= v <= 1 for v in history.values())


def test_encoder_ceiling_teaches_e_with_a_trained_generators_images(tmp_path, capsys):
    from tiny import tiny_yaml

    from toolkit.model import load_model
    from toolkit.plugins import load_resolved
    from toolkit.recipe import load_recipe
    from toolkit.train import Trainer

    bench = load_benchmark(BENCH.parent / "encoder_ceiling.py")
    recipe = tiny_yaml(tmp_path / "tiny.yaml")
    Trainer(load_resolved(str(recipe), ["train.steps=2"]), tmp_path / "run", "cpu").run()
    ckpt = tmp_path / "run" / "checkpoints" / "step-000002.safetensors"
    assert bench.main([str(recipe), "--seeds", "0", "--steps", "2", "--every", "2", "--labels", "20",
                       "--generator", str(ckpt), "--generated-per-step", "6"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "6 of G's images per step (weight 1.0)" in out[-2] and out[-1].startswith("  step 2: ")
    # G draws the asked number of images at every step, in eval mode (its saved BatchNorm statistics)
    model = load_model(ckpt)
    model.networks.eval()
    drawn = []
    model.networks.generator.register_forward_hook(lambda m, args, out: drawn.append((m.training, out.shape[0])))
    bench.train_encoder(load_recipe(recipe), 0, 3, 20, 4, False, 0.0, 0.9, every=3, generator_model=model,
                        generated_per_step=6)
    assert drawn == [(False, 6)] * 3
    # a checkpoint with another latent code is refused in one line
    other = tiny_yaml(tmp_path / "other.yaml")
    other.write_text(other.read_text().replace("size: 4", "size: 5"))
    with pytest.raises(SystemExit):
        bench.main([str(other), "--seeds", "0", "--steps", "1", "--generator", str(ckpt)])
    assert f"--generator: {ckpt} has another latent code than {other}" in capsys.readouterr().err


def test_encoder_ceiling_draws_unlabeled_rows_from_another_set(tmp_path, capsys):
    import torch
    from PIL import Image
    from tiny import tiny_yaml

    from toolkit.recipe import load_recipe

    bench = load_benchmark(BENCH.parent / "encoder_ceiling.py")
    recipe = tiny_yaml(tmp_path / "tiny.yaml")
    folder = tmp_path / "more"
    folder.mkdir()
    for i in range(5):
        Image.new("L", (28, 28), 40 * i).save(folder / f"{i}.png")
    more = ["--unlabeled-set", "data.dataset=image-folder", "--unlabeled-set", f"data.options.folder={folder}",
            "--unlabeled-set", "data.options.test_fraction=0"]
    assert bench.main([str(recipe), "--seeds", "0", "--steps", "2", "--every", "2", "--labels", "20",
                       "--consistency", "1", "--threshold", "0", *more]) == 0
    assert "unlabeled rows from 5 images" in capsys.readouterr().out.splitlines()[-2]
    # the rows after the labeled ones are the other set's images
    seen = []
    encoder_hook = lambda module, args: seen.append(args[0])  # noqa: E731
    real_build = bench.build_networks

    def build(*args, **kwargs):
        networks = real_build(*args, **kwargs)
        networks.encoder.register_forward_pre_hook(encoder_hook)
        return networks

    bench.build_networks = build
    grey = torch.full((3, 1, 28, 28), 0.5)
    bench.train_encoder(load_recipe(recipe), 0, 1, 20, 2, False, 1.0, 0.0, every=1, unlabeled=grey)
    batch = next(x for x in seen if len(x) == 8)  # 2 labeled + 6 unlabeled rows
    assert (batch[2:] == 0.5).all() and not (batch[:2] == 0.5).all()
    # images of another size are refused in one line
    with pytest.raises(SystemExit):
        bench.main([str(recipe), "--seeds", "0", "--steps", "1", *more, "--unlabeled-set", "data.options.image_size=32"])
    assert "--unlabeled-set: its images are 1x32x32, the recipe's 1x28x28" in capsys.readouterr().err


@pytest.mark.parametrize("term", ["consistency", "vat"])
def test_encoder_ceiling_draws_the_more_images_a_term_with_an_unlabeled_ratio_reads(tmp_path, capsys, term):
    from tiny import tiny_yaml

    bench = load_benchmark(BENCH.parent / "encoder_ceiling.py")
    recipe = tiny_yaml(tmp_path / "tiny.yaml")
    weight = ["--consistency", "1", "--threshold", "0"] if term == "consistency" else ["--vat", "1"]
    assert bench.main([str(recipe), "--seeds", "0", "--steps", "2", "--every", "2", "--labels", "20", *weight,
                       "--set", f"losses.{term}.options.unlabeled_ratio=2"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("  step 2: ")


def test_average_horizon_judges_averages_of_the_recipes_own_run(tmp_path, capsys):
    from tiny import tiny_yaml

    from toolkit.plugins import load_resolved
    from toolkit.train import Trainer

    bench = load_benchmark(BENCH.parent / "average_horizon.py")
    recipe = tiny_yaml(tmp_path / "tiny.yaml")
    assert bench.main([str(recipe), "--averages", "0.9,r1", "--every", "2", "--out", str(tmp_path / "run")]) == 0
    assert capsys.readouterr().out.splitlines() == ["step 2: generator error 0.9 -, r1 -", "step 4: generator error 0.9 -, r1 -"]
    results = json.loads((tmp_path / "run" / "averages.json").read_text())
    assert list(results) == ["0.9", "r1"] and list(results["0.9"]) == ["2", "4"]
    # the decay column is what the trainer itself reports with train.ema at that decay
    record = Trainer(load_resolved(str(recipe), ["train.ema=0.9"]), tmp_path / "own", "cpu").run()
    assert results["0.9"]["4"]["encoder_accuracy"] == record["encoder_accuracy"]
    with pytest.raises(SystemExit):
        bench.main([str(recipe), "--averages", "0.99,rx"])
    assert "--averages: 'rx' is neither a decay in (0, 1) nor rK with K > 0" in capsys.readouterr().err


def test_judge_check_reports_clean_blurred_and_no_class_images(tmp_path, capsys):
    from toolkit.classifier import save_classifier, train_classifier

    bench = load_benchmark(BENCH.parent / "judge_check.py")
    module, meta = train_classifier("fashion-mnist-mini", {}, "item", network_options={"width": 0.25}, epochs=1,
                                    batch_size=32, limit=64)
    path = save_classifier(tmp_path / "judge.safetensors", module, meta)
    assert bench.main([str(path), "--n", "40"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("| judge | test acc. | blur 1 |")
    row = out[2].split(" | ")
    assert row[0] == "| judge.safetensors (reject)" and len(row) == 8
    assert all(cell.rstrip(" |").endswith("%") for cell in row[1:])
