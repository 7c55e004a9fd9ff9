"""Any torchattacks attack by name (task `attacks`), run on [0, 1] images against the model with its normalisation
inside: AutoAttack's APGD-CE against the reference install gives the same outcomes image for image; eps 0 gives clean
accuracy; bad entries fail at load with one line; without torchattacks the message says how to install it."""
from __future__ import annotations

import re
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


# ---- issue 31: the section's ranges, typed constructor arguments, what build() sets, and run()'s rows by value

def validate_one(**spec) -> None:
    attacks_by_name.validate(attacks_by_name.AttacksTask(enabled=True,
                                                         run=[attacks_by_name.AttackSpec(name="torchattacks:APGD", **spec)]))


@pytest.mark.parametrize("spec", [{"eps_255": 255}, {"eps": 1.0}, {"eps": 0.0}, {"kwargs": {"rho": 0.5}},
                                  {"kwargs": {"rho": 1}}, {"kwargs": {"steps": 3}}, {"kwargs": {"verbose": True}},
                                  {"kwargs": {"norm": "L2", "loss": "dlr"}}])
def test_attack_entries_at_the_edge_are_accepted(spec):
    """APGD's defaults: steps=10 (int), rho=0.75 (float: an int is a number too), verbose=False (bool), norm and
    loss strings (torchattacks decides)."""
    reference_torchattacks()
    validate_one(**spec)


@pytest.mark.parametrize("spec, says", [
    ({"eps_255": 300}, f"attacks: torchattacks:APGD: eps: must be >= 0 and <= 1, got {300 / 255!r}"),
    ({"eps": 1.5}, "attacks: torchattacks:APGD: eps: must be >= 0 and <= 1, got 1.5"),
    ({"eps_255": -1}, "eps: must be >= 0 and <= 1"),
    ({"kwargs": {"rho": float("nan")}}, "attacks: torchattacks:APGD: rho must be finite, got nan"),
    ({"kwargs": {"rho": float("inf")}}, "rho must be finite, got inf"),
    ({"kwargs": {"rho": True}}, "attacks: torchattacks:APGD: rho must be float like its default (0.75), got bool True"),
    ({"kwargs": {"rho": "0.5"}}, "rho must be float like its default (0.75), got str '0.5'"),
    ({"kwargs": {"steps": True}}, "steps must be int like its default (10), got bool True"),
    ({"kwargs": {"steps": 2.5}}, "steps must be int like its default (10), got float 2.5"),
    ({"kwargs": {"verbose": 1}}, "verbose must be bool like its default (False), got int 1"),
])
def test_attack_entries_out_of_range_or_type_are_refused(spec, says):
    reference_torchattacks()
    with pytest.raises(NsbenchError, match=re.escape(says)):
        validate_one(**spec)


@pytest.mark.parametrize("changes", [{"limit": 1}, {"limit": None}, {"batch_size": 1}])
def test_section_settings_at_the_edge_are_accepted(changes):
    reference_torchattacks()
    attacks_by_name.validate(attacks_by_name.AttacksTask(
        enabled=True, run=[attacks_by_name.AttackSpec(name="torchattacks:APGD", eps_255=4)], **changes))


@pytest.mark.parametrize("changes, says", [({"limit": 0}, "attacks.limit: must be >= 1, got 0"),
                                           ({"batch_size": 0}, "attacks.batch_size: must be >= 1, got 0")])
def test_section_settings_out_of_range_are_refused(changes, says):
    reference_torchattacks()
    with pytest.raises(NsbenchError, match=re.escape(says)):
        attacks_by_name.validate(attacks_by_name.AttacksTask(
            enabled=True, run=[attacks_by_name.AttackSpec(name="torchattacks:APGD", eps_255=4)], **changes))


def test_seed_filled_only_where_the_attack_takes_one_and_the_entry_gives_none():
    reference_torchattacks()
    net = torch.nn.Linear(2, 3)
    pgd = attacks_by_name.build(attacks_by_name.attack_class("torchattacks:PGD"), net,
                                attacks_by_name.AttackSpec(name="torchattacks:PGD", eps_255=4), n_classes=3, seed=7)
    assert pgd.eps == pytest.approx(4 / 255) and not hasattr(pgd, "seed")  # PGD(model, eps, alpha, steps, random_start)
    given = attacks_by_name.build(attacks_by_name.attack_class("torchattacks:APGD"), net,
                                  attacks_by_name.AttackSpec(name="torchattacks:APGD", eps_255=4, kwargs={"seed": 3}),
                                  n_classes=3, seed=7)
    assert given.seed == 3  # the entry's, not the suite's


