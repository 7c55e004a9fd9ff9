"""torch.distributed on CPU: two gloo processes spawned by the tests themselves."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from helpers import ROOT, build_store, make_image, read_store, tiny_recipe
from nsbench.checkpoint import load_checkpoint, save_checkpoint
from nsbench.config import OptimConfig, RuntimeConfig
from nsbench.data.loaders import ImageDataset
from nsbench.data.sources import ArraySource
from nsbench.data.targets import TopKTargets
from nsbench.models import ModelSpec, build_model
from nsbench.training.stage import StageConfig, train_stage
from nsbench.training.store import load_selection
from nsbench.training.validate import ValSet, evaluate
from nsbench.utils import file_sha256, read_json


def toy_source(n=48, classes=4, seed=0) -> ArraySource:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    return ArraySource("toy", np.stack([make_image(int(c), rng) for c in labels]), labels, [f"c{i}" for i in range(classes)])


def _init(rank: int, world: int, init_file: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)


def _run(fn, world: int, tmp: Path, *args) -> None:
    mp.start_processes(fn, args=(world, str(tmp / "init"), *args), nprocs=world, start_method="spawn", join=True)


# ------------------------------------------------------------------------------------------ pseudo-labeling

def _store_worker(rank, world, init_file, ckpt, store):
    _init(rank, world, init_file)
    teacher, _ = load_checkpoint(ckpt)
    src = toy_source()
    build_store(teacher, src, np.arange(len(src)), Path(store), num_classes=4, size=32, device=torch.device("cpu"),
                  soft=True, temperature=1.0, topk=2, threshold=0.5, balance=True, per_class="max", batch_size=7)
    dist.destroy_process_group()


def test_two_rank_pseudo_label_store_equals_one_process_store(tmp_path):
    spec = ModelSpec("test_efficientnet", num_classes=4, drop_rate=0.5, drop_path_rate=0.3)
    torch.manual_seed(0)
    model = build_model(spec)
    with torch.no_grad():  # a random but decisive teacher: confidences spread over (0.25, 1)
        model.net.classifier.weight.normal_(0, 20.0)
    save_checkpoint(tmp_path / "t.pt", model, spec, classes=list("abcd"), iteration=0, parent_sha256=None,
                    config={}, metrics={})
    teacher, _ = load_checkpoint(tmp_path / "t.pt")
    src = toy_source()
    one = build_store(teacher, src, np.arange(len(src)), tmp_path / "one", num_classes=4, size=32,
                        device=torch.device("cpu"), soft=True, temperature=1.0, topk=2, threshold=0.5, balance=True,
                        per_class="max", batch_size=7)
    _run(_store_worker, 2, tmp_path, str(tmp_path / "t.pt"), str(tmp_path / "two"))
    assert sorted(p.name for p in (tmp_path / "two").glob("labels-*")) == ["labels-00000-of-00002.parquet",
                                                                          "labels-00001-of-00002.parquet"]
    assert 0 < one["n_kept"] < 48 and one["n_duplicated"] > 0  # the filter and the balancing both act
    two = read_json(tmp_path / "two" / "stats.json")
    for key in ("n_kept", "n_selected", "n_duplicated", "per_class_target", "per_class", "agreement_kept"):
        assert one[key] == two[key], key
    a, b = read_store(tmp_path / "one"), read_store(tmp_path / "two")
    for col in a:  # integers exactly; probabilities to float tolerance (batches are sliced differently)
        if a[col].dtype.kind in "iu":
            np.testing.assert_array_equal(a[col], b[col], err_msg=col)
        else:
            np.testing.assert_allclose(a[col], b[col], rtol=1e-5, atol=1e-6, err_msg=col)
    ia, ta = load_selection(tmp_path / "one", 4)
    ib, tb = load_selection(tmp_path / "two", 4)
    oa, ob = np.lexsort((ta.val[:, 0], ia)), np.lexsort((tb.val[:, 0], ib))
    assert np.array_equal(ia[oa], ib[ob])
    np.testing.assert_allclose(ta.val[oa], tb.val[ob], rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------ one DDP step

def _datasets():
    src = toy_source()
    lab = ImageDataset(src, np.arange(16), 32)
    cls = np.stack([np.arange(16, 48) % 4, (np.arange(16, 48) + 1) % 4], 1).astype(np.int32)
    val = np.tile(np.array([[0.7, 0.3]], np.float32), (32, 1))
    pseudo = ImageDataset(src, np.arange(16, 48), 32, targets=TopKTargets(cls, val, 4))
    return lab, pseudo


def _step(batch: int, state: Path):
    torch.manual_seed(0)
    # GroupNorm: per-sample statistics, so per-rank batches normalise exactly as the combined batch does
    model = build_model(ModelSpec("test_efficientnet_gn", num_classes=4))
    lab, pseudo = _datasets()
    final, hist = train_stage(model, StageConfig(name="ddp", optim=OptimConfig(epochs=1, batch_size=batch, warmup_epochs=0, lr=0.01),
                              runtime=RuntimeConfig(device="cpu"), labeled=lab, pseudo=pseudo, ratio=2, unlabeled_weight=1.0,
                              val=None, device=torch.device("cpu"), state_path=state, seed=3, max_steps=1))
    return final, hist[0]


def _ddp_worker(rank, world, init_file, out):
    _init(rank, world, init_file)
    final, row = _step(4, Path(out) / "state.pt")
    if rank == 0:
        torch.save(final.state_dict(), Path(out) / "ddp.pt")
        (Path(out) / "ddp_row.json").write_text(json.dumps({k: row[k] for k in ("images", "images_per_s", "seconds")}))
    dist.destroy_process_group()


def test_one_ddp_step_matches_one_process_on_the_combined_batch(tmp_path):
    torch.set_num_threads(1)
    single, row = _step(8, tmp_path / "single.pt")
    single = single.state_dict()
    _run(_ddp_worker, 2, tmp_path, str(tmp_path))
    # the history counts the images of all ranks: 8 labeled + 16 pseudo-labeled either way
    ddp_row = json.loads((tmp_path / "ddp_row.json").read_text())
    assert row["images"] == 24 and ddp_row["images"] == 24
    assert ddp_row["images_per_s"] == pytest.approx(ddp_row["images"] / ddp_row["seconds"], rel=1e-6)
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=True)
    init = build_model(ModelSpec("test_efficientnet_gn", num_classes=4))
    moved = 0
    for k, v in single.items():
        torch.testing.assert_close(ddp[k], v, rtol=1e-4, atol=1e-5, msg=k)
    torch.manual_seed(0)
    init = build_model(ModelSpec("test_efficientnet_gn", num_classes=4)).state_dict()
    moved = sum(not torch.equal(init[k], single[k]) for k in single if single[k].is_floating_point())
    assert moved > 10  # the step really changed the weights


# ------------------------------------------------------------------------------------------ sharded evaluation

def _eval_worker(rank, world, init_file, ckpt, out, suite):
    _init(rank, world, init_file)
    model, _ = load_checkpoint(ckpt)
    src = toy_source(n=37)  # uneven shards: 19 + 18
    m = evaluate(model, ValSet(src, np.arange(37), 32, batch_size=5), torch.device("cpu"))
    from nsbench.api import ScoreSettings, evaluate as suite_eval

    suite_eval(ckpt, "robustness", Path(out) / "eval",
               settings=ScoreSettings(overrides=suite, cache_dir=Path(out) / "cache", device="cpu"))
    if rank == 0:
        pd.DataFrame([m]).to_csv(Path(out) / "fit_eval.csv", index=False)
    dist.destroy_process_group()


SUITE = ["data.source=folder:{root}", "data.split=test", "corruptions.limit=12", "corruptions.severities=[1,3]",
         "corruptions.corruptions=[gaussian_noise,fog]", "perturbations.limit=5", "perturbations.perturbations=[gaussian_noise,rotate]",
         "natural_adversarial.enabled=false", "fgsm.limit=11", "fgsm.eps_255=[0,4]"]


def test_sharded_evaluation_matches_one_process(tmp_path, tiny_folder):
    suite = [s.format(root=tiny_folder) for s in SUITE]
    spec = ModelSpec("test_efficientnet", num_classes=4)
    torch.manual_seed(1)
    save_checkpoint(tmp_path / "m.pt", build_model(spec), spec, classes=[f"class{i}" for i in range(4)], iteration=0,
                    parent_sha256=None, config={}, metrics={})
    model, _ = load_checkpoint(tmp_path / "m.pt")
    one = evaluate(model, ValSet(toy_source(n=37), np.arange(37), 32, batch_size=5), torch.device("cpu"))
    from nsbench.api import ScoreSettings, evaluate as suite_eval

    df_one = suite_eval(str(tmp_path / "m.pt"), "robustness", tmp_path / "one",
                        settings=ScoreSettings(overrides=suite, cache_dir=tmp_path / "cache1", device="cpu"))
    mp.start_processes(_eval_worker, args=(2, str(tmp_path / "init"), str(tmp_path / "m.pt"), str(tmp_path / "two"), suite),
                       nprocs=2, start_method="spawn", join=True)
    two = pd.read_csv(tmp_path / "two" / "fit_eval.csv").iloc[0]
    assert (two.top1, two.top5, two.n) == pytest.approx((one["top1"], one["top5"], one["n"]))
    df_two = pd.read_csv(tmp_path / "two" / "eval" / "m" / "results.csv")  # out/LABEL, as the CLI lays it out
    a = df_one.sort_values(["task", "condition", "severity", "eps_255", "metric"]).reset_index(drop=True)
    b = df_two.sort_values(["task", "condition", "severity", "eps_255", "metric"]).reset_index(drop=True)
    assert len(a) == len(b) and len(a) > 20
    # counts of right answers agree exactly; ECE / NLL / Brier are continuous in the logits, which differ in the
    # last float32 bits between batch shapes, and results.csv keeps 6 significant digits
    np.testing.assert_allclose(a.value.to_numpy(float), b.value.to_numpy(float), rtol=2e-5, atol=1e-6)
    exact = ~a.metric.isin(["ece", "nll", "brier"]).to_numpy()
    np.testing.assert_allclose(a.value.to_numpy(float)[exact], b.value.to_numpy(float)[exact], rtol=1e-6, atol=1e-6)
    assert (a.n.to_numpy() == b.n.to_numpy()).all()


# ------------------------------------------------------------------------------------------ torchrun, killed

def _torchrun(args, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             "-m", "nsbench", *args], env=env, cwd=ROOT, start_new_session=True, **kw)


def test_distributed_run_killed_after_an_iteration_resumes(tiny_folder, tmp_path):
    import yaml

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(f"folder:{tiny_folder}", iterations=2, student_optim={"epochs": 3})))
    out = tmp_path / "run"
    log = open(tmp_path / "first.log", "w")
    proc = _torchrun(["train", "--recipe", str(recipe), "--out", str(out)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    while not (out / "iter1.pt").exists():
        assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        assert time.time() < deadline, "iteration 1 did not finish in time"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole job, mid-iteration 2
    proc.wait()
    assert not (out / "iter2.pt").exists()
    before = {f: file_sha256(out / f) for f in ("iter0.pt", "iter1.pt")}
    stores = sorted((out / "iter1" / "pseudo").glob("labels-*"))
    assert [p.name for p in stores] == ["labels-00000-of-00002.parquet", "labels-00001-of-00002.parquet"]
    res = _torchrun(["train", "--resume", str(out)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    text, _ = res.communicate(timeout=300)
    assert res.returncode == 0, text[-3000:]
    assert "iteration 0: done already" in text and "iteration 1: done already" in text
    assert {f: file_sha256(out / f) for f in ("iter0.pt", "iter1.pt")} == before
    meta = load_checkpoint(out / "iter2.pt")[1]
    assert meta["parent_sha256"] == before["iter1.pt"] and meta["iteration"] == 2
    hist = pd.read_csv(out / "history.csv")
    assert sorted(hist.iteration.unique()) == [0, 1, 2] and (hist[hist.iteration == 2].epoch == [1, 2, 3]).all()
