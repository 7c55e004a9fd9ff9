"""training/driver.py by value, with the heavy parts (model building, training) replaced or skipped: iteration k's
seed is the recipe's seed + 1000 k (the driver's ITERATION_SEED_STRIDE comment; stage.py: "the driver's seed + 1000
* iteration"); `train` starts a new run unless asked to resume; iteration 0 makes its work dir (parents included)
and trains the teacher on the labeled set alone (no pseudo-labeled part, ratio 0); a warning reaches summary.json
once however often it is raised; `start` writes config.yaml in the configuration's own key order and records the
precision as docs/training.md says ("bf16 autocast" on GPUs with runtime.amp, fp32 otherwise); `record_iteration`
names iteration 0's checkpoint the teacher and later ones students, copies the pseudo-label stats it is given (only
those present), records the iteration's wall time from its start, and drops the training state, absent or not."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from torch import nn

from helpers import tiny_recipe
from nsbench.checkpoint import read_checkpoint
from nsbench.config import load_train_config
from nsbench.models import ModelSpec
from nsbench.training import driver


def config(**overrides):
    return load_train_config(tiny_recipe("folder:/nonexistent", iterations=2, **overrides))


def budget():
    return SimpleNamespace(optim=lambda o: o, describe=lambda n: "budget", warning=None)


def fake_run(folder: Path, cfg=None, summary=None) -> driver.Run:
    """A Run of 3 iterations on fabricated data: 3 classes, 4 validation images, nothing loaded."""
    cfg = cfg or config()
    spec = ModelSpec("test_efficientnet", 3)
    data = SimpleNamespace(classes=["a", "b", "c"], val_idx=[0, 1, 2, 3], labeled_idx=[0, 1])
    return driver.Run(cfg, folder, torch.device("cpu"), data, [(spec, 11), (spec, 22), (spec, 33)],
                      [budget(), budget(), budget()], {"train_fingerprint": "f" * 16}, 0, "labeled", "val",
                      summary if summary is not None else {"iterations": [], "warnings": []})


# ---- seeds, the teacher's iteration, warnings

def test_iteration_k_trains_with_the_recipe_seed_plus_1000_k(tmp_path):
    cfg = config(seed=7)
    assert [driver.iteration_seed(cfg, k) for k in range(3)] == [7, 1007, 2007]
    stage = driver.stage_config(fake_run(tmp_path, cfg), 2, cfg.student_optim, pseudo=None, ratio=3)
    assert stage.seed == 2007 and stage.name == "iter2" and stage.state_path == tmp_path / "iter2" / "state.pt"


def test_train_starts_a_new_run_unless_asked_to_resume(monkeypatch, tmp_path):
    seen = []

    class Started(Exception):
        pass

    def start(cfg, folder, resume):
        seen.append((folder, resume))
        raise Started

    monkeypatch.setattr(driver, "start", start)
    for kwargs in ({}, {"resume": True}):
        with pytest.raises(Started):
            driver.train(config(), str(tmp_path / "run"), **kwargs)
    assert seen == [(tmp_path / "run", False), (tmp_path / "run", True)]


def test_iteration_0_makes_its_work_dir_and_trains_the_teacher_on_labeled_images_alone(monkeypatch, tmp_path):
    cfg = config(seed=5)
    run = fake_run(tmp_path / "not" / "yet" / "run", cfg)
    trained, recorded = [], []
    monkeypatch.setattr(driver, "ladder", SimpleNamespace(build=lambda spec, k, cfg: nn.Linear(2, 2),
                                                          inert_depth_warning=lambda *a: "depth note"))
    monkeypatch.setattr(driver, "train_stage", lambda model, stage: (trained.append(stage), ("final", ["h"]))[1])
    monkeypatch.setattr(driver, "record_iteration", lambda *a: recorded.append(a))
    driver.train_iteration(run, 0, None)
    assert (run.folder / "iter0").is_dir()
    (stage,) = trained
    assert stage.pseudo is None and stage.ratio == 0 and stage.labeled == "labeled" and stage.seed == 5
    assert stage.optim == cfg.teacher_optim
    assert recorded[0][1:6] == (0, "final", ["h"], None, None)
    assert run.summary["warnings"] == ["depth note"]


def test_a_warning_reaches_the_summary_once(tmp_path):
    run = fake_run(tmp_path, summary={"iterations": [], "warnings": ["budget note"]})
    for note in ("depth note", None, "depth note", "budget note", ""):
        driver._warn(run, note)
    assert run.summary["warnings"] == ["budget note", "depth note"]


# ---- start: config.yaml, summary's data_path

@pytest.mark.parametrize("amp,device,precision", [(True, "cpu", "fp32"), (True, "cuda", "bf16 autocast"),
                                                  (False, "cuda", "fp32"), (False, "cpu", "fp32")])
def test_start_records_bf16_autocast_only_on_gpus_with_amp(amp, device, precision, tiny_folder, tmp_path,
                                                           monkeypatch):
    """docs/training.md: on GPUs the teacher runs in bf16 autocast (runtime.amp), recorded as `precision` in
    summary.json; the device is pretended (nothing in `start` runs on it)."""
    cfg = load_train_config(tiny_recipe(f"folder:{tiny_folder}", runtime={"amp": amp, "device": "cpu"}))
    monkeypatch.setattr(driver, "resolve_device", lambda name: torch.device(device))
    run = driver.start(cfg, tmp_path / "run", False)
    assert run.summary["data_path"]["precision"] == precision
    assert run.summary["data_path"]["device"] == device


def test_config_yaml_keeps_the_configurations_key_order(tiny_folder, tmp_path):
    cfg = load_train_config(tiny_recipe(f"folder:{tiny_folder}", runtime={"device": "cpu"}))
    driver.start(cfg, tmp_path / "run", False)
    written = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert list(written) == ["seed", "data", "teacher", "students", "teacher_optim", "student_optim", "pseudo",
                             "noise", "ns", "runtime"]  # TrainConfig's fields as declared, not alphabetical
    assert list(written["runtime"]) == ["device", "amp", "channels_last", "sync_bn", "threads", "tensorboard"]
    assert written == cfg.to_dict()  # the resolved configuration


# ---- record_iteration

HISTORY = [{"epoch": 1, "seconds": 2.0, "steps": 3, "images": 48, "val_top1": 50.0, "val_top5": 90.0}]


@pytest.fixture
def clock(monkeypatch):
    """time.time() in the driver reads 100.0: an iteration started at 40.0 took 60 s."""
    monkeypatch.setattr(driver, "time", SimpleNamespace(time=lambda: 100.0))


def test_the_teachers_entry_records_its_role_and_wall_time_and_drops_the_state(clock, tmp_path):
    run = fake_run(tmp_path)
    (tmp_path / "iter0").mkdir()
    (tmp_path / "iter0" / "state.pt").write_bytes(b"state")
    driver.record_iteration(run, 0, nn.Linear(2, 3), [dict(h) for h in HISTORY], None, None, 40.0)
    assert not (tmp_path / "iter0" / "state.pt").exists()
    meta, _ = read_checkpoint(tmp_path / "iter0.pt")
    assert meta["role"] == "teacher" and meta["n_params"] == 11 and "pseudo" not in meta["metrics"]
    (entry,) = json.loads((tmp_path / "summary.json").read_text())["iterations"]
    assert entry["wall_seconds"] == 60.0 and entry["iteration"] == 0 and entry["n_params"] == 11
    assert entry["train_seconds"] == 2.0 and entry["steps"] == 3 and entry["images"] == 48


@pytest.mark.parametrize("k", [1, 2])
def test_a_students_entry_records_its_role_and_the_pseudo_label_stats_present(k, clock, tmp_path):
    run = fake_run(tmp_path)
    stats = {"n_kept": 5, "n_selected": 4, "threshold": 0.3, "precision": "fp32", "n_unlabeled": 9}
    driver.record_iteration(run, k, nn.Linear(2, 3), [dict(h) for h in HISTORY], stats, "ab" * 32, 40.0)
    meta, _ = read_checkpoint(tmp_path / f"iter{k}.pt")
    assert meta["role"] == "student" and meta["parent_sha256"] == "ab" * 32
    assert meta["metrics"]["pseudo"] == {"n_kept": 5, "n_selected": 4, "precision": "fp32"}
    assert run.summary["iterations"][0]["pseudo"] == {"n_kept": 5, "n_selected": 4, "precision": "fp32"}
    assert run.summary["iterations"][0]["wall_seconds"] == 60.0