class Recorder(torch.nn.Module):
    """Logits of a fixed linear map; records self.training at every call (a module that reads self.training is
    neither a Dropout nor a BatchNorm, so only the model's own mode decides it, as for timm's DropPath)."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(self.training)
        return x.flatten(1)[:, :3] * 10


def test_the_attack_runs_the_model_in_eval_mode_on_the_given_device():
    """build(): eval mode during the attack (dropout off, BN running statistics, any mode-dependent module); the
    device set where given, so a parameter-free model (torchattacks cannot guess one) still has it."""
    reference_torchattacks()
    model = Recorder().eval()
    spec = attacks_by_name.AttackSpec(name="torchattacks:PGD", eps_255=8, kwargs={"steps": 2})
    atk = attacks_by_name.build(attacks_by_name.attack_class("torchattacks:PGD"), model, spec, n_classes=3, seed=0,
                                device=torch.device("cpu"))
    assert atk.device == torch.device("cpu")
    x = torch.rand(4, 3, 4, 4)
    atk(x, torch.tensor([0, 1, 2, 0]))
    assert model.seen and not any(model.seen)
    guessed = attacks_by_name.build(attacks_by_name.attack_class("torchattacks:PGD"), torch.nn.Linear(2, 3), spec,
                                    n_classes=3, seed=0)
    assert guessed.device == torch.device("cpu")  # no device given: torchattacks' guess from the parameters stands


def test_every_image_is_attacked_and_framed_at_eps_zero(tmp_path, tiny_folder):
    """11 images in batches of 5, 5 and 1: all 11 scored (the model is right on every clean image, and eps 0 leaves
    them clean: accuracy 100); the per-image frame has severity 0 and eps_255 0."""
    reference_torchattacks()
    ctx, cfg = setup(tmp_path, tiny_folder, [attacks_by_name.AttackSpec(name="torchattacks:APGD", eps_255=0,
                                                                        kwargs={"steps": 1})])
    cfg.attacks.limit = 11
    res = attacks_by_name.run(ctx, cfg.attacks, None)
    acc = next(r for r in res.rows if r["metric"] == "top1_acc")
    assert acc["n"] == 11 and acc["value"] == 100.0 and acc["eps_255"] == 0.0
    (per,) = res.per_image
    assert len(per) == 11 and (per.severity == 0).all() and (per.eps_255 == 0.0).all() and per.correct.all()
    assert sorted(per.image.tolist()) == sorted(ctx.pick(len(ctx.source), 11).tolist())


def test_non_finite_adversarial_images_are_counted_per_image(tmp_path, tiny_folder, monkeypatch):
    """An attack that returns NaN in one channel of image 0 and everywhere in image 2 of the first batch of 5: two
    images, however many pixels."""
    reference_torchattacks()

    def nan_attack(x, y):
        adv = x.clone()
        adv[0, 0] = float("nan")
        adv[2] = float("nan")
        return adv

    monkeypatch.setattr(attacks_by_name, "build", lambda *a, **k: nan_attack)
    ctx, cfg = setup(tmp_path, tiny_folder, [attacks_by_name.AttackSpec(name="torchattacks:APGD", eps_255=4)])
    with pytest.raises(NsbenchError, match=r"the attack returned non-finite images \(NaN or inf\) for 2 of 5 images"):
        attacks_by_name.run(ctx, cfg.attacks, None)


def test_named_attacks_are_off_unless_a_suite_lists_them():
    """docs/evaluation.md: "The in-house FGSM and PGD (task `fgsm`) are the default. Any torchattacks attack runs by
    name once torchattacks is importable" (and listed in the suite)."""
    text = " ".join((Path(__file__).resolve().parents[2] / "docs" / "evaluation.md").read_text().split())
    assert "The in-house FGSM and PGD (task `fgsm`) are the default." in text
    assert attacks_by_name.AttacksTask().enabled is False and attacks_by_name.AttacksTask().run == []


def test_the_default_image_count_and_batch_are_the_documented_ones():
    """docs/evaluation.md: named attacks run on 500 images of the evaluation split in batches of 100 (the batch is
    in the cell's key and an attack's random start draws per batch)."""
    text = " ".join((Path(__file__).parents[2] / "docs" / "evaluation.md").read_text().split())
    limit, batch = re.search(r"Named attacks run on (\d+) images of the evaluation split .*? in batches of (\d+)\.",
                             text).groups()
    t = attacks_by_name.AttacksTask()
    assert (t.limit, t.batch_size) == (int(limit), int(batch))
