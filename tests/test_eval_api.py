"""eval v2: any model in (nn.Module, timm / torchvision state dicts), any model out (export to timm), labels that
never collide, a suite that survives a failing task, attacks labelled by their name."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from conftest import TINY_SUITE
from nsbench import ModelInfo, ScoreSettings
from nsbench import evaluate
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
        from nsbench.bench.models import load_eval_model

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


def test_export_to_timm_gives_identical_logits_in_plain_timm(tiny_run, tmp_path):
    import timm

    from nsbench.checkpoint import load_checkpoint

    ckpt = tiny_run / "iter1.pt"
    assert main(["export", str(ckpt), "--to", "timm", "--out", str(tmp_path / "exp")]) == 0
    cfg = json.loads((tmp_path / "exp" / "config.json").read_text())
    ours, meta = load_checkpoint(ckpt)
    x = torch.rand(6, 3, 32, 32)
    mean = torch.tensor(cfg["pretrained_cfg"]["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(cfg["pretrained_cfg"]["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        want = ours(x)
        plain = timm.create_model(cfg["architecture"], pretrained=True, **cfg["model_args"],
                                  pretrained_cfg_overlay=dict(file=str(tmp_path / "exp" / "model.safetensors"),
                                                              num_classes=cfg["num_classes"])).eval()
        assert torch.equal(plain((x - mean) / std), want)
        local = timm.create_model(f"local-dir:{tmp_path / 'exp'}", pretrained=True).eval()
        assert torch.equal(local((x - mean) / std), want)
    assert cfg["label_names"] == meta["classes"] and cfg["nsbench"]["iteration"] == 1


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
