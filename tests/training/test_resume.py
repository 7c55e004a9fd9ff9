"""Resuming a run (training/driver.py): finished work is not redone; a checkpoint written but not recorded is
reconciled, a damaged one retrained."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from helpers import dead_lock, killed_pid_temp, teacher_only, tiny_recipe
from nsbench.checkpoint import load_checkpoint, read_checkpoint
from nsbench.cli import main
from nsbench.config import load_train_config
from nsbench.training import driver
from nsbench.utils import file_sha256


def test_interrupted_run_resumes_without_redoing_finished_work(tiny_folder, tmp_path, monkeypatch):
    import yaml

    recipe = tmp_path / "tiny.yaml"
    cfg = tiny_recipe(f"folder:{tiny_folder}", iterations=2, student_optim={"epochs": 2})
    recipe.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    real = driver.train_stage
    calls = []

    def crash_in_iter2(model, stage):  # kill iteration 2 after its first epoch has been saved
        calls.append(stage.name)
        if stage.name == "iter2":
            stage.optim.epochs = 1
            real(model, stage)
            raise KeyboardInterrupt
        return real(model, stage)

    monkeypatch.setattr(driver, "train_stage", crash_in_iter2)
    assert main(["train", "--recipe", str(recipe), "--out", str(out)]) == 130
    assert (out / "iter1.pt").exists() and not (out / "iter2.pt").exists()
    assert (out / "iter2" / "state.pt").exists() and (out / "iter2" / "pseudo" / "stats.json").exists()
    before = {p.name: (p.stat().st_mtime_ns, file_sha256(p)) for p in
              [out / "iter0.pt", out / "iter1.pt", *sorted((out / "iter2" / "pseudo").glob("*.parquet"))]}

    monkeypatch.setattr(driver, "train_stage", lambda model, stage: (calls.append(stage.name), real(model, stage))[1])
    calls.clear()
    assert main(["train", "--resume", str(out)]) == 0
    assert calls == ["iter2"], "finished iterations were trained again"
    after = {p.name: (p.stat().st_mtime_ns, file_sha256(p)) for p in
             [out / "iter0.pt", out / "iter1.pt", *sorted((out / "iter2" / "pseudo").glob("*.parquet"))]}
    assert before == after, "finished checkpoints or the existing pseudo-label store were rewritten"
    hist = pd.read_csv(out / "history.csv")
    assert hist[hist.iteration == 2]["epoch"].tolist() == [1, 2]  # epoch 1 from before the kill, epoch 2 after
    meta = load_checkpoint(out / "iter2.pt")[1]
    assert meta["parent_sha256"] == file_sha256(out / "iter1.pt")


class Killed(BaseException):
    """Stands for a kill -9 at a chosen point: nothing after it runs, no handler catches it."""


# a kill between iterK.pt and summary.json; temp files of killed writers (issue 13, probe 1 + 11)

def test_resume_reconciles_a_checkpoint_written_but_not_recorded(tiny_folder, tmp_path, monkeypatch):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(teacher_only(tiny_folder)))
    out = tmp_path / "run"
    real = driver.write_json

    def kill_at_summary(path, obj):
        if Path(path).name == "summary.json":
            raise Killed()
        real(path, obj)

    monkeypatch.setattr(driver, "write_json", kill_at_summary)
    with pytest.raises(Killed):
        main(["train", "--recipe", str(recipe), "--out", str(out)])
    monkeypatch.setattr(driver, "write_json", real)
    assert (out / "iter0.pt").exists() and not (out / "summary.json").exists()
    dead_lock(out)  # what a kill -9 leaves: a lock naming a dead process
    sha = file_sha256(out / "iter0.pt")
    stale = killed_pid_temp(out / "iter0")
    live = out / f".keep.tmp-{os.getpid()}-abc"
    live.write_bytes(b"a write in progress")

    assert main(["train", "--resume", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    (entry,) = summary["iterations"]
    assert entry["iteration"] == 0 and entry["sha256"] == sha == file_sha256(out / "iter0.pt")  # not retrained
    assert entry["val_top1"] == load_checkpoint(out / "iter0.pt")[1]["metrics"]["val_top1"]
    assert not (out / "iter0" / "state.pt").exists()
    assert list(pd.read_csv(out / "history.csv").iteration) == [0]
    assert not stale.exists() and live.exists()  # 11: only temporaries of dead writers are removed


def test_resume_retrains_an_unrecorded_checkpoint_that_is_damaged(tiny_folder, tmp_path):
    cfg = load_train_config(teacher_only(tiny_folder))
    out = tmp_path / "run"
    driver.train(cfg, out)
    (out / "summary.json").unlink()
    data = (out / "iter0.pt").read_bytes()
    (out / "iter0.pt").write_bytes(data[: len(data) // 2])
    summary = driver.train(cfg, out, resume=True)
    assert [e["iteration"] for e in summary["iterations"]] == [0]
    assert (out / "iter0.pt.damaged").exists()
    read_checkpoint(out / "iter0.pt")  # a whole checkpoint again
