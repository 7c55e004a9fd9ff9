"""report/conditions.py by value: per-condition frames in the papers' order (ImageNet-C's 15 benchmark corruptions,
ImageNet-P's 10 test perturbations), no frame at all for results without the metric, CE and FR chosen where held and
their fallbacks (mean error, flip probability) otherwise, and the -C table's columns grouped by corruption family
with each family's span counted by hand. Inputs are fabricated result rows."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from nsbench import schema
from nsbench.report import conditions
from nsbench.report.load import EvalResult

C, P = schema.CORRUPTIONS, schema.PERTURBATIONS


def result(label: str, task: str, metric: str, values: dict[str, float]) -> EvalResult:
    """A model's per-condition rows of one metric (condition -> value), values as load.py reads them (float)."""
    rows = [schema.row(model=label, suite="t", task=task, condition=c, metric=metric, value=v, n=10)
            for c, v in values.items()]
    df = schema.frame(rows).astype({"value": float})
    return EvalResult(label, Path(label), df, {"model": {"label": label}}, None)


def test_corruptions_come_in_the_imagenet_c_papers_order():
    # ImageNet-C's order: gaussian noise, shot, impulse, defocus, glass, motion, zoom, snow, frost, fog, ...
    r = result("m", C, schema.CE, {"fog": 90.0, "impulse_noise": 80.0, "gaussian_noise": 70.0, "saturate": 60.0})
    df = conditions.per_condition([r], C, schema.CE)
    assert list(df.index) == ["gaussian_noise", "impulse_noise", "fog", "saturate"]  # not a benchmark one: last
    assert df["m"].tolist() == [70.0, 80.0, 90.0, 60.0]


def test_perturbations_come_in_the_imagenet_p_papers_order():
    # ImageNet-P's test perturbations: gaussian noise, shot noise, motion blur, zoom blur, snow, brightness, translate,
    # rotate, tilt, scale
    r = result("m", P, schema.FR, {"rotate": 3.0, "zoom_blur": 2.0, "translate": 1.0})
    assert list(conditions.per_condition([r], P, schema.FR).index) == ["zoom_blur", "translate", "rotate"]


def test_results_without_the_metric_give_no_frame_not_an_empty_one_with_model_columns():
    # corruptions_ce.csv of models without CE rows: no model columns under the header
    evals = [result("a", C, schema.MEAN_ERR, {"fog": 50.0}), result("b", C, schema.MEAN_ERR, {"fog": 40.0})]
    df = conditions.per_condition(evals, C, schema.CE)
    assert df.shape == (0, 0)


def test_choose_takes_ce_where_held_and_the_mean_error_otherwise():
    ce = conditions.choose([result("m", C, schema.CE, {"fog": 95.0})], C)
    assert ce[0].metric == schema.CE and ce[1]["m"].tolist() == [95.0]
    err = conditions.choose([result("m", C, schema.MEAN_ERR, {"fog": 41.5})], C)
    assert err[0].metric == schema.MEAN_ERR and err[1]["m"].tolist() == [41.5]


def test_ce_and_fr_are_drawn_against_the_normaliser_and_their_fallbacks_are_not():
    # CE and FR are 100 for the normaliser (the dashed line); a mean error or flip probability is a percentage
    assert [c.normalised for c in conditions.CHOICES[C]] == [True, False]
    assert [c.normalised for c in conditions.CHOICES[P]] == [True, False]


def test_the_choices_are_shared_constants_that_cannot_be_changed():
    choice = conditions.CHOICES[C][0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        choice.metric = schema.MEAN_ERR
    assert {choice: 1}[conditions.CHOICES[C][0]] == 1  # hashable, as a frozen dataclass is


def test_the_corruption_table_groups_columns_by_family_with_their_spans():
    values = {"gaussian_noise": 90.0, "shot_noise": 91.0, "fog": 80.0, "spatter": 70.0, "motion_blur": 85.0}
    evals = [result("base", C, schema.CE, dict.fromkeys(values, 100.0)), result("new", C, schema.CE, values)]
    t = conditions.condition_table(evals, C, schema.CE, "base")
    # noise 2 (gaussian, shot), blur 1 (motion), weather 1 (fog), extra 1 (spatter)
    assert t["groups"] == [{"name": "noise", "span": 2}, {"name": "blur", "span": 1}, {"name": "weather", "span": 1},
                           {"name": "extra", "span": 1}]
    assert t["columns"] == [("Gauss.", "Gaussian noise"), ("Shot", "Shot noise"), ("Motion", "Motion blur"),
                            ("Fog", "Fog"), ("Spatter", "Spatter")]
    assert t["rows"] == [{"model": "base", "baseline": True, "vals": ["100"] * 5},
                         {"model": "new", "baseline": False, "vals": ["90", "91", "85", "80", "70"]}]


def test_the_perturbation_table_has_no_family_groups():
    t = conditions.condition_table([result("m", P, schema.FR, {"translate": 61.0, "gaussian_noise": 58.0})], P,
                                   schema.FR, None)
    assert t["groups"] == [] and t["columns"] == [("Gauss.", "Gaussian noise"), ("Translate", "Translate")]
    assert t["rows"] == [{"model": "m", "baseline": False, "vals": ["58", "61"]}]
