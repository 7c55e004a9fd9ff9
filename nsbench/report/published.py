"""Published against measured: each shipped published number (reference_data/published_scorecard.csv) whose model
name matches a scored model (its label or its `timm:` / `torchvision:` name), beside what nsbench measured, the
difference with the measured number's 95% interval, and, where the published number lies outside that interval
(widened by the published number's rounding) and the test of it survives the page's Holm adjustment, the likely
causes that can be checked from the saved metadata: preprocessing (image size, crop, interpolation), normaliser,
label set, a subset of the images, precision. Each comparison is a test of the page's one family (compare.py): its p
is two-sided from the normal the measured interval implies, on the distance beyond the rounding."""
from __future__ import annotations

import pandas as pd

import numpy as np
from scipy.stats import norm

from ..reference import published_scorecard
from ..schema import CLEAN, CORRUPTIONS, IMAGENET_SKETCH, METRICS, TOP1_ACC, usual_effect
from . import fmt, shifts, stats
from .load import EvalResult

COLUMNS = ["model", "published_model", "set", "metric", "published", "measured", "measured_low", "measured_high",
           "diff", "diff_low", "diff_high", "tolerance", "p_value", "p_adjusted", "test", "verdict", "se", "mde",
           "usual_effect", "resamples", "higher_is_better", "outside", "causes", "source", "note"]
PHOTO_SETS = (CLEAN, IMAGENET_SKETCH, "imagenet_a", "imagenet_r")  # resized + cropped (ImageNet-C files are not)


def names(r: EvalResult) -> set[str]:
    arch = (r.meta.get("model") or {}).get("arch")
    return {r.label} | ({str(arch)} if arch else set())


def _rounding(value_text: str) -> float:
    """Half a unit of the published number's last printed digit."""
    digits = len(value_text.split(".")[1]) if "." in value_text else 0
    return 0.5 * 10 ** (-digits)


def _measured(r: EvalResult, pub: dict, head: pd.DataFrame) -> shifts.Measured | None:
    """What nsbench measured of a published number: a top-1 accuracy on its set, or a headline -C measure (the
    published mCE) on ImageNet-C."""
    if pub["metric"] == TOP1_ACC:
        return shifts.accuracy(r, pub["set"])
    if pub["set"] == shifts.IMAGENET_C:
        h = head[(head.model == r.label) & (head.measure == pub["metric"])] if len(head) else head
        if not len(h) or not fmt.finite(h.value.iloc[0]):
            return None
        h = h.iloc[0]
        return shifts.Measured(float(h.value), float(h.ci_low), float(h.ci_high), int(h.n) if fmt.finite(h.n) else 0)
    return None


def causes(r: EvalResult, pub: dict, m: shifts.Measured) -> list[str]:
    """What differs between the published protocol and this measurement, from the saved metadata."""
    pre = r.meta.get("preprocessing") or {}
    out = []
    size = pre.get("image_size")
    if pub["img_size"] and size and int(size) != pub["img_size"]:
        out.append(f"preprocessing: measured at {size} px, published at {pub['img_size']} px")
    if pub["set"] in PHOTO_SETS or pub["set"].startswith(shifts.V2):
        crop = pre.get("crop_pct")
        if pub["crop_pct"] and crop and abs(float(crop) - pub["crop_pct"]) > 1e-3:
            out.append(f"preprocessing: crop_pct {float(crop):g} measured, {pub['crop_pct']:g} published")
        interp = pre.get("interpolation")
        if pub["interpolation"] and interp and interp != pub["interpolation"]:
            out.append(f"preprocessing: {interp} resizing measured, {pub['interpolation']} published")
    if pub["set"] == shifts.IMAGENET_C and pub["metric"] != TOP1_ACC:  # a normalised -C number (mCE)
        used = r.rows[(r.rows.task == CORRUPTIONS) & (r.rows.metric == pub["metric"])].normaliser
        used = str(used.iloc[0]) if len(used) and isinstance(used.iloc[0], str) else "none"
        if pub["normaliser"] and used != pub["normaliser"]:
            out.append(f"normaliser: {used} measured, {pub['normaliser']} published")
    if pub["set"] in ("imagenet_a", "imagenet_r") and pub["label_set"] != "200":
        out.append(f"label set: measured through the 200-class subset, published {pub['label_set']}-way")
    if pub["n_images"] and m.n and m.n != pub["n_images"]:
        out.append(f"images: {m.n:,} measured of the {pub['n_images']:,} in the released set")
    if str(r.meta.get("precision") or "fp32") != "fp32":
        out.append(f"precision: {r.meta.get('precision')} measured")
    return out


