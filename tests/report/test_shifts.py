"""report/shifts.py by value: top-1 accuracy on a set with its 95% interval on seed 5151 against the percentile
bootstrap written out, none (and n 0) without per-image outcomes or with duplicated ones; a corruption tree's accuracy
as 100 - its mean error (the partial mean where only that is held); attacks by name at their own eps; each set's
origin (built or official) by the rules origin() documents; the table's heading and origin note; the set keys found.
Inputs are fabricated results rows and per-image frames."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import resample_index
from nsbench import schema
from nsbench.report import shifts
from nsbench.report.load import EvalResult

CLEAN_OK = [1, 1, 1, 0, 1, 1, 0, 1, 1, 1]  # 8 of 10: 80%
SQUARE_4 = [1, 0, 1, 0, 1, 1, 0, 0, 1, 1]  # 60%
SQUARE_8 = [0, 0, 1, 0, 1, 0, 0, 0, 1, 0]  # 30%


def evaluation(rows: list[dict], per: pd.DataFrame | None = None, meta: dict | None = None,
               label: str = "m") -> EvalResult:
    df = schema.frame([schema.row(model=label, suite="t", **{"n": 10, **r}) for r in rows]).astype({"value": float})
    return EvalResult(label, Path(label), df, meta if meta is not None else {"model": {"label": label}}, per)


def per_image(task: str, condition: str, correct: list[int], eps: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame({"task": task, "condition": condition, "severity": np.nan, "eps_255": eps,
                         "image": np.arange(len(correct)), "correct": np.asarray(correct, bool)})


def bootstrap_accuracy(correct: list[int], seed: int = 5151) -> tuple[float, float]:
    x = np.asarray(correct, float)
    return tuple(np.quantile(100 * x[resample_index(len(x), seed)].mean(1), [0.025, 0.975]))


CLEAN_ROW = {"task": schema.CLEAN, "condition": schema.CLEAN_CONDITION, "metric": schema.TOP1_ACC, "value": 80.0}


def test_accuracy_interval_is_the_percentile_bootstrap_on_seed_5151():
    m = shifts.accuracy(evaluation([CLEAN_ROW], per_image(schema.CLEAN, "clean", CLEAN_OK)), schema.CLEAN)
    assert m.value == 80.0 and m.n == 10
    assert (m.low, m.high) == pytest.approx(bootstrap_accuracy(CLEAN_OK), rel=1e-9)


def test_no_interval_and_no_count_without_per_image_outcomes_or_with_duplicated_ones():
    none = shifts.accuracy(evaluation([CLEAN_ROW]), schema.CLEAN)
    dup = per_image(schema.CLEAN, "clean", CLEAN_OK)
    twice = shifts.accuracy(evaluation([CLEAN_ROW], pd.concat([dup, dup], ignore_index=True)), schema.CLEAN)
    for m in (none, twice):
        assert m.value == 80.0 and m.n == 0 and math.isnan(m.low) and math.isnan(m.high)
    frame = shifts.accuracy_frame([evaluation([CLEAN_ROW])])
    assert frame[["set", "value", "n"]].values.tolist() == [["clean", 80.0, 0]]


@pytest.mark.parametrize("key,task", [("imagenet_c", schema.CORRUPTIONS), ("imagenet_c_bar", schema.IMAGENET_C_BAR),
                                      ("imagenet_3dcc", schema.IMAGENET_3DCC)])
def test_a_corruption_tree_scores_100_minus_its_mean_error(key, task):
    rows = [{"task": task, "condition": schema.ALL, "metric": schema.MEAN_ERR, "value": 38.5, "n": 500},
            {"task": task, "condition": "fog", "metric": schema.MEAN_ERR, "value": 20.0, "n": 500}]
    m = shifts.accuracy(evaluation(rows), key)
    assert (m.value, m.n, m.note) == (61.5, 500, "mean over corruptions; no interval")
    assert math.isnan(m.low)


def test_a_partial_tree_scores_100_minus_its_partial_mean_with_its_note():
    partial = {"task": schema.IMAGENET_C_BAR, "condition": schema.ALL, "metric": schema.MEAN_ERR + schema.PARTIAL,
               "value": 42.25, "n": 200, "note": "mean over 3 of 10 corruptions"}
    m = shifts.accuracy(evaluation([partial]), "imagenet_c_bar")
    assert (m.value, m.n, m.note) == (57.75, 200, "mean over 3 of 10 corruptions")
    assert shifts.accuracy(evaluation([partial]), "no_such_set") is None


def test_task_of_each_set_key():
    assert shifts.task_of("imagenet_sketch") == schema.IMAGENET_SKETCH
    assert shifts.task_of("built_a") == schema.NATURAL_ADVERSARIAL
    assert shifts.task_of("clean") is None and shifts.task_of("no_such_set") is None


IMAGENET = {"source": "imagenet:/data/imagenet"}
CIFAR = {"source": "folder:/data/cifar"}


def test_origin_follows_the_documented_rules():
    def origin(key, dataset=IMAGENET, sets=None):
        meta = {"dataset": dataset, **({"sets": sets} if sets is not None else {})}
        return shifts.origin(evaluation([CLEAN_ROW], meta=meta), key)

    assert origin("clean") == "" and origin("clean", CIFAR) == ""  # the clean set has no origin
    assert origin("imagenet_sketch") == "official" and origin("imagenet_v2:matched-frequency", CIFAR) == "official"
    assert origin("imagenet_a") == "official"  # ImageNet's -A set, nothing recorded: the released one
    assert origin("imagenet_a", CIFAR) == "built"  # on another dataset every set is built
    a_sets = {schema.NATURAL_ADVERSARIAL: {"source": "official:/data/imagenet-a"}}
    assert origin("imagenet_a", CIFAR, a_sets) == "official"  # its source says official
    refs = {schema.NATURAL_ADVERSARIAL: {"references": ["resnet50"]}}
    assert origin("imagenet_a", IMAGENET, refs) == "built" and origin("built_a", IMAGENET, refs) == "built"
    assert origin("imagenet_c") == ""  # ImageNet-C on ImageNet without a record: nothing says


def test_heading_and_origin_note_name_what_the_sets_are():
    assert shifts.heading({"built"}) == "Built shifted sets"
    assert shifts.heading({"official"}) == "Official shifted sets"
    assert shifts.heading({"built", "official"}) == "Shifted sets (built and official)"
    assert shifts.heading({""}) == "Shifted sets"
    assert shifts.origin_note({"official"}) == "Official: the released files, scored as shipped."
    assert shifts.origin_note(set()) == ""


def test_the_v2_variants_held_are_set_keys():
    rows = [CLEAN_ROW, {"task": schema.IMAGENET_V2, "condition": "matched-frequency", "metric": schema.TOP1_ACC,
                        "value": 70.5}]
    assert shifts.keys_present([evaluation(rows)]) == ["clean", "imagenet_v2:matched-frequency"]


def _attacked(label: str, per: pd.DataFrame | None) -> EvalResult:
    a = {"task": schema.ATTACKS_BY_NAME, "condition": "square", "metric": schema.TOP1_ACC}
    rows = [CLEAN_ROW, {**a, "value": 60.0, "eps_255": 4.0}, {**a, "value": 30.0, "eps_255": 8.0},
            {**a, "metric": "ece", "value": 12.0, "eps_255": 8.0}]
    return evaluation(rows, per, label=label)


def test_attacks_by_name_at_their_own_eps_with_intervals_on_seed_5151():
    per = pd.concat([per_image(schema.CLEAN, "clean", CLEAN_OK),
                     per_image(schema.ATTACKS_BY_NAME, "square", SQUARE_4, 4.0),
                     per_image(schema.ATTACKS_BY_NAME, "square", SQUARE_8, 8.0)], ignore_index=True)
    f = shifts.attack_frame([_attacked("m", per), _attacked("bare", None)])
    assert f[["model", "attack", "eps_255", "value", "n"]].values.tolist() == [
        ["m", "square", 4.0, 60.0, 10], ["m", "square", 8.0, 30.0, 10],
        ["bare", "square", 4.0, 60.0, 10], ["bare", "square", 8.0, 30.0, 10]]
    assert tuple(f.iloc[0][["ci_low", "ci_high"]]) == pytest.approx(bootstrap_accuracy(SQUARE_4), rel=1e-9)
    assert tuple(f.iloc[1][["ci_low", "ci_high"]]) == pytest.approx(bootstrap_accuracy(SQUARE_8), rel=1e-9)
    assert f.iloc[2:][["ci_low", "ci_high"]].isna().all(axis=None)  # no per-image outcomes: no interval


def test_an_attack_with_duplicated_per_image_outcomes_has_no_interval():
    one = per_image(schema.ATTACKS_BY_NAME, "square", SQUARE_8, 8.0)
    per = pd.concat([per_image(schema.ATTACKS_BY_NAME, "square", SQUARE_4, 4.0), one, one], ignore_index=True)
    f = shifts.attack_frame([_attacked("m", per)])
    assert np.isfinite(f.iloc[0].ci_low) and math.isnan(f.iloc[1].ci_low)
