"""One vocabulary (nsbench/schema.py): the names the harness writes are the names the report and the study match.
The round trip that once lost PGD: eval with a PGD task -> the report shows it -> a study claim on `pgd@EPS`
resolves."""
from __future__ import annotations

import pandas as pd
import torch
from torch import nn

from nsbench import ModelInfo, ScoreSettings
from nsbench import evaluate, schema
from nsbench.bench.registry import task_kinds
from nsbench.report.render import render_report

CLASSES = [f"class{i}" for i in range(4)]
PGD_SUITE = ["clean.limit=40", "corruptions.enabled=false", "perturbations.enabled=false",
             "natural_adversarial.enabled=false", "fgsm.attack=pgd", "fgsm.pgd_steps=2", "fgsm.eps_255=[0,4]",
             "fgsm.limit=40"]


class QuadrantOracle(nn.Module):
    """The tiny dataset's rule (the class is the brightest quadrant), with gradients for the attack."""

    def forward(self, x):
        h = x.shape[-1] // 2
        q = [x[:, :, :h, :h], x[:, :, :h, h:], x[:, :, h:, :h], x[:, :, h:, h:]]
        return torch.stack([t.amax(1).mean((1, 2)) for t in q], 1) * 10


class Blind(nn.Module):
    """Always class 0 (a quarter of the balanced test split), whatever the attack does."""

    def forward(self, x):
        return torch.zeros(len(x), 4) + torch.tensor([1.0, 0, 0, 0]) + 0 * x.mean((1, 2, 3))[:, None]


def test_every_measure_names_a_registered_task_and_attack_measures_parse():
    tasks = task_kinds()
    assert {m.task for m in schema.MEASURES.values()} <= set(tasks)
    assert schema.FGSM in tasks  # the attack task's registry name (its failed rows carry it)
    for attack in schema.ATTACKS:
        m = schema.ATTACK_MEASURE.match(schema.attack_measure(attack, 4.0).name)
        assert m and m["attack"] == attack and float(m["eps"]) == 4.0
    assert schema.attack_measure(schema.FGSM, 0.5).name == "fgsm@0.5" and not schema.ATTACK_MEASURE.match("fgsm")


def test_pgd_round_trip_eval_report_and_study_claim(tiny_folder, tmp_path):
    over = [f"data.source=folder:{tiny_folder}", "data.split=test", "data.image_size=32", *PGD_SUITE]
    for label, model in (("oracle", QuadrantOracle()), ("blind", Blind())):
        df = evaluate(model, "quick", tmp_path / label, info=ModelInfo(label=label, classes=CLASSES, input_size=32),
                      settings=ScoreSettings(overrides=over, cache_dir=tmp_path / "cache", device="cpu"))
        assert schema.PGD in set(df.task) and schema.FGSM not in set(df.task)  # the harness writes PGD as pgd
    key = schema.attack_measure(schema.PGD, 4).name
    study = {"name": "pgd", "description": "PGD round trip", "scale": "test", "seeds": [0], "tables": [{
        "id": "t0", "title": "PGD", "source": "",
        "rows": [{"ref": r, "labels": {0: r}, "about": r} for r in ("oracle", "blind")],
        "claims": [{"claim": "the oracle resists PGD better", "source": "", "metric": key,
                    "better": {"ref": "oracle", "labels": {0: "oracle"}},
                    "than": {"ref": "blind", "labels": {0: "blind"}}}]}]}
    out = tmp_path / "report"
    html = render_report([tmp_path / "oracle", tmp_path / "blind"], out, baseline="blind", study=study).read_text()
    head = pd.read_csv(out / "headline.csv")
    pgd = head[head.measure == key].set_index("model")
    assert set(pgd.index) == {"oracle", "blind"} and "PGD 4/255" in html  # the report shows PGD
    assert pgd.value["blind"] == 25.0  # class 0 is a quarter of the balanced split; no attack moves a constant
    claims = pd.read_csv(out / "claims.csv")
    assert claims.metric.tolist() == [key]
    c = claims.iloc[0]
    assert c.verdict == "holds" and c["diff"] == pgd.value["oracle"] - 25.0 and c.diff_low > 0  # resolved, with an interval