def published_vs_measured(evals: list[EvalResult], head: pd.DataFrame) -> pd.DataFrame:
    """One row per published number matched to a scored model, with its test (p_value) not yet adjusted and
    `outside` undecided; `decide` sets both once the family is adjusted (compare.py does it for a report)."""
    rows = []
    for r in evals:
        mine = names(r)
        for pub in published_scorecard():
            if not mine & set(pub["match"]):
                continue
            m = _measured(r, pub, head)
            if m is None:
                continue
            tol = _rounding(pub["value_text"])
            diff = m.value - pub["value"]
            lo, hi = m.low - pub["value"], m.high - pub["value"]
            p, test, se = _test(m, pub["value"], tol, pub["metric"], stats.interval_se(lo, hi))
            rows.append({"model": r.label, "published_model": pub["model"], "set": pub["set"], "metric": pub["metric"],
                         "published": pub["value"], "measured": m.value, "measured_low": m.low, "measured_high": m.high,
                         "diff": diff, "diff_low": lo, "diff_high": hi, "tolerance": tol, "p_value": p,
                         "p_adjusted": np.nan, "test": test, "verdict": "", "se": se, "mde": np.nan,
                         "usual_effect": usual_effect(pub["metric"]), "resamples": 0,
                         "higher_is_better": METRICS[pub["metric"]].higher_is_better,  # the metric's (mCE: lower)
                         "outside": False, "causes": "", "source": pub["source"],
                         "note": "; ".join(x for x in (pub["note"], m.note) if x), "_pub": pub, "_eval": r, "_m": m})
    frame = pd.DataFrame(rows, columns=COLUMNS + ["_pub", "_eval", "_m"])
    return frame


def _test(m: shifts.Measured, published: float, tol: float, metric: str, se: float) -> tuple[float, str, float]:
    """(p, test, standard error) of "the measured number is the published one" (+- its rounding): for a top-1
    accuracy with its image count, the exact binomial test of the correct count against the nearest published rate
    within the rounding (standard error sqrt(rate (1 - rate) / n)); otherwise two-sided from the normal the measured
    interval implies, on the distance beyond the rounding."""
    from scipy.stats import binomtest

    if metric == TOP1_ACC and m.n > 0:
        k = int(round(m.value / 100 * m.n))
        rate = min(max(k / m.n, (published - tol) / 100), (published + tol) / 100)
        rate = min(max(rate, 0.0), 1.0)
        return (float(binomtest(k, m.n, rate).pvalue), f"exact binomial ({k} of {m.n} right against {100 * rate:.4g}%)",
                float(100 * np.sqrt(rate * (1 - rate) / m.n)))
    if fmt.finite(se) and se > 0:
        return (float(2 * norm.sf(max(0.0, abs(m.value - published) - tol) / se)),
                "normal from the measured 95% interval, beyond the published number's rounding", se)
    return np.nan, "", se


def decide(frame: pd.DataFrame) -> pd.DataFrame:
    """After the family's adjustment: `outside` where the published number, +- its rounding, lies outside the
    measured interval and the adjusted p is below ALPHA; the checkable causes of each published number beyond the
    interval; the verdict; the working columns dropped."""
    for i, x in frame.iterrows():
        known = fmt.finite(x.diff_low) and fmt.finite(x.diff_high)
        beyond = known and (x.diff_low - x.tolerance > 0 or x.diff_high + x.tolerance < 0)
        significant = not fmt.finite(x.p_adjusted) or x.p_adjusted < stats.ALPHA
        outside = bool(beyond and significant)
        why = causes(x._eval, x._pub, x._m) if beyond else []
        if beyond and not why:
            why = ["none of preprocessing, normaliser, label set, image count or precision differs: check the "
                   "weights' version and the library versions in the provenance"]
        frame.at[i, "outside"] = outside
        frame.at[i, "causes"] = "; ".join(why)
        powered = not (fmt.finite(x.mde) and fmt.finite(x.usual_effect) and x.mde > x.usual_effect)
        frame.at[i, "verdict"] = ("outside the interval" if outside else "no interval" if not known
                                  else "outside the interval, not after Holm adjustment" if beyond
                                  else "within" if powered else f"underpowered (MDE {fmt.num(x.mde, 2)})")
    return frame.drop(columns=["_pub", "_eval", "_m"]).astype({"outside": bool})


def table(frame: pd.DataFrame) -> list[dict]:
    out = []
    for _, x in frame.iterrows():
        metric = "top-1 %" if x.metric == TOP1_ACC else fmt.metric_label(x.metric)
        out.append({"model": x.model, "published_model": x.published_model, "set": shifts.label(x.set), "metric": metric,
                    "published": fmt.num(x.published, 2), "measured": fmt.num(x.measured, 2),
                    "ci": fmt.ci(x.measured_low, x.measured_high, 2), "diff": fmt.signed(x["diff"], 2),
                    "diff_ci": fmt.ci(x.diff_low, x.diff_high, 2),
                    "flag": x.verdict, "p": fmt.pvalues(x.p_value, x.p_adjusted),
                    "cls": "bad" if x.outside else "", "causes": x.causes, "source": x.source, "note": x.note})
    return out

