"""Any torchattacks attack by name (task `attacks`), run on [0, 1] images against the model with its normalisation
inside: AutoAttack's APGD-CE against the reference install gives the same outcomes image for image; eps 0 gives clean
accuracy; bad entries fail at load with one line; without torchattacks the message says how to install it."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nsbench.bench.context import EvalContext
from nsbench.bench.eval_model import from_module
from nsbench.bench.suite import SuiteConfig, load_suite, validate_suite
from nsbench.bench.tasks import attacks_by_name
from nsbench.bench.tasks.clean import clean_correct
from nsbench.utils import NsbenchError


def reference_torchattacks():
    """torchattacks from the environment, else from the Makefile's .venv/reference-libs (installed --no-deps)."""
    try:
        import torchattacks
    except ImportError:
        ref = Path(sys.prefix) / "reference-libs"
        if not (ref / "torchattacks").is_dir():
            pytest.skip("torchattacks (the reference install) is not there; make test installs it")
        sys.path.append(str(ref))
        import torchattacks
    return torchattacks


class RedQuadrants(torch.nn.Module):
    """tiny_folder's class c lights quadrant c in red: logit c = 10 x the mean red of quadrant c (differentiable,
    right on every clean image, so an attack has something to break)."""

    def forward(self, x):
        return 10 * torch.nn.functional.adaptive_avg_pool2d(x[:, :1], 2).flatten(1)


def setup(tmp_path, tiny_folder, runs):
    net = RedQuadrants()  # normalised inputs: mean/std are applied by the wrapper, inside the model
    em = from_module(net, classes=[f"class{c}" for c in range(4)], input_size=32, mean=(0.5, 0.4, 0.3), std=(0.25, 0.2, 0.3), label="tiny")
    cfg = SuiteConfig(name="t")
    cfg.data.source, cfg.data.split = f"folder:{tiny_folder}", "test"
    cfg.attacks.enabled, cfg.attacks.limit, cfg.attacks.batch_size = True, 12, 5
    cfg.attacks.run = runs
    cfg.clean.limit = 12
    validate_suite(cfg)
    return EvalContext(em, cfg, tmp_path / "cache", torch.device("cpu"), workers=0), cfg


def test_apgd_ce_equals_the_reference_install_image_for_image(tmp_path, tiny_folder):
    ta = reference_torchattacks()
    spec = attacks_by_name.AttackSpec(name="torchattacks:APGD", eps_255=96, kwargs={"loss": "ce", "steps": 5})
    ctx, cfg = setup(tmp_path, tiny_folder, [spec, attacks_by_name.AttackSpec(name="torchattacks:APGD", eps_255=0, kwargs={"steps": 2})])
    res = attacks_by_name.run(ctx, cfg.attacks, None)
    acc = {r["condition"]: r for r in res.rows if r["metric"] == "top1_acc"}
    attacked = acc["torchattacks:APGD(loss=ce, steps=5)"]
    assert attacked["eps_255"] == 96 and attacked["eps"] == pytest.approx(96 / 255) and attacked["n"] == 12
    clean = clean_correct(ctx)
    assert clean.mean() == 1.0 and acc["torchattacks:APGD(steps=2)"]["value"] == 100.0  # eps 0: clean accuracy
    assert attacked["value"] < 100.0
    assert {r["metric"] for r in res.rows} == {"top1_acc", "ece", "nll", "brier"}
    # the reference: torchattacks' APGD-CE on the same [0, 1] batches, against the same normalising model
    idx = ctx.pick(len(ctx.source), 12)
    want = []
    for x, y, _, _ in ctx.batches(ctx.source, idx, batch_size=5):
        atk = ta.APGD(ctx.model, eps=96 / 255, steps=5, loss="ce", seed=0, n_restarts=1)
        atk.set_model_training_mode(model_training=False)
        torch.manual_seed(0)
        adv = atk(x, y)
        assert (adv - x).abs().max() <= 96 / 255 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
        with torch.no_grad():
            want.append((ctx.model(adv).argmax(1) == y).numpy())
    per = res.per_image[0]
    assert np.array_equal(per.correct.to_numpy(), np.concatenate(want))
    assert ta.__version__ == res.sets["attacks"]["library"].split()[-1]


def test_constructor_arguments_filled_and_checked(tmp_path, tiny_folder):
    reference_torchattacks()
    built = attacks_by_name.build(attacks_by_name.attack_class("torchattacks:AutoAttack"), torch.nn.Linear(2, 3),
                    attacks_by_name.AttackSpec(name="torchattacks:AutoAttack", eps_255=4), n_classes=3, seed=7)
    assert built.n_classes == 3 and built.seed == 7 and built.eps == pytest.approx(4 / 255)  # not AutoAttack's 10
    for spec, msg in ((attacks_by_name.AttackSpec(name="torchattacks:Nope", eps_255=4), "unknown torchattacks attack 'Nope'"),
                      (attacks_by_name.AttackSpec(name="APGD", eps_255=4), "torchattacks:NAME"),
                      (attacks_by_name.AttackSpec(name="torchattacks:DeepFool", eps_255=4), "DeepFool takes no eps"),
                      (attacks_by_name.AttackSpec(name="torchattacks:APGD", eps_255=4, eps=0.1), "not both"),
                      (attacks_by_name.AttackSpec(name="torchattacks:APGD", eps_255=4, kwargs={"stepz": 3}), "unknown argument")):
        with pytest.raises(NsbenchError, match=msg):
            attacks_by_name.validate(attacks_by_name.AttacksTask(enabled=True, run=[spec]))


def test_the_suite_shorthand_and_a_missing_torchattacks(tmp_path, monkeypatch):
    reference_torchattacks()
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\ndata: {source: fashion-mnist}\nattacks: [{name: torchattacks:APGD, eps_255: 4}]\n")
    cfg = load_suite(suite)
    assert cfg.attacks.enabled and cfg.attacks.run[0].name == "torchattacks:APGD" and cfg.attacks.run[0].eps_255 == 4
    assert "attacks" in cfg.tasks() and cfg.fgsm.enabled  # the in-house attacks stay on
    monkeypatch.setitem(sys.modules, "torchattacks", None)
    with pytest.raises(NsbenchError, match="--no-deps"):
        load_suite(suite)


def test_named_attacks_reach_the_report(tmp_path, tiny_folder):
    reference_torchattacks()
    import pandas as pd

    from nsbench.bench.harness import ScoreSettings, score
    from nsbench.report.render import render_report

    ctx, cfg = setup(tmp_path, tiny_folder, [attacks_by_name.AttackSpec(name="torchattacks:APGD", eps_255=96, kwargs={"steps": 2})])
    for task in ("corruptions", "perturbations", "natural_adversarial", "fgsm"):
        getattr(cfg, task).enabled = False
    score(ctx.em, cfg, ScoreSettings(cache_dir=tmp_path / "cache", workers=0, device="cpu"), tmp_path / "res")
    html = render_report([tmp_path / "res"], tmp_path / "rep").read_text()
    assert 'id="attacks-table"' in html and "torchattacks:APGD(steps=2)" in html
    table = pd.read_csv(tmp_path / "rep" / "attacks_by_name.csv")
    row = table.iloc[0]
    assert row.eps_255 == 96 and row.n == 12 and row.ci_low <= row.value <= row.ci_high
