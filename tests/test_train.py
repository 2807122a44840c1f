"""The training loop: updates, resume equality, stopping on bad losses."""

import json
import os
import signal

import pytest
import torch
from tiny import tiny_recipe

from toolkit.checkpoint import read_meta
from toolkit.errors import ToolkitError
from toolkit.latent import build_spec
from toolkit.rundir import RESUME_FILE
from toolkit.train import Trainer, TrainingStopped


def weights(trainer):
    return {k: v.clone() for k, v in trainer.networks.state_dict().items()}


def test_one_step_changes_generator_encoder_and_discriminator(tmp_path):
    trainer = Trainer(tiny_recipe(), tmp_path, "cpu")
    before = weights(trainer)
    trainer.train_step(1)
    after = weights(trainer)
    for prefix in ("generator.", "encoder.", "discriminator."):
        changed = [k for k in before if k.startswith(prefix) and not torch.equal(before[k], after[k])]
        assert changed, f"no {prefix} weight changed in one step"


def test_resume_gives_the_same_weights_as_training_straight_through(tmp_path):
    straight = Trainer(tiny_recipe(steps=6, checkpoint_every=100), tmp_path / "a", "cpu")
    straight.run()

    first = Trainer(tiny_recipe(steps=3, checkpoint_every=100), tmp_path / "b", "cpu")
    first.run()
    torch.manual_seed(999)  # a resumed process starts with other RNG state; resume must restore it
    second = Trainer(tiny_recipe(steps=6, checkpoint_every=100), tmp_path / "b", "cpu")
    second.load_resume()
    assert second.step == 3
    second.run()
    assert_same_state(straight, second)


