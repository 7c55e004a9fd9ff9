"""`nsbench eval` and nsbench.evaluate: any model in (nn.Module, timm / torchvision state dicts), labels that never
collide, a suite that survives a failing task, attacks labelled by their name; a model with NaN outputs fails its
tasks; data that cannot be used is refused in one line before any work, a damaged Parquet row group is skipped."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from helpers import TINY_SUITE, damage_row_group, error_lines, tiny_checkpoint, write_parquet
from nsbench import ModelInfo, ScoreSettings, evaluate
from nsbench.cli import main
from nsbench.runs import model_label
from nsbench.utils import NsbenchError

CLASSES = [f"class{i}" for i in range(4)]
FAST = ["clean.limit=40", "corruptions.limit=8", "corruptions.severities=[1]", "corruptions.corruptions=[fog]",
        "perturbations.enabled=false", "natural_adversarial.enabled=false", "fgsm.limit=8", "fgsm.eps_255=[0]"]


class QuadrantOracle(nn.Module):
    """Not a timm model: the class is the brightest quadrant (the tiny dataset's rule); takes [0, 1] images."""

    def forward(self, x):
        h = x.shape[-1] // 2
        q = [x[:, :, :h, :h], x[:, :, :h, h:], x[:, :, h:, :h], x[:, :, h:, h:]]
        return torch.stack([t.amax(1).mean((1, 2)) for t in q], 1) * 10


def data(tiny_folder) -> list[str]:
    return [f"data.source=folder:{tiny_folder}", "data.split=test", "data.image_size=32"]


def test_an_nn_module_is_scored_through_the_python_api(tiny_folder, tmp_path):
    out = tmp_path / "oracle"
    df = evaluate(QuadrantOracle(), "quick", out, info=ModelInfo(classes=[f"class{i}" for i in range(4)], input_size=32),
                  settings=ScoreSettings(overrides=data(tiny_folder) + FAST, cache_dir=tmp_path / "cache", device="cpu"))
    top1 = df[(df.task == "clean") & (df.metric == "top1_acc")].value.iloc[0]
    assert top1 == 100.0  # the oracle knows the rule, so the harness fed it the right pixels and labels
    meta = json.loads((out / "quadrantoracle" / "meta.json").read_text())  # out/LABEL, as `nsbench eval --out`
    assert meta["model"]["label"] == "quadrantoracle" and meta["model"]["role"] == "module"
    assert meta["results"]["rows"] == len(pd.read_csv(out / "quadrantoracle" / "results.csv"))
    with pytest.raises(NsbenchError, match="classes= .* and input_size="):
        evaluate(QuadrantOracle(), "quick", tmp_path / "x", settings=ScoreSettings(overrides=data(tiny_folder) + FAST))
    with pytest.raises(TypeError, match="unexpected keyword argument 'limt'"):  # typed options: a typo is refused
        ScoreSettings(limt=3)
    with pytest.raises(TypeError, match="unexpected keyword argument 'limit'"):  # options live in the settings
        evaluate(QuadrantOracle(), "quick", tmp_path / "x", info=ModelInfo(classes=4, input_size=32), limit=3)


def test_a_timm_state_dict_from_a_local_file(tiny_folder, tmp_path):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net = timm.create_model("test_resnet", num_classes=4)
    sd = net.state_dict()
    save_file(sd, str(tmp_path / "w.safetensors"))
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, tmp_path / "w.pth")  # DataParallel style
    common = ["--suite", "quick", "--cache", str(tmp_path / "cache"), "--device", "cpu", *data(tiny_folder), *FAST]
    for name in ("w.safetensors", "w.pth"):
        assert main(["eval", "timm:test_resnet", "--checkpoint", str(tmp_path / name), "--classes", _classes(tmp_path),
                     "--label", name.replace(".", "_"), "--out", str(tmp_path / "out"), *common]) == 0
    a = pd.read_csv(tmp_path / "out" / "w_safetensors" / "results.csv")
    b = pd.read_csv(tmp_path / "out" / "w_pth" / "results.csv")
    assert a.drop(columns="model").equals(b.drop(columns="model"))
    # the same network handed over as a module, normalised with timm's mean/std, scores the same
    cfg = timm.data.resolve_data_config({}, model=net)
    df = evaluate(net, "quick", tmp_path / "module", info=ModelInfo(classes=CLASSES, input_size=32, mean=cfg["mean"], std=cfg["std"]),
                  settings=ScoreSettings(overrides=data(tiny_folder) + FAST, cache_dir=tmp_path / "cache", device="cpu"))
    pick = lambda d: d[(d.task == "clean") & (d.metric == "top1_acc")].value.iloc[0]  # noqa: E731
    assert pick(df) == pick(a) and not (a.metric == "failed").any()
    with pytest.raises(NsbenchError, match=r"weights do not fit timm:test_resnet \(is --num-classes right\?\)"):
        from nsbench.bench.eval_model import load_eval_model

        load_eval_model("timm:test_resnet", checkpoint=tmp_path / "w.safetensors", classes=10)


