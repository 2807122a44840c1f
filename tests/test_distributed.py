"""Training on several processes: gloo on CPU, two ranks, against one process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from tiny import tiny_recipe, tiny_yaml

from toolkit.checkpoint import read_tensors
from toolkit.distributed import GlobalBatchNorm, World, global_batchnorm, world_from_env

HERE = Path(__file__).resolve().parent


def _recipe(steps=2):
    recipe = tiny_recipe(steps=steps)
    # D's Gaussian noise is drawn per rank, so it cannot match one process: switch it off
    recipe.model.options = dict(recipe.model.options or {}, d_regularizer="none")
    return recipe


def _worker(rank, init, out, steps):
    import torch.distributed as dist

    from toolkit.train import Trainer

    sys.path.insert(0, str(HERE))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    try:
        trainer = Trainer(_recipe(), Path(out) / f"rank{rank}", "cpu", world=World(rank, 2))
        trainer.train_step(1)
        grads = {n: p.grad.clone() for n, p in trainer.networks.named_parameters() if p.grad is not None}
        for step in range(2, steps + 1):
            trainer.train_step(step)
        torch.save({"grads": grads, "weights": trainer.networks.state_dict()}, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_ranks_compute_the_gradient_of_one_process_and_stay_in_sync(tmp_path):
    from toolkit.train import Trainer

    torch.set_num_threads(1)
    single = Trainer(_recipe(), tmp_path / "single", "cpu")
    single.train_step(1)
    expected = {n: p.grad for n, p in single.networks.named_parameters() if p.grad is not None}

    mp.spawn(_worker, args=(f"file://{tmp_path}/init", str(tmp_path), 3), nprocs=2)
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))

    # same global batch, BatchNorm over it, gradients averaged: the one-process gradient
    assert rank0["grads"].keys() == expected.keys()
    # (norm-wise: float sums in another order; biases before a BatchNorm have no true gradient)
    for name, g in expected.items():
        error = (rank0["grads"][name] - g).norm().item()
        assert error <= 1e-3 * g.norm().item() + 1e-4, f"{name}: |difference| {error:.3g}, |gradient| {g.norm():.3g}"
    # after 3 steps every rank holds the same weights and BatchNorm statistics
    for name, w in rank0["weights"].items():
        assert torch.equal(w, rank1["weights"][name]), name


def _slow_saving_worker(rank, init, out):
    import time

    import torch.distributed as dist

    from toolkit.train import Trainer

    sys.path.insert(0, str(HERE))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    try:
        trainer = Trainer(_recipe(steps=2), Path(out) / "run", "cpu", world=World(rank, 2))
        save = trainer.save

        def slow_save():  # rank 0 writes the last checkpoint slowly
            path = save()
            if rank == 0:
                time.sleep(1.5)
                (Path(out) / "saved").write_text(str(time.time()))
            return path

        trainer.save = slow_save
        trainer.run()
        (Path(out) / f"left{rank}").write_text(str(time.time()))
    finally:
        dist.destroy_process_group()


def test_no_rank_leaves_training_before_rank_0_has_saved(tmp_path):
    # a rank that tears its process group down while rank 0 still saves can abort in gloo
    mp.spawn(_slow_saving_worker, args=(f"file://{tmp_path}/init", str(tmp_path)), nprocs=2)
    saved = float((tmp_path / "saved").read_text())
    assert float((tmp_path / "left1").read_text()) >= saved
    assert float((tmp_path / "left0").read_text()) >= saved


def test_global_batchnorm_alone_is_plain_batchnorm():
    torch.manual_seed(0)
    plain = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4, momentum=0.1), torch.nn.Linear(6, 2))
    converted = global_batchnorm(torch.nn.Sequential(*[m for m in plain]))
    assert isinstance(converted[1], GlobalBatchNorm)
    assert list(converted.state_dict()) == list(plain.state_dict())


def test_world_comes_from_torchruns_environment(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert world_from_env() == World(rank=2, size=4, local_rank=0)
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("LOCAL_RANK")
    assert not world_from_env().distributed


def _toolkit(*args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "toolkit", *args], capture_output=True, text=True, env=env, timeout=600)


def test_nproc_2_trains_through_torchrun_rank_0_writes_and_resume_works(tmp_path):
    recipe = tiny_yaml(tmp_path / "tiny.yaml", steps=4, log_every=2, sample_every=2, checkpoint_every=2)
    run = tmp_path / "run"
    done = _toolkit("train", str(recipe), "--out", str(run), "--nproc", "2")
    assert done.returncode == 0, done.stderr
    assert "2 processes" in done.stderr
    assert done.stderr.count("done: step 4") == 1  # one rank reports
    steps = [json.loads(line).get("step") for line in (run / "metrics.jsonl").read_text().splitlines()
             if "losses" in json.loads(line)]
    assert steps == [2, 4]  # logged once per log step, not once per rank
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000002.safetensors", "step-000004.safetensors"]

    more = _toolkit("train", "--resume", str(run), "--set", "train.steps=6", "--nproc", "2")
    assert more.returncode == 0, more.stderr
    assert "resuming" in more.stderr and "done: step 6" in more.stderr
    assert read_tensors(run / "checkpoints" / "step-000006.safetensors")


def test_nproc_needs_a_batch_that_splits_evenly(tmp_path):
    recipe = tiny_yaml(tmp_path / "tiny.yaml", steps=2)
    done = _toolkit("train", str(recipe), "--out", str(tmp_path / "run"), "--nproc", "3")
    assert done.returncode != 0
    assert "does not split evenly over 3 processes" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("env", [{"WORLD_SIZE": "two"}])
def test_a_bad_torchrun_environment_is_one_clear_line(tmp_path, env):
    recipe = tiny_yaml(tmp_path / "tiny.yaml", steps=2)
    full = dict(os.environ, OMP_NUM_THREADS="1", **env)
    done = subprocess.run([sys.executable, "-m", "toolkit", "train", str(recipe), "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, env=full, timeout=300)
    assert done.returncode == 1
    assert "WORLD_SIZE, RANK and LOCAL_RANK must be integers" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_dry_run_on_2_processes_prints_the_recipe_once_and_trains_nothing(tmp_path):
    recipe = tiny_yaml(tmp_path / "tiny.yaml", steps=2)
    done = _toolkit("train", str(recipe), "--out", str(tmp_path / "run"), "--nproc", "2", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("# run folder:") == 1
    assert not (tmp_path / "run").exists()