def test_a_resumed_runs_clock_goes_on_from_where_it_stopped(tmp_path):
    Trainer(tiny_recipe(steps=4, log_every=2, checkpoint_every=2), tmp_path, "cpu").run()
    rows = lambda: [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    before = max(r["time"] for r in rows() if "time" in r)
    second = Trainer(tiny_recipe(steps=6, log_every=2, checkpoint_every=2), tmp_path, "cpu")
    second.load_resume()
    second.run()
    times = [(r["step"], r["time"]) for r in rows() if "time" in r]
    assert [step for step, _ in times] == [2, 4, 6]
    assert times[2][1] > before  # step 6's training time counts the first session's too (was: from 0 again)


def test_a_term_at_weight_zero_is_off_its_passes_do_not_run_and_training_is_the_same_as_without_it(tmp_path, monkeypatch):
    from toolkit_paper.additions import VirtualAdversarial

    def recipe(vat_weight=None):
        data = tiny_recipe(steps=3, checkpoint_every=100).model_dump()
        if vat_weight is not None:
            data["losses"]["vat"] = {"weight": vat_weight, "options": {"unlabeled_ratio": 2}}
        return type(tiny_recipe()).model_validate(data)

    def refuse(*args):
        raise AssertionError("a term at weight 0 ran its passes")

    monkeypatch.setattr(VirtualAdversarial, "extra_passes", refuse)
    off = Trainer(recipe(0.0), tmp_path / "off", "cpu")
    assert "vat" not in off.losses and off.unlabeled_ratio == 0  # no more real images drawn for it either
    off.run()
    without = Trainer(recipe(), tmp_path / "without", "cpu")
    without.run()
    assert_same_state(without, off)
    with pytest.raises(ToolkitError, match="ran its passes"):  # at any other weight the term runs
        Trainer(recipe(1.0), tmp_path / "on", "cpu").run()


def test_a_term_with_an_unlabeled_ratio_gets_that_many_more_real_images_and_resume_stays_exact(tmp_path, monkeypatch):
    def with_consistency(steps):
        recipe = tiny_recipe(steps=steps, checkpoint_every=100)
        data = recipe.model_dump()
        data["losses"]["consistency"] = {"weight": 1.0, "options": {"unlabeled_ratio": 2, "threshold": 0.0}}
        return type(recipe).model_validate(data)

    seen = []
    trainer = Trainer(with_consistency(1), tmp_path / "a", "cpu")
    original = trainer.forward.forward

    def spy(x_real, z_fake, step=0, x_unlabeled=None, labels=None):
        seen.append((len(x_real), None if x_unlabeled is None else tuple(x_unlabeled.shape)))
        return original(x_real, z_fake, step, x_unlabeled, labels)

    monkeypatch.setattr(trainer.forward, "forward", spy)
    trainer.train_step(1)
    batch = trainer.recipe.optim.batch_size
    assert seen == [(batch, (2 * batch, *trainer.image_shape))]

    straight = Trainer(with_consistency(4), tmp_path / "b", "cpu")
    straight.run()
    first = Trainer(with_consistency(2), tmp_path / "c", "cpu")
    first.run()
    torch.manual_seed(999)
    second = Trainer(with_consistency(4), tmp_path / "c", "cpu")
    second.load_resume()
    second.run()
    assert_same_state(straight, second)


def test_a_term_with_running_statistics_resumes_them_exactly(tmp_path):
    def with_softmatch(steps):
        recipe = tiny_recipe(steps=steps, checkpoint_every=100)
        data = recipe.model_dump()
        data["losses"]["consistency"] = {"weight": 1.0, "options": {"weighting": "soft", "alignment": "prior"}}
        return type(recipe).model_validate(data)

    straight = Trainer(with_softmatch(4), tmp_path / "a", "cpu")
    straight.run()
    first = Trainer(with_softmatch(2), tmp_path / "b", "cpu")
    first.run()
    second = Trainer(with_softmatch(4), tmp_path / "b", "cpu")
    fresh = second.losses["consistency"].state_dict()
    second.load_resume()
    loaded = second.losses["consistency"].state_dict()
    assert any(not torch.equal(fresh[k], loaded[k]) for k in fresh), "the statistics of steps 1-2 came back"
    second.run()
    assert_same_state(straight, second)
    for key, value in straight.losses["consistency"].state_dict().items():
        assert torch.equal(value, second.losses["consistency"].state_dict()[key]), key


# -- interrupted runs continue exactly --------------------------------------------------------
def rows(run):
    """The metrics rows without the wall-clock fields."""
    out = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        row.pop("time", None)
        row.pop("steps_per_s", None)
        out.append(row)
    return out


def assert_same_state(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), f"{key} differs after resume"
    for name in ("opt_ge", "opt_d"):
        sa, sb = getattr(a, name).state_dict()["state"], getattr(b, name).state_dict()["state"]
        for i in sa:
            assert all(torch.equal(sa[i][k], sb[i][k]) for k in ("exp_avg", "exp_avg_sq", "step")), f"{name} state {i}"


def interrupt_at(trainer, step, signum=signal.SIGINT, where="opt_d"):
    """Send ``signum`` to this process in the middle of ``step``: after D's update, before G/E's."""
    optimizer = getattr(trainer, where)
    original = optimizer.step

    def step_then_signal(*args, **kwargs):
        out = original(*args, **kwargs)
        if trainer.step == step:
            os.kill(os.getpid(), signum)
        return out

    optimizer.step = step_then_signal


@pytest.fixture
def ctrl_c_reaches_python():
    """Python's own SIGINT handler for the test: a shell may start background jobs (a CI run
    with ``&``) with SIGINT ignored, and the trainer rightly leaves an ignored signal ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_in_the_middle_of_a_step_finishes_it_and_resume_is_exact(tmp_path, signum, ctrl_c_reaches_python):
    recipe = dict(steps=6, checkpoint_every=100, log_every=2)
    straight = Trainer(tiny_recipe(**recipe), tmp_path / "a", "cpu")
    straight.run()

    first = Trainer(tiny_recipe(**recipe), tmp_path / "b", "cpu")
    interrupt_at(first, 3, signum)
    result = first.run()
    assert result["interrupted"] and result["signal"] == signum and result["step"] == 3
    torch.manual_seed(999)  # a resumed process starts with other RNG state
    second = Trainer(tiny_recipe(**recipe), tmp_path / "b", "cpu")
    second.load_resume()
    assert second.step == 3
    second.run()
    assert_same_state(straight, second)
    # the row of step 4 averages steps 3 and 4 as in the straight run: the loss sums were saved
    assert rows(tmp_path / "b") == rows(tmp_path / "a")
    assert [r["step"] for r in rows(tmp_path / "a") if "losses" in r] == [2, 4, 6]


def test_a_second_ctrl_c_during_the_save_does_not_lose_the_checkpoint_or_the_resume_file(tmp_path, monkeypatch, ctrl_c_reaches_python):
    import toolkit.checkpoint

    trainer = Trainer(tiny_recipe(steps=100, checkpoint_every=100, sample_every=100), tmp_path, "cpu")
    write = toolkit.checkpoint.write_safetensors
    saves = []

    def ctrl_c_then_write(path, tensors, meta):  # Ctrl-C again at the start of every file written
        saves.append(path.name)
        os.kill(os.getpid(), signal.SIGINT)
        write(path, tensors, meta)

    monkeypatch.setattr(toolkit.checkpoint, "write_safetensors", ctrl_c_then_write)

    def progress(step, losses):
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)

    result = trainer.run(progress=progress)
    assert result["interrupted"] and result["step"] == 2
    assert saves == ["step-000002.safetensors", RESUME_FILE]
    assert read_meta(tmp_path / RESUME_FILE)["step"] == 2
    assert read_meta(tmp_path / "checkpoints" / "step-000002.safetensors")["step"] == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored


class Killed(BaseException):
    """Stands for kill -9: the process ends where it is, nothing more runs."""


def test_a_killed_run_resumes_from_its_last_checkpoint_with_each_metrics_row_once(tmp_path):
    recipe = dict(steps=6, checkpoint_every=2, log_every=1)
    straight = Trainer(tiny_recipe(**recipe), tmp_path / "a", "cpu")
    straight.run()

    first = Trainer(tiny_recipe(**recipe), tmp_path / "b", "cpu")

    def killed_at_step_5(step, losses):
        if step == 5:
            raise Killed

    with pytest.raises(Killed):
        first.run(progress=killed_at_step_5)
    assert read_meta(tmp_path / "b" / RESUME_FILE)["step"] == 4
    assert 5 in [r["step"] for r in rows(tmp_path / "b")]  # written, then trained again after the resume
    with open(tmp_path / "b" / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "losses": {"sup": 0.')  # a row torn by the kill

    second = Trainer(tiny_recipe(**recipe), tmp_path / "b", "cpu")
    second.load_resume()
    second.run()
    assert_same_state(straight, second)
    assert rows(tmp_path / "b") == rows(tmp_path / "a")
    steps = [r["step"] for r in rows(tmp_path / "b") if "losses" in r]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_run_folder_holds_recipe_metrics_samples_checkpoints_and_resume(tmp_path):
    result = Trainer(tiny_recipe(steps=4), tmp_path, "cpu").run()
    assert (tmp_path / "recipe.yaml").is_file()
    assert (tmp_path / RESUME_FILE).is_file()
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-000002.safetensors", "step-000004.safetensors"]
    assert (tmp_path / "samples" / "step-000004.png").is_file()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    losses = [r for r in records if "losses" in r]
    assert [r["step"] for r in losses] == [2, 4]
    assert set(losses[0]["losses"]) == {"sup", "rec", "info", "adv", "adv_d"}
    assert 0.0 <= result["encoder_accuracy"]["item"] <= 1.0


def test_labeled_probability_falls_from_one_to_the_true_ratio(tmp_path):
    trainer = Trainer(tiny_recipe(), tmp_path, "cpu")
    assert trainer.sampler.probability(0) == 1.0
    assert trainer.sampler.probability(2) == pytest.approx(0.5)
    assert trainer.sampler.probability(100) == pytest.approx(50 / 6000)
    index, from_labeled = trainer.sampler.draw(1)  # p = 0.75
    labels = trainer.labels["item"][index]
    assert ((labels >= 0) == from_labeled).all()


def test_labeled_floor_keeps_labeled_rows_in_every_batch_after_the_ramp(tmp_path):
    recipe = tiny_recipe()
    recipe.data.labeled_floor = 0.25
    trainer = Trainer(recipe, tmp_path, "cpu")
    assert trainer.sampler.probability(2) == pytest.approx(0.5)
    assert trainer.sampler.probability(100) == pytest.approx(0.25)
    drawn = torch.stack([trainer.sampler.draw(100)[1] for _ in range(200)])
    assert drawn.float().mean() == pytest.approx(0.25, abs=0.03)
    index, from_labeled = trainer.sampler.draw(100)
    assert ((trainer.labels["item"][index] >= 0) == from_labeled).all()


def test_a_loss_that_becomes_nan_stops_the_run_and_keeps_the_last_checkpoint(tmp_path):
    trainer = Trainer(tiny_recipe(steps=6), tmp_path, "cpu")
    trainer.run()  # a good checkpoint at step 6
    trainer = Trainer(tiny_recipe(steps=12), tmp_path, "cpu")
    trainer.load_resume()
    original = trainer.losses["rec"]
    trainer.losses["rec"] = lambda out: {"ge": original(out)["ge"] * float("nan")}
    with pytest.raises(TrainingStopped) as err:
        trainer.run()
    assert "loss 'rec' (plugin 'paper', toolkit-gan" in str(err.value)
    assert "part 'ge', became nan at step 7; stopped; the last checkpoint before it is " in str(err.value)
    assert str(err.value).endswith(str(tmp_path / "checkpoints" / "step-000006.safetensors"))
    assert (tmp_path / "checkpoints" / "step-000006.safetensors").is_file()
    assert not (tmp_path / "checkpoints" / "step-000008.safetensors").exists()


def test_spec_takes_class_names_from_the_supervising_attribute(tmp_path):
    trainer = Trainer(tiny_recipe(), tmp_path, "cpu")
    assert trainer.spec["item"].classes[1] == "trouser"
    recipe = tiny_recipe()
    recipe.latent.variables["item"].label = "colour"
    with pytest.raises(ToolkitError, match=r"latent.variables.item.label: the dataset has no attribute 'colour'"):
        build_spec(recipe, trainer_data(trainer))


def trainer_data(trainer):
    from toolkit.data import ImageSet

    return ImageSet(trainer.images, {"item": trainer.labels["item"]}, {"item": trainer.spec["item"].classes})


def test_checkpoints_get_recalibrated_batchnorm_statistics_and_training_state_does_not(tmp_path):
    from toolkit.model import load_model

    trainer = Trainer(tiny_recipe(steps=3, checkpoint_every=100), tmp_path, "cpu")
    result = trainer.run()
    live = trainer.networks.state_dict()
    saved = load_model(result["checkpoint"]).networks.state_dict()
    stats = [k for k in live if k.startswith("generator.") and k.endswith("running_var")]
    assert stats and any(not torch.equal(live[k], saved[k]) for k in stats)
    weights_only = [k for k in live if "running" not in k and "num_batches" not in k]
    assert all(torch.equal(live[k], saved[k]) for k in weights_only)

    plain = Trainer(tiny_recipe(steps=3, checkpoint_every=100, bn_recalibration=0), tmp_path / "plain", "cpu")
    result = plain.run()
    saved = load_model(result["checkpoint"]).networks.state_dict()
    assert all(torch.equal(plain.networks.state_dict()[k], saved[k]) for k in saved)


def test_recalibrated_statistics_match_the_batches_and_the_lagging_running_averages_do_not(tmp_path):
    trainer = Trainer(tiny_recipe(steps=3, checkpoint_every=100), tmp_path, "cpu")
    trainer.run()
    z = trainer.spec.sample(512, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        fc = trainer.networks.generator.fc[0](z)  # the input of G's first BatchNorm
    true_var = fc.var(0).mean()
    recalibrated = trainer.inference_networks().generator.fc[1].running_var.mean()
    lagging = trainer.networks.generator.fc[1].running_var.mean()  # momentum 0.001: still near its init of 1
    assert abs(recalibrated / true_var - 1) < 0.5
    assert lagging / true_var > 10


def test_information_on_translations_runs_the_extra_pass_and_changes_the_update(tmp_path):
    import copy

    from tiny import TINY

    from toolkit.plugins import resolve
    from toolkit.recipe import parse_recipe

    data = copy.deepcopy(TINY)
    data["losses"]["info"]["options"] = {"translations": True}
    data["losses"]["info"]["ramp"] = 0
    swap = Trainer(resolve(parse_recipe(data)), tmp_path / "swap", "cpu")
    data["losses"]["info"]["options"] = {}
    plain = Trainer(resolve(parse_recipe(data)), tmp_path / "plain", "cpu")
    assert swap.forward.swap and not plain.forward.swap
    x = swap.images[:8].float() / 255
    z = swap.spec.sample(8)
    assert "raw_swap" in swap.forward(x, z)[0] and "raw_swap" not in plain.forward(x, z)[0]
    for trainer in (swap, plain):
        torch.manual_seed(0)  # the same D noise in both steps
        trainer.train_step(1)
    g_swap = dict(swap.networks.generator.named_parameters())
    g_plain = dict(plain.networks.generator.named_parameters())
    assert any(not torch.equal(g_swap[k], g_plain[k]) for k in g_swap)
    assert all(torch.isfinite(p).all() for p in g_swap.values())


def _four_labeled_and_four_unlabeled_rows(trainer):
    """Images ``(8, C, H, W)`` in [0, 1] and their labels (-1 for the last four) from the trainer's data."""
    label = next(iter(trainer.labels.values()))
    index = torch.cat([torch.nonzero(label >= 0)[:4, 0], torch.nonzero(label < 0)[:4, 0]])
    return trainer.images[index].float() / 255, {name: lab[index] for name, lab in trainer.labels.items()}


@pytest.mark.parametrize("d_code", ["soft", "hard", "labels"])
def test_d_code_sets_what_d_sees_beside_a_real_image_and_e_still_learns_from_d(tmp_path, d_code):
    import copy

    from tiny import TINY

    from toolkit.plugins import resolve
    from toolkit.recipe import parse_recipe

    data = copy.deepcopy(TINY)
    data["train"]["d_code"] = d_code
    trainer = Trainer(resolve(parse_recipe(data)), tmp_path, "cpu")
    seen = []
    hook = trainer.networks.discriminator.register_forward_hook(lambda module, args, out: seen.append(args[1]))
    x, labels = _four_labeled_and_four_unlabeled_rows(trainer)
    known = {name: lab >= 0 for name, lab in labels.items()}
    assert any(k.any() for k in known.values()) and not all(k.all() for k in known.values())
    outputs, _ = trainer.forward(x, trainer.spec.sample(8), labels=labels)
    hook.remove()
    real_code = seen[0]  # D(x, E(x)) comes before D(G(z), z)
    for v in trainer.spec.categorical:
        part = real_code[:, trainer.spec.slices[v.name]]
        one_hot = bool(((part == 0) | (part == 1)).all() and (part.sum(1) == 1).all())
        assert one_hot == (d_code != "soft")
        if v.name in labels:
            rows = known[v.name]
            follows_label = torch.equal(part[rows].argmax(1), labels[v.name][rows])
            follows_e = torch.equal(part[rows].argmax(1), outputs["raw_real"][rows][:, trainer.spec.slices[v.name]].argmax(1))
            assert follows_label if d_code == "labels" else follows_e
    e_params = list(trainer.networks.encoder.parameters())
    grads = torch.autograd.grad(outputs["d_real"].sum(), e_params, allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)  # E is trained through D's real pairs


def test_a_joint_d_batch_reads_real_and_generated_pairs_in_one_call_with_shared_batch_statistics(tmp_path):
    import copy

    from tiny import TINY

    from toolkit.plugins import resolve
    from toolkit.recipe import parse_recipe

    trainers = {}
    for mode in ("separate", "joint"):
        data = copy.deepcopy(TINY)
        data["train"]["d_batch"] = mode
        trainers[mode] = Trainer(resolve(parse_recipe(data)), tmp_path / mode, "cpu")
    trainers["joint"].networks.load_state_dict(trainers["separate"].networks.state_dict())
    x = trainers["joint"].images[:6].float() / 255
    z = trainers["joint"].spec.sample(6)
    calls, outputs = {}, {}
    for mode, trainer in trainers.items():
        calls[mode] = []
        hook = trainer.networks.discriminator.register_forward_hook(lambda m, args, out, c=calls[mode]: c.append(len(args[0])))
        torch.manual_seed(0)
        outputs[mode] = trainer.forward(x, z)[0]
        hook.remove()
    assert calls == {"separate": [6, 6], "joint": [12]}
    assert outputs["joint"]["d_real"].shape == outputs["joint"]["d_fake"].shape == (6, 1)
    # in training mode D's BatchNorm normalises over what it is given: the two batches differ
    assert not torch.allclose(outputs["joint"]["d_fake"], outputs["separate"]["d_fake"])
    # the training-mode calls moved D's running statistics differently: start both from the same
    trainers["joint"].networks.load_state_dict(trainers["separate"].networks.state_dict())
    for trainer in trainers.values():  # with fixed statistics (and no noise) one call is the two calls
        trainer.networks.discriminator.eval()
        trainer.forward.d_augment = ()
    torch.manual_seed(0)
    separate = trainers["separate"].forward(x, z)[0]
    torch.manual_seed(0)
    joint = trainers["joint"].forward(x, z)[0]
    for key in ("d_real", "d_fake"):
        assert torch.allclose(separate[key], joint[key], atol=1e-5)


@pytest.mark.parametrize("code", ["encoder", "labels"])
def test_rec_code_labels_redraws_labeled_rows_from_their_labels_and_the_others_from_e(tmp_path, code):
    import copy

    from tiny import TINY

    from toolkit.plugins import resolve
    from toolkit.recipe import parse_recipe

    data = copy.deepcopy(TINY)
    data["losses"]["rec"]["options"] = {"code": code}
    trainer = Trainer(resolve(parse_recipe(data)), tmp_path, "cpu")
    assert trainer.forward.labeled_reconstruction == (code == "labels")
    codes = []
    hook = trainer.networks.generator.register_forward_hook(lambda module, args, out: codes.append(args[0]))
    x, labels = _four_labeled_and_four_unlabeled_rows(trainer)
    outputs, _ = trainer.forward(x, trainer.spec.sample(8), labels=labels)
    hook.remove()
    rec_code = codes[1]  # G(z) comes first, then G of the real images' codes
    for v in trainer.spec.supervised:
        part, e_part = rec_code[:, trainer.spec.slices[v.name]], outputs["z_real"][:, trainer.spec.slices[v.name]]
        known = labels[v.name] >= 0
        assert torch.equal(part[~known], e_part[~known])  # unlabeled rows: E's code
        if code == "labels":
            assert torch.equal(part[known], torch.nn.functional.one_hot(labels[v.name][known], part.shape[1]).float())
        else:
            assert torch.equal(part[known], e_part[known])
    u = trainer.spec.slices["u"]
    assert torch.equal(rec_code[:, u], outputs["z_real"][:, u])  # the rest of the code is E's in both
    loss = (outputs["x_rec"] - x).square().mean()
    e_grads = torch.autograd.grad(loss, list(trainer.networks.encoder.parameters()), allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in e_grads)  # E still learns from the reconstruction


@pytest.mark.parametrize("supervised_by", ["labels_and_samples", "labels"])
def test_info_supervised_by_labels_leaves_the_encoder_to_the_labels(tmp_path, supervised_by):
    import copy

    from tiny import TINY

    from toolkit.plugins import resolve
    from toolkit.recipe import parse_recipe

    data = copy.deepcopy(TINY)
    data["latent"]["variables"] = {"item": {"kind": "categorical", "label": "item"}}  # labeled variables only
    data["losses"] = {"info": {"weight": 1, "ramp": 0, "options": {"supervised_by": supervised_by}}}
    trainer = Trainer(resolve(parse_recipe(data)), tmp_path, "cpu")
    x, z = trainer.images[:8].float() / 255, trainer.spec.sample(8)
    out, _ = trainer.forward(x, z)
    assert ("raw_fake_fixed" in out) == (supervised_by == "labels")
    before = {k: v.clone() for k, v in trainer.networks.named_parameters()}
    trainer.train_step(1)
    after = dict(trainer.networks.named_parameters())
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    if supervised_by == "labels":  # the information term trains G alone; nothing else trains E here
        assert changed == {"generator"}
    else:
        assert changed == {"generator", "encoder"}


def test_with_ema_checkpoints_hold_the_averaged_weights_and_training_does_not_use_them(tmp_path):
    from toolkit.model import load_model

    trainer = Trainer(tiny_recipe(steps=6, checkpoint_every=100, ema=0.9), tmp_path, "cpu")
    result = trainer.run()
    live = trainer.networks.state_dict()
    saved = load_model(result["checkpoint"]).networks.state_dict()
    averaged = trainer.average.state_dict(prefix="")
    assert averaged and all(torch.equal(saved[k], v) for k, v in averaged.items())
    assert any(not torch.equal(live[k], v) for k, v in averaged.items())
    d_weights = [k for k in live if k.startswith("discriminator.")]
    assert all(torch.equal(live[k], saved[k]) for k in d_weights)
    raw = trainer.inference_networks(averaged=False).state_dict()
    assert all(torch.equal(live[k], raw[k]) for k in averaged)


def test_resume_restores_the_weight_averages(tmp_path):
    straight = Trainer(tiny_recipe(steps=6, checkpoint_every=100, ema=0.9), tmp_path / "a", "cpu")
    straight.run()
    Trainer(tiny_recipe(steps=3, checkpoint_every=100, ema=0.9), tmp_path / "b", "cpu").run()
    second = Trainer(tiny_recipe(steps=6, checkpoint_every=100, ema=0.9), tmp_path / "b", "cpu")
    assert second.load_resume() == []
    second.run()
    assert all(torch.equal(a, b) for a, b in zip(straight.average.shadow, second.average.shadow))


def test_turning_ema_on_when_resuming_starts_the_averages_from_the_weights_and_says_so(tmp_path):
    Trainer(tiny_recipe(steps=3, checkpoint_every=100), tmp_path, "cpu").run()
    resumed = Trainer(tiny_recipe(steps=6, checkpoint_every=100, ema=0.9), tmp_path, "cpu")
    notes = resumed.load_resume()
    assert len(notes) == 1 and "no weight averages" in notes[0]
    assert all(torch.equal(s, p) for s, p in zip(resumed.average.shadow, resumed.average.params))
