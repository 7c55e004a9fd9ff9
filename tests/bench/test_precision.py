"""Scoring precision: fp32 by default on every device; bf16 autocast only when asked (CLI, API or suite), recorded
in meta.json and in every row it produced, and never served from cells cached at the other precision."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from torch import nn

from nsbench import ModelInfo, ScoreSettings, evaluate
from nsbench.cli import main
from nsbench.utils import NsbenchError

CLASSES = [f"class{i}" for i in range(4)]
FAST = ["clean.limit=40", "corruptions.limit=8", "corruptions.severities=[1]", "corruptions.corruptions=[fog]",
        "perturbations.enabled=false", "natural_adversarial.enabled=false", "fgsm.limit=8", "fgsm.eps_255=[0,2]"]


class Spy(nn.Module):
    """A quadrant-brightness classifier that notes whether autocast was on in each forward pass."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 4)
        with torch.no_grad():
            self.proj.weight.copy_(torch.eye(4) * 10)
            self.proj.bias.zero_()
        self.seen: list[bool] = []

    def forward(self, x):
        self.seen.append(torch.is_autocast_enabled(x.device.type))
        h = x.shape[-1] // 2
        q = [x[:, :, :h, :h], x[:, :, :h, h:], x[:, :, h:, :h], x[:, :, h:, h:]]
        return self.proj(torch.stack([t.amax(1).mean((1, 2)) for t in q], 1))


def _data(tiny_folder) -> list[str]:
    return [f"data.source=folder:{tiny_folder}", "data.split=test", "data.image_size=32", *FAST]


def _score(tiny_folder, tmp_path, name, precision=None):
    spy = Spy()
    out = tmp_path / name
    df = evaluate(spy, "quick", out, info=ModelInfo(classes=CLASSES, input_size=32, label="spy"),
                  settings=ScoreSettings(overrides=_data(tiny_folder), cache_dir=tmp_path / "cache", device="cpu",
                                         precision=precision))
    return spy, df, json.loads((out / "spy" / "meta.json").read_text())  # out/LABEL/, as the CLI


def test_fp32_by_default_and_bf16_only_when_asked(tiny_folder, tmp_path):
    spy, df, meta = _score(tiny_folder, tmp_path, "fp32")
    assert spy.seen and not any(spy.seen)  # no autocast anywhere by default
    assert meta["precision"] == "fp32" and meta["suite"]["config"]["precision"] == "fp32"
    assert not df.note.fillna("").str.contains("bf16").any()

    # the same model and cache: bf16 recomputes (cells keyed by precision) and says so
    spy, df, meta = _score(tiny_folder, tmp_path, "bf16", precision="bf16")
    assert meta["precision"] == "bf16 autocast" and meta["suite"]["config"]["precision"] == "bf16"
    scored = df[~df.task.isin(["fgsm", "pgd"])]
    assert len(scored) >= 5 and scored.note.str.contains("scored under bf16 autocast").all()
    attacks = df[df.task == "fgsm"]
    assert (attacks.metric == "top1_acc").sum() == 2 and not attacks.note.fillna("").str.contains("bf16").any()  # attacks stay fp32
    assert any(spy.seen)  # the clean and -C cells ran under autocast, not from the fp32 cache
    saved = pd.read_csv(tmp_path / "bf16" / "spy" / "results.csv")
    assert saved[~saved.task.isin(["fgsm"])].note.str.contains("bf16").all()


