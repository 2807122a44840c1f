"""The run folder: layout, atomic creation, locks, metrics after a resume."""

import json
import threading
import time

import pytest

from toolkit.errors import ToolkitError
from toolkit.rundir import RunDir


def test_runs_started_in_the_same_second_get_distinct_folders(tmp_path, monkeypatch):
    monkeypatch.setattr(time, "strftime", lambda fmt: "20260101-120000")
    made, start = [], threading.Barrier(8)

    def start_a_run():
        start.wait()
        made.append(RunDir.new("tiny", tmp_path).path)

    threads = [threading.Thread(target=start_a_run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(made)) == 8 and all(p.is_dir() for p in made)
    assert sorted(p.name for p in made) == sorted(["tiny-20260101-120000"] + [f"tiny-20260101-120000-{n}" for n in range(2, 9)])
    assert RunDir.new("tiny", tmp_path, create=False).path.name == "tiny-20260101-120000-9"
    assert not (tmp_path / "tiny-20260101-120000-9").exists()


def test_a_reserved_folder_is_locked_until_released(tmp_path):
    first = RunDir(tmp_path / "run")
    first.reserve()
    with pytest.raises(ToolkitError, match=f"^{tmp_path / 'run'} is in use"):
        RunDir(tmp_path / "run").reserve()
    assert (tmp_path / "run").is_dir()  # the refused second writer removed nothing
    first.release()
    second = RunDir(tmp_path / "run")
    second.reserve()
    second.release()


def test_abandon_removes_only_what_a_run_that_trained_nothing_wrote(tmp_path):
    run = RunDir(tmp_path / "new")
    run.reserve()
    run.recipe.write_text("name: x\n")
    (run.tensorboard).mkdir()
    run.abandon()
    assert not run.path.exists()

    kept = RunDir(tmp_path / "kept")
    kept.reserve()
    kept.recipe.write_text("name: x\n")
    kept.metrics.write_text('{"step": 1}\n')
    kept.abandon()
    assert kept.recipe.is_file() and kept.metrics.is_file()


def test_keep_metrics_until_drops_later_rows_and_a_torn_line(tmp_path):
    run = RunDir(tmp_path)
    rows = [{"step": s, "losses": {"a": s}} for s in (1, 2, 2, 3, 4)]
    run.metrics.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 5, "los')
    run.keep_metrics_until(3)
    assert [json.loads(line)["step"] for line in run.metrics.read_text().splitlines()] == [1, 2, 2, 3]
