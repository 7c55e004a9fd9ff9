"""Resuming a run (training/driver.py): finished work is not redone; a checkpoint written but not recorded is
reconciled, a damaged one retrained."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from helpers import dead_lock, error_lines, killed_pid_temp, teacher_only, tiny_recipe
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


# past iteration 0: the parent's hash (issue 31)

def _stop_before_training(stage_name: str, real):
    """A train_stage that is killed as iteration `stage_name` starts training (its pseudo-labels are written)."""
    def stop(model, stage):
        if stage.name == stage_name:
            raise Killed()
        return real(model, stage)
    return stop


def _rewrite_checkpoint(path: Path, *, meta=None, weights=None) -> None:
    """The checkpoint at `path` saved again, a loadable nsbench checkpoint with other bytes: its metadata through
    `meta(dict)` and / or its weights through `weights(state_dict)`."""
    import torch

    payload = torch.load(path, map_location="cpu", weights_only=True)
    if meta is not None:
        m = json.loads(payload["meta"])
        meta(m)
        payload["meta"] = json.dumps(m)
    if weights is not None:
        weights(payload["state_dict"])
    torch.save(payload, path)


@pytest.mark.usefixtures("fresh_log_handlers")
@pytest.mark.parametrize("tamper", ["weights changed", "a byte flipped"])
def test_resume_of_iteration_2_checks_iteration_1s_bytes_against_its_recorded_hash(tiny_folder, tmp_path,
                                                                                  monkeypatch, capsys, tamper):
    """Iteration 1 finished and was recorded; iteration 2 is killed as it starts training. On resume, iter1.pt
    becomes iteration 2's teacher: if its bytes are no longer those summary.json recorded (sha256), resume refuses
    in one line and writes no iter2.pt; with the recorded bytes back, iteration 2 finishes and its checkpoint's
    parent_sha256 is the sha256 of iter1.pt as it is on disk, the one summary.json recorded for iteration 1."""
    cfg = load_train_config(tiny_recipe(f"folder:{tiny_folder}", iterations=2, teacher_optim={"epochs": 1}))
    out = tmp_path / "run"
    real = driver.train_stage
    monkeypatch.setattr(driver, "train_stage", _stop_before_training("iter2", real))
    with pytest.raises(Killed):
        driver.train(cfg, out)
    monkeypatch.setattr(driver, "train_stage", real)
    summary = json.loads((out / "summary.json").read_text())
    assert [e["iteration"] for e in summary["iterations"]] == [0, 1] and not (out / "iter2.pt").exists()
    recorded = {e["iteration"]: e["sha256"] for e in summary["iterations"]}
    assert recorded[1] == file_sha256(out / "iter1.pt")
    good = (out / "iter1.pt").read_bytes()

    if tamper == "weights changed":  # a whole checkpoint, loadable, of other weights
        _rewrite_checkpoint(out / "iter1.pt", weights=lambda sd: sd["net.classifier.bias"].add_(0.5))
        load_checkpoint(out / "iter1.pt")
    else:
        data = bytearray(good)
        data[len(data) // 2] ^= 0xFF
        (out / "iter1.pt").write_bytes(bytes(data))
    assert file_sha256(out / "iter1.pt") != recorded[1]
    assert main(["train", "--resume", str(out)]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert "iter1.pt" in line and "sha256" in line, line
    assert not (out / "iter2.pt").exists()

    (out / "iter1.pt").write_bytes(good)
    assert main(["train", "--resume", str(out)]) == 0
    meta = load_checkpoint(out / "iter2.pt")[1]
    assert meta["iteration"] == 2 and meta["parent_sha256"] == file_sha256(out / "iter1.pt") == recorded[1]
    summary = json.loads((out / "summary.json").read_text())
    (entry,) = [e for e in summary["iterations"] if e["iteration"] == 2]
    assert entry["parent_sha256"] == recorded[1] and entry["sha256"] == file_sha256(out / "iter2.pt")


def test_resume_reconciles_iteration_1_against_iteration_0s_hash(tiny_folder, tmp_path, monkeypatch):
    """Killed between iter1.pt and its summary entry: on resume iter1.pt is recorded without training again when its
    parent_sha256 is the sha256 of this run's iter0.pt; the same file naming another parent (a student of another
    teacher) is moved aside as iter1.pt.damaged and iteration 1 trains again, from this run's teacher."""
    import shutil

    cfg = load_train_config(tiny_recipe(f"folder:{tiny_folder}", iterations=1, teacher_optim={"epochs": 1}))
    out = tmp_path / "run"
    real = driver.write_json

    def kill_at_iter1_summary(path, obj):
        if Path(path).name == "summary.json" and 1 in {e["iteration"] for e in obj.get("iterations", [])}:
            raise Killed()
        real(path, obj)

    monkeypatch.setattr(driver, "write_json", kill_at_iter1_summary)
    with pytest.raises(Killed):
        driver.train(cfg, out)
    monkeypatch.setattr(driver, "write_json", real)
    assert [e["iteration"] for e in json.loads((out / "summary.json").read_text())["iterations"]] == [0]
    teacher = file_sha256(out / "iter0.pt")
    assert read_checkpoint(out / "iter1.pt")[0]["parent_sha256"] == teacher
    other = tmp_path / "other"
    shutil.copytree(out, other)
    _rewrite_checkpoint(other / "iter1.pt", meta=lambda m: m.update(parent_sha256="0" * 64))

    trained, real_stage = [], driver.train_stage

    def recording(model, stage):
        trained.append(stage.name)
        return real_stage(model, stage)

    monkeypatch.setattr(driver, "train_stage", recording)
    sha1 = file_sha256(out / "iter1.pt")
    summary = driver.train(cfg, out, resume=True)
    assert trained == []  # recorded as it is, not trained again
    entry = summary["iterations"][1]
    assert (entry["iteration"], entry["sha256"], entry["parent_sha256"]) == (1, sha1, teacher)
    assert file_sha256(out / "iter1.pt") == sha1 and not (out / "iter1.pt.damaged").exists()

    summary = driver.train(cfg, other, resume=True)
    assert trained == ["iter1"]  # another lineage: trained again
    assert (other / "iter1.pt.damaged").exists()
    entry = summary["iterations"][1]
    assert entry["parent_sha256"] == teacher == file_sha256(other / "iter0.pt")
    assert read_checkpoint(other / "iter1.pt")[0]["parent_sha256"] == teacher
