"""report/headline.py by value: the -C intervals (mCE over the corruptions with a CE row, a partial mCE over the
members its row lists, each corruption's CE on seed 1000 + k) against the percentile bootstrap written out, with
the normaliser's denominators recovered from the saved rows (CE_c = 100 sum E / den_c, so a resample's CE is
CE_c x its error / the saved error); what the headline says where the per-image outcomes cannot give an interval;
a failed task's reason; which measures head the page and how they are labelled (a built -A set); which normaliser
and which data pair with a model's outcomes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import resample_index
from nsbench import schema
from nsbench.report.compare import headline
from nsbench.report.headline import (_same_data, condition_intervals, data_key, failure, measures, normaliser_eval,
                                     warning)
from nsbench.report.load import EvalResult

C = schema.CORRUPTIONS
FINGERPRINT = {"dataset": {"fingerprint": "f00d", "split": "test"}}


def ev(label: str, rows: list[dict], per: pd.DataFrame | None = None, meta: dict | None = None) -> EvalResult:
    """Results as report/load.py reads them (an empty note is "")."""
    frame = schema.frame(rows)
    frame["note"] = frame.note.fillna("").astype(str)
    return EvalResult(label, Path(label), frame, {**FINGERPRINT, **(meta or {})}, per)


def row(task: str, condition: str, metric: str, value, **kw) -> dict:
    return schema.row(model="m", suite="t", task=task, condition=condition, metric=metric, value=value, n=10, **kw)


def outcomes(n: int, right: int, seed: int) -> np.ndarray:
    x = np.zeros(n, bool)
    x[np.random.default_rng(seed).choice(n, right, replace=False)] = True
    return x


def hand_ce_interval(cells: dict[str, tuple[np.ndarray, float]], seed: int) -> tuple[float, float]:
    """95% percentile interval of the mean over corruptions of CE_c x err_c(resample) / err_c (one severity each,
    the constants' denominators), all corruptions resampled with the same image indices."""
    n = len(next(iter(cells.values()))[0])
    idx = resample_index(n, seed)
    vals = np.mean([ce * (1 - x[idx].astype(float).mean(1)) / (1 - x.mean()) for x, ce in cells.values()], axis=0)
    lo, hi = np.quantile(vals, [0.025, 0.975])
    return float(lo), float(hi)


def c_eval(label: str, cells: dict[str, np.ndarray], ce: dict[str, float], mean: tuple[str, str, float] | None, *,
           saved_err: dict[str, float] | None = None, clean_images: int | None = None, per_image: bool = True,
           meta: dict | None = None) -> EvalResult:
    """-C results at severity 1: each corruption's top-1 error (the outcomes', or `saved_err`), the CE rows given
    (normalised by the AlexNet table), the mean row (metric, condition, value); per-image outcomes of every cell,
    and with `clean_images` the clean images' outcomes under condition "clean" (as older results wrote them)."""
    saved_err = saved_err or {}
    rows = [row(C, c, schema.TOP1_ERR, saved_err.get(c, 100 * (1 - x.mean())), severity=1) for c, x in cells.items()]
    rows += [row(C, c, schema.CE, v, normaliser="alexnet") for c, v in ce.items()]
    if mean is not None:
        rows.append(row(C, mean[1], mean[0], mean[2], normaliser="alexnet"))
    per = [pd.DataFrame({"task": C, "condition": c, "severity": 1, "eps_255": 0.0, "image": np.arange(len(x)),
                         "correct": x}) for c, x in cells.items()]
    if clean_images:
        per.append(pd.DataFrame({"task": C, "condition": schema.CLEAN_CONDITION, "severity": 0, "eps_255": 0.0,
                                 "image": np.arange(clean_images), "correct": True}))
    return ev(label, rows, pd.concat(per, ignore_index=True) if per_image else None, meta)


N = 200
FOG, SNOW, NOISE = outcomes(N, 120, 1), outcomes(N, 90, 2), outcomes(N, 60, 3)


def test_mce_interval_over_the_corruptions_with_a_ce_row():
    """mCE over fog (CE 110) and snow (CE 95), the first measure (seed 1000): gaussian noise was scored (top-1
    error rows and outcomes) but has no CE row, so it is no member; the clean images' outcomes (more images than
    the cells hold) are not a corruption either."""
    r = c_eval("m", {"fog": FOG, "snow": SNOW, "gaussian_noise": NOISE}, {"fog": 110.0, "snow": 95.0},
               ("mce", schema.ALL, (110.0 + 95.0) / 2), clean_images=N + 5)
    head = headline([r], None).set_index("measure")
    assert list(head.index) == ["mce"]
    mce = head.loc["mce"]
    lo, hi = hand_ce_interval({"fog": (FOG, 110.0), "snow": (SNOW, 95.0)}, 1000)
    assert mce.value == 102.5 and mce.note == "" and mce.n == N
    assert (mce.ci_low, mce.ci_high) == (pytest.approx(lo, abs=1e-9), pytest.approx(hi, abs=1e-9))


def test_partial_mce_interval_over_the_members_its_row_lists():
    """A partial mCE whose row lists fog and snow, though gaussian noise has a CE row too (80): the interval is over
    the two it lists (a mean over all three, 95, would not give back the saved 102.5)."""
    r = c_eval("m", {"fog": FOG, "snow": SNOW, "gaussian_noise": NOISE},
               {"fog": 110.0, "snow": 95.0, "gaussian_noise": 80.0}, ("mce_partial", "fog,snow", 102.5))
    head = headline([r], None).set_index("measure")
    assert list(head.index) == ["mce_partial"]
    m = head.loc["mce_partial"]
    lo, hi = hand_ce_interval({"fog": (FOG, 110.0), "snow": (SNOW, 95.0)}, 1000)
    assert m.value == 102.5 and m.note == "" and m.warning.startswith("mCE (partial) covers an incomplete")
    assert (m.ci_low, m.ci_high) == (pytest.approx(lo, abs=1e-9), pytest.approx(hi, abs=1e-9))


def test_per_corruption_intervals_on_seed_1000_plus_k():
    """condition_intervals of CE for [fog, snow, frost, zoom_blur]: fog on seed 1000, snow on 1001; frost's
    outcomes (40% error) do not give back its saved error (35%): no interval; zoom_blur has no outcomes: none."""
    frost = outcomes(N, 120, 4)
    r = c_eval("m", {"fog": FOG, "snow": SNOW, "frost": frost}, {"fog": 110.0, "snow": 95.0, "frost": 90.0,
                                                                  "zoom_blur": 70.0},
               ("mce_partial", "fog,snow,frost,zoom_blur", (110 + 95 + 90 + 70) / 4), saved_err={"frost": 35.0})
    out = condition_intervals([r], C, schema.CE, ["fog", "snow", "frost", "zoom_blur"])
    assert set(out) == {("m", "fog"), ("m", "snow")}
    for k, (c, x, ce) in enumerate((("fog", FOG, 110.0), ("snow", SNOW, 95.0))):
        lo, hi = hand_ce_interval({c: (x, ce)}, 1000 + k)
        assert out[("m", c)] == (pytest.approx(lo, abs=1e-9), pytest.approx(hi, abs=1e-9)), c


def clean(label: str, per: pd.DataFrame | None, value: float, meta: dict | None = None) -> EvalResult:
    return ev(label, [row(schema.CLEAN, schema.CLEAN_CONDITION, schema.TOP1_ACC, value)], per, meta)


def clean_per(images, correct) -> pd.DataFrame:
    return pd.DataFrame({"task": schema.CLEAN, "condition": schema.CLEAN_CONDITION, "severity": np.nan,
                         "eps_255": 0.0, "image": images, "correct": correct})


def test_what_the_headline_says_without_usable_outcomes():
    """No per-image outcomes (clean or -C), outcomes of other tasks only, an image twice: no interval, and the
    note says the outcomes are missing."""
    twice = clean_per([0, 1, 2, 3, 3], [True, True, False, False, False])  # 40% over the rows, as saved
    other = pd.DataFrame({"task": C, "condition": "fog", "severity": 1, "eps_255": 0.0, "image": [0, 1],
                          "correct": [True, False]})
    evals = [clean("none", None, 40.0), clean("twice", twice, 40.0), clean("other", other, 40.0),
             c_eval("c", {"fog": FOG}, {"fog": 110.0}, ("mce_partial", "fog", 110.0), per_image=False)]
    head = headline(evals, None).set_index(["model", "measure"])
    for key in (("none", "clean_top1"), ("twice", "clean_top1"), ("other", "clean_top1"), ("c", "mce_partial")):
        r = head.loc[key]
        assert r.note == "per-image outcomes missing: no interval", key
        assert np.isnan(r.ci_low) and np.isnan(r.ci_high) and np.isnan(r.n), key
    ok = headline([clean("ok", clean_per([0, 1, 2, 3, 4], [True, True, False, False, False]), 40.0)], None)
    assert ok.note.tolist() == [""] and np.isfinite(ok.ci_low.iloc[0])


def test_failure_gives_the_reason_of_that_task_only():
    r = ev("m", [row(schema.CLEAN, schema.ALL, schema.FAILED, None, note="clean: CUDA out of memory"),
                 row(C, schema.ALL, schema.FAILED, None),
                 row(schema.FGSM, schema.FGSM, schema.TOP1_ACC, 40.0, eps_255=8.0)])
    assert failure(r, schema.CLEAN) == "clean: CUDA out of memory"
    assert failure(r, C) == "no reason recorded"
    assert failure(r, schema.FGSM) == ""  # it ran
    assert failure(r, schema.PERTURBATIONS) == ""  # not asked for


def test_headline_measures_and_the_built_a_label():
    """Clean, -A, mFR, the mean flip probability (a fallback for mFR: left out), ImageNet-Sketch (not a headline
    measure): the headline is clean, -A and mFR; -A is labelled built where a model's -A set names its reference
    classifiers, and warned about."""
    rows = [row(schema.CLEAN, schema.CLEAN_CONDITION, schema.TOP1_ACC, 80.0),
            row(schema.NATURAL_ADVERSARIAL, "imagenet-a", schema.TOP1_ACC, 5.0),
            row(schema.PERTURBATIONS, schema.ALL, schema.MFR, 60.0),
            row(schema.PERTURBATIONS, schema.ALL, schema.MEAN_FP, 4.0),
            row(schema.IMAGENET_SKETCH, schema.SKETCH, schema.TOP1_ACC, 30.0)]
    built = {"sets": {schema.NATURAL_ADVERSARIAL: {"references": ["resnet50", "vit"], "folder": "a"}}}
    official = {"sets": {schema.NATURAL_ADVERSARIAL: {"folder": "imagenet-a"}}}
    for metas, label in (([built, {}], "built -A top-1 (%)"), ([official, {}], "-A top-1 (%)"),
                         ([{}], "-A top-1 (%)")):
        got = measures([ev(f"m{k}", rows, meta=meta) for k, meta in enumerate(metas)])
        assert [m.name for m in got] == ["clean_top1", "a_top1", "mfr"]
        a = got[1]
        assert a.label == label
        assert warning(a).startswith("built -A: images this dataset's reference classifiers all get wrong") \
            == (label == "built -A top-1 (%)")
        assert warning(got[0]) == "" and warning(got[2]) == ""
    assert warning(schema.MEASURES["mce_partial"]) == \
        "mCE (partial) covers an incomplete benchmark set: not comparable with mCE"


def test_the_normaliser_is_an_evaluated_model_only_by_its_checkpoint_hash():
    alexnet = ev("alexnet", [], meta={"model": {"sha256": "aa11"}})
    nameless = ev("nameless", [], meta={"model": {}})
    by_model = ev("x", [], meta={"normaliser": {"kind": "model", "sha256": "aa11"}})
    by_table = ev("y", [], meta={"normaliser": {"kind": "alexnet_table", "sha256": "aa11"}})
    unhashed = ev("z", [], meta={"normaliser": {"kind": "model"}})
    evals = [alexnet, nameless, by_model, by_table, unhashed]
    assert normaliser_eval(by_model, evals) is alexnet
    assert normaliser_eval(by_table, evals) is None  # a published table is no evaluated model
    assert normaliser_eval(unhashed, evals) is None  # no hash: no model to pair with
    assert normaliser_eval(alexnet, evals) is None


def test_outcomes_pair_only_on_the_same_data_and_set():
    """The set a task read is part of its data: equal dataset fingerprints with different -C sets do not pair;
    a set recorded without a dataset fingerprint still names the data; nothing recorded: unknown."""
    def sets(fp: str) -> dict:
        return {"sets": {C: {"folder": "cache/fmnist-C", "fingerprint": fp}}}

    a, a2, b = ev("a", [], meta=sets("c1")), ev("a2", [], meta=sets("c1")), ev("b", [], meta=sets("c2"))
    assert data_key(a, C) is not None and data_key(a, C) == data_key(a2, C) and data_key(a, C) != data_key(b, C)
    assert data_key(a, schema.CLEAN) == data_key(b, schema.CLEAN)  # the clean split is the same
    bare_set = EvalResult("s", Path("s"), schema.frame([]), sets("c1"), None)  # no dataset fingerprint
    assert data_key(bare_set, C) is not None and data_key(bare_set, C) != data_key(a, C)
    unknown = EvalResult("u", Path("u"), schema.frame([]), {}, None)
    assert data_key(unknown, C) is None
    assert _same_data(a2, a, C) is a2
    assert _same_data(b, a, C) is None and _same_data(a, b, C) is None
    assert _same_data(unknown, unknown, C) is None and _same_data(None, a, C) is None