def test_hostile_or_wrong_checkpoint_files_are_refused_in_one_line(tmp_path, capsys):
    import os

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"state_dict": Evil()}, tmp_path / "evil.pth")
    assert main(["eval", "timm:test_resnet", "--checkpoint", str(tmp_path / "evil.pth"), "--num-classes", "4",
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "refused to load" in err[0] and "evil.pth" in err[0]
    w = str(tmp_path / "evil.pth")
    assert main(["eval", "timm:test_resnet", "timm:test_efficientnet", "--num-classes", "4", *["--checkpoint", w] * 3]) == 2
    assert "--checkpoint given 3 time(s) for 2 timm:/torchvision: models" in capsys.readouterr().err


def test_two_runs_with_the_same_iteration_names_are_reported_side_by_side(tiny_run, tmp_path):
    for name in ("a", "b"):
        shutil.copytree(tiny_run, tmp_path / "runs" / name)
    models = [str(tmp_path / "runs" / n / "iter1.pt") for n in ("a", "b")]
    assert [model_label(m) for m in models] == ["a-iter1", "b-iter1"]
    out = tmp_path / "eval"
    assert main(["eval", "--suite", "robustness", *models, "--out", str(out), "--cache", str(tmp_path / "cache"),
                 "--device", "cpu", *TINY_SUITE, "natural_adversarial.enabled=false"]) == 0
    assert main(["report", str(out), "--baseline", "a-iter1", "--out", str(tmp_path / "report")]) == 0
    html = (tmp_path / "report" / "index.html").read_text()
    assert "a-iter1" in html and "b-iter1" in html


def test_a_failing_task_is_a_row_and_the_suite_goes_on_and_pgd_is_labelled_pgd(tiny_folder, tmp_path):
    out = tmp_path / "out"
    assert main(["eval", "timm:test_resnet", "--checkpoint", str(_weights(tmp_path)), "--classes", _classes(tmp_path),
                 "--suite", "quick", "--out", str(out), "--cache", str(tmp_path / "cache"), "--device", "cpu",
                 *data(tiny_folder), *FAST, "natural_adversarial.enabled=true",
                 f"natural_adversarial.root={tmp_path / 'no-such-imagenet-a'}",
                 "fgsm.attack=pgd", "fgsm.pgd_steps=2", "fgsm.eps_255=[0,4]"]) == 1  # a task failed: non-zero
    df = pd.read_csv(out / "r" / "results.csv")  # and every row is still written
    failed = df[df.metric == "failed"]
    assert list(failed.task) == ["natural_adversarial"] and "not found" in failed.note.iloc[0]
    assert {"clean", "corruptions", "pgd"} <= set(df.task) and "fgsm" not in set(df.task)
    per = pd.read_parquet(out / "r" / "per_image.parquet")
    assert set(per.task) == {"clean", "corruptions", "pgd"}


def _classes(tmp_path) -> str:
    (tmp_path / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    return str(tmp_path / "classes.txt")


def _weights(tmp_path):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    save_file(timm.create_model("test_resnet", num_classes=4).state_dict(), str(tmp_path / "r.safetensors"))
    return tmp_path / "r.safetensors"


def test_labels_follow_the_run_folder(tmp_path):
    (tmp_path / "myrun").mkdir()
    (tmp_path / "myrun" / "config.yaml").write_text("seed: 0\n")
    assert model_label(tmp_path / "myrun" / "iter3.pt") == "myrun-iter3"
    assert model_label(tmp_path / "model.pt") == "model"
    assert model_label(tmp_path / "myrun" / "best.pt") == "best"
    assert np.isscalar(len(model_label("iter0.pt")))


def test_a_second_build_on_one_cache_waits_for_the_first(tmp_path):
    import threading

    from nsbench.bench.context import EvalContext
    from nsbench.bench.suite import SuiteConfig
    from nsbench.lock import run_lock

    ctx = EvalContext(None, SuiteConfig(name="t"), tmp_path / "cache", torch.device("cpu"))
    order, held = [], threading.Event()

    def first():
        with run_lock(tmp_path / "cache" / "sets", what="first build"):
            held.set()
            order.append("first started")
            threading.Event().wait(1.5)
            order.append("first done")

    t = threading.Thread(target=first)
    t.start()
    held.wait()
    ctx.build(lambda: order.append("second built"))
    t.join()
    assert order == ["first started", "first done", "second built"]


CLEAN_ONLY = ["corruptions.enabled=false", "perturbations.enabled=false", "natural_adversarial.enabled=false",
              "fgsm.enabled=false", "clean.limit=16"]


def _eval(ckpt: Path, source: str, out: Path, *extra: str) -> int:
    return main(["eval", str(ckpt), "--suite", "quick", "--out", str(out), "--cache", str(out.parent / "cache"),
                 "--workers", "0", "--device", "cpu", f"data.source={source}", "data.split=test", *CLEAN_ONLY, *extra])


# non-finite outputs (issue 21, probe 4)

@pytest.mark.usefixtures("fresh_log_handlers")
def test_a_model_with_nan_outputs_fails_its_tasks_and_eval_exits_non_zero(tiny_folder, tmp_path, capsys):
    ckpt = tiny_checkpoint(tmp_path / "nan.pt", [f"class{c}" for c in range(4)], nan=True)
    assert _eval(ckpt, f"folder:{tiny_folder}", tmp_path / "ev") == 1
    rows = pd.read_csv(tmp_path / "ev" / "nan" / "results.csv")  # the rows are still written
    (failed,) = rows[rows.metric == "failed"].itertuples()
    assert failed.task == "clean" and "outputs are not finite (NaN or inf) for 16 of 16 images" in failed.note
    assert not ((rows.metric == "top1_acc") & rows.value.notna()).any()  # no accuracy from argmax over NaN
    (line,) = error_lines(capsys.readouterr().err)
    assert line.startswith("nsbench: error: 1 task(s) failed (nan: clean)")


# eval exits 2 in one line when the data cannot be used, before any work (issue 21, probe 5)

def _unusable(kind: str, tmp_path: Path, tiny_folder: Path) -> tuple[str, list[str], str]:
    """(data.source, the checkpoint's classes, the expected error) for one kind of unusable data."""
    four = [f"class{c}" for c in range(4)]
    if kind == "missing folder":
        return f"folder:{tmp_path / 'nope'}", four, "folder not found"
    if kind == "class mismatch":
        return f"folder:{tiny_folder}", ["cat", "dog", "cow", "hen"], "class folder(s) class0, class1, class2, class3 not among the model's 4 classes (cat, dog, cow, hen)"
    if kind == "unreadable parquet":
        (tmp_path / "pq").mkdir()
        (tmp_path / "pq" / "part-0.parquet").write_bytes(b"not parquet at all" * 100)
        return f"parquet:{tmp_path / 'pq'}", four, "not a readable Parquet file"
    if kind == "unreadable hf":
        (tmp_path / "hf").mkdir()
        (tmp_path / "hf" / "dataset_info.json").write_text("{broken")
        return f"hf:{tmp_path / 'hf'}", four, "cannot load split 'test'"
    for c in four:  # every image unreadable
        d = tmp_path / "bad" / "test" / c
        d.mkdir(parents=True)
        for i in range(3):
            (d / f"{i}.png").write_bytes(b"\x89PNG garbage")
    return f"folder:{tmp_path / 'bad'}", four, "none of its 12 images can be read"


@pytest.mark.usefixtures("fresh_log_handlers")
@pytest.mark.parametrize("kind", ["missing folder", "class mismatch", "unreadable parquet", "unreadable hf",
                                  "every image unreadable"])
def test_eval_refuses_unusable_data_in_one_line_before_any_work(kind, tiny_folder, tmp_path, capsys):
    source, classes, expect = _unusable(kind, tmp_path, tiny_folder)
    ckpt = tiny_checkpoint(tmp_path / "m.pt", classes)
    assert _eval(ckpt, source, tmp_path / "ev") == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert expect in line, line
    assert not (tmp_path / "ev").exists()  # no folder of failed rows


@pytest.mark.usefixtures("fresh_log_handlers")
def test_eval_of_usable_data_exits_0(tiny_folder, tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "m.pt", [f"class{c}" for c in range(4)])
    assert _eval(ckpt, f"folder:{tiny_folder}", tmp_path / "ev") == 0
    assert "failed" not in set(pd.read_csv(tmp_path / "ev" / "m" / "results.csv").metric)


@pytest.mark.usefixtures("fresh_log_handlers")
def test_eval_on_parquet_with_a_damaged_row_group_scores_the_rest(tmp_path):
    path = write_parquet(tmp_path / "pq" / "test", [i % 4 for i in range(12)])
    damage_row_group(path, 0)
    ckpt = tiny_checkpoint(tmp_path / "m.pt", [f"class{c}" for c in range(4)])
    assert _eval(ckpt, f"parquet:{tmp_path / 'pq'}", tmp_path / "ev") == 0
    rows = pd.read_csv(tmp_path / "ev" / "m" / "results.csv")
    assert rows[(rows.task == "clean") & (rows.metric == "top1_acc")].n.tolist() == [8]


@pytest.mark.usefixtures("fresh_log_handlers")
def test_json_headline_and_log_line_are_the_rows_they_name(tiny_run, tiny_folder, tmp_path, capsys, caplog):
    """FGSM at two eps, each with its calibration rows (ECE, NLL, Brier share the attack's task, condition and eps:
    the Brier score was once printed as FGSM top-1, 0.87 for 43.5). Every number of the JSON `headline` is the
    results.csv row its `measures` entry names (task, metric, condition, eps), an attack's being a top-1 accuracy;
    the log line carries each of those values as printed, parsed back here."""
    import logging
    import re

    ckpt = tiny_run / "iter0.pt"  # a trained teacher: clean, FGSM 2/255 and 8/255 accuracies differ
    with caplog.at_level(logging.INFO, logger="nsbench"):
        assert _eval(ckpt, f"folder:{tiny_folder}", tmp_path / "ev", "--json", "clean.limit=40", "fgsm.enabled=true",
                     "fgsm.limit=40", "fgsm.eps_255=[2,8]") == 0
    doc = json.loads(capsys.readouterr().out)
    (entry,) = doc["models"]
    rows = pd.read_csv(Path(entry["folder"]) / "results.csv")
    for eps in (2.0, 8.0):  # the trap: four rows of the attack at each eps
        at = rows[(rows.task == "fgsm") & (rows.eps_255 == eps)]
        assert sorted(at.metric) == ["brier", "ece", "nll", "top1_acc"]
    head = entry["headline"]
    assert set(head) == {"clean_top1", "fgsm@2", "fgsm@8"} == set(doc["measures"])
    for name, value in head.items():
        info = doc["measures"][name]
        m = (rows.task == info["task"]) & (rows.metric == info["metric"])
        if info["condition"] is not None:
            m &= rows.condition == info["condition"]
        if info["eps_255"] is not None:
            m &= rows.eps_255 == info["eps_255"]
        (want,) = rows[m].value.tolist()  # exactly one row
        assert value == pytest.approx(want, rel=1e-5), name  # %.6g in results.csv
    for eps in (2, 8):  # what the names mean, written out: the attack's top-1 accuracy at that eps
        info = doc["measures"][f"fgsm@{eps}"]
        assert (info["task"], info["metric"], info["condition"], info["eps_255"]) == ("fgsm", "top1_acc", "fgsm", eps)
        assert info["unit"] == "%" and info["higher_is_better"] is True
        assert info["label"] == f"FGSM {eps}/255 top-1 (%)"  # the page's and the log line's name of it
        at = rows[(rows.task == "fgsm") & (rows.eps_255 == eps)].set_index("metric").value
        assert head[f"fgsm@{eps}"] == pytest.approx(at["top1_acc"], rel=1e-5)
        assert head[f"fgsm@{eps}"] != pytest.approx(at["brier"], rel=1e-3)
    assert doc["measures"]["clean_top1"]["label"] == "clean top-1 (%)"
    assert head["clean_top1"] == pytest.approx(
        rows[(rows.task == "clean") & (rows.metric == "top1_acc")].value.item(), rel=1e-5)
    assert len({head["clean_top1"], head["fgsm@2"], head["fgsm@8"]}) == 3  # no row can stand in for another
    # the log line: "run-iter0: clean top-1 ..%, FGSM 2/255 top-1 ..%, FGSM 8/255 top-1 ..%"
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"{entry['label']}: clean top-1")]
    printed = dict(re.findall(r"(clean top-1|FGSM \d+/255 top-1) ([\d.]+)%", line))
    assert set(printed) == {"clean top-1", "FGSM 2/255 top-1", "FGSM 8/255 top-1"}, line
    for phrase, name in (("clean top-1", "clean_top1"), ("FGSM 2/255 top-1", "fgsm@2"), ("FGSM 8/255 top-1", "fgsm@8")):
        digits = len(printed[phrase].split(".")[1])
        assert printed[phrase] == f"{head[name]:.{digits}f}", (phrase, line)