def test_bf16_from_the_command_line_and_the_suite(tiny_folder, tmp_path):
    from nsbench.bench.suite import load_suite
    from nsbench.resources import resolve

    assert load_suite(resolve("suite", "quick")).precision == "fp32"
    assert load_suite(resolve("suite", "quick"), ["precision=bf16"]).precision == "bf16"
    with pytest.raises(NsbenchError, match="precision must be fp32 or bf16, got 'fp16'"):
        load_suite(resolve("suite", "quick"), ["precision=fp16"])
    with pytest.raises(NsbenchError, match="precision must be fp32 or bf16"):
        evaluate(Spy(), "quick", tmp_path / "x", info=ModelInfo(classes=CLASSES, input_size=32),
                 settings=ScoreSettings(precision="half"))
    torch.manual_seed(0)
    import timm

    net = timm.create_model("test_resnet", num_classes=4)
    from safetensors.torch import save_file

    save_file(net.state_dict(), str(tmp_path / "w.safetensors"))
    (tmp_path / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    assert main(["eval", "timm:test_resnet", "--checkpoint", str(tmp_path / "w.safetensors"), "--classes",
                 str(tmp_path / "classes.txt"), "--suite", "quick", "--out", str(tmp_path / "cli"), "--precision",
                 "bf16", "--device", "cpu", "--cache", str(tmp_path / "cache"), "--label", "r", *_data(tiny_folder)]) == 0
    meta = json.loads((tmp_path / "cli" / "r" / "meta.json").read_text())
    assert meta["precision"] == "bf16 autocast"


def _own_suite(path, extra: str = "") -> str:
    """A suite file of one's own that says nothing about precision: clean and FGSM only."""
    path.write_text("name: mine\n" + extra + "clean:\n  limit: 40\ncorruptions:\n  enabled: false\n"
                    "perturbations:\n  enabled: false\nnatural_adversarial:\n  enabled: false\n"
                    "fgsm:\n  limit: 8\n  eps_255: [0, 2]\n")
    return str(path)


def test_a_suite_that_names_no_precision_is_scored_in_fp32_and_one_that_says_bf16_is_not(tiny_folder, tmp_path):
    """The shipped suites all write `precision: fp32`, so the default of the key itself is checked on a suite file
    that leaves it out: meta.json says fp32, no row's note says bf16, no forward pass ran under autocast. The same
    file with `precision: bf16` changes all three (attacks stay fp32)."""
    overrides = [f"data.source=folder:{tiny_folder}", "data.split=test", "data.image_size=32"]
    runs = {}
    for name, extra in (("plain", ""), ("bf16", "precision: bf16\n")):
        spy, out = Spy(), tmp_path / name
        df = evaluate(spy, _own_suite(tmp_path / f"{name}.yaml", extra), out,
                      info=ModelInfo(classes=CLASSES, input_size=32, label="spy"),
                      settings=ScoreSettings(overrides=overrides, cache_dir=tmp_path / "cache", device="cpu"))
        runs[name] = (spy, pd.read_csv(out / "spy" / "results.csv"),
                      json.loads((out / "spy" / "meta.json").read_text()))
        assert set(df.task) == {"clean", "fgsm"}
    spy, rows, meta = runs["plain"]
    assert meta["precision"] == "fp32" and meta["suite"]["config"]["precision"] == "fp32"
    assert spy.seen and not any(spy.seen)
    assert not rows.note.fillna("").str.contains("bf16").any()
    spy, rows, meta = runs["bf16"]
    assert meta["precision"] == "bf16 autocast" and meta["suite"]["config"]["precision"] == "bf16"
    assert any(spy.seen)
    clean = rows[rows.task == "clean"]
    assert len(clean) and clean.note.str.contains("scored under bf16 autocast").all()
    assert not rows[rows.task == "fgsm"].note.fillna("").str.contains("bf16").any()


@pytest.mark.usefixtures("fresh_log_handlers")
def test_nsbench_eval_without_suite_or_precision_scores_in_fp32(tiny_folder, tmp_path):
    """`nsbench eval CKPT` with neither --suite nor --precision: the default suite (robustness), in fp32, as
    meta.json and every row say; --precision bf16 on the same command says bf16 autocast."""
    from helpers import tiny_checkpoint

    ckpt = tiny_checkpoint(tmp_path / "m.pt", CLASSES)
    common = [str(ckpt), "--cache", str(tmp_path / "cache"), "--device", "cpu", "--workers", "0",
              f"data.source=folder:{tiny_folder}", "data.split=test", "clean.limit=16", "corruptions.enabled=false",
              "perturbations.enabled=false", "natural_adversarial.enabled=false", "fgsm.limit=8", "fgsm.eps_255=[2]"]
    assert main(["eval", "--out", str(tmp_path / "a"), *common]) == 0
    meta = json.loads((tmp_path / "a" / "m" / "meta.json").read_text())
    assert meta["suite"]["config"]["name"] == "robustness"
    assert meta["precision"] == "fp32" and meta["suite"]["config"]["precision"] == "fp32"
    rows = pd.read_csv(tmp_path / "a" / "m" / "results.csv")
    assert {"clean", "fgsm"} <= set(rows.task) and not rows.note.fillna("").str.contains("bf16").any()
    assert main(["eval", "--out", str(tmp_path / "b"), "--precision", "bf16", *common]) == 0
    assert json.loads((tmp_path / "b" / "m" / "meta.json").read_text())["precision"] == "bf16 autocast"
    rows = pd.read_csv(tmp_path / "b" / "m" / "results.csv")
    assert rows[rows.task == "clean"].note.str.contains("scored under bf16 autocast").all()
