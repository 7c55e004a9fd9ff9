"""Robustness metrics exactly as Hendrycks & Dietterich (ICLR 2019) and their reference code define them.

- CE(f, c) = sum_s E(f, c, s) / sum_s E(ref, c, s); mCE = 100 * mean over the benchmark corruptions. The ratio of
  sums, never the mean of per-severity ratios.
- Relative CE(f, c) = sum_s (E(f, c, s) - E_clean(f)) / sum_s (E(ref, c, s) - E_clean(ref)).
- Flip probability and top-5 distance follow `flip_prob` and `ranking_dist` of hendrycks/robustness
  ImageNet-P/test.py: noise perturbations compare every frame with the first; the others compare frame j with
  frame j - d, along each of the d offset chains; mean per sequence first, then over sequences.

These are the one definition of each published -C and -P number: the harness calls them (bench/tasks/corruptions.py,
bench/tasks/perturbations.py, and EvalContext.mean_row for the benchmark means), and the value tests pin them and
check that the rows the tasks write equal them (tests/bench/test_metrics.py). Rows and the
functions that give their values:
- corruptions: top1_err = 100 x `error`; mean_err = 100 x `mean_error`; ce = 100 x `ce`; relative_ce = 100 x
  `relative_ce`; mce, relative_mce (and their `_partial`) = `normalised_mean`.
- perturbations: fp = 100 x `mean` of `flip_probability`; t5d (uT5D) = `mean` of `sequence_t5d`; fr = 100 x `fr`;
  t5d_rel = 100 x `t5d_rel`; mean_fp = 100 x `mean`, mean_t5d = `mean`; mfr, mt5d (and their `_partial`) =
  `normalised_mean`.
Calibration (ECE, NLL, Brier) is defined once, in nsbench/calibration.py.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np


# Denominators are sums of error or flip rates, each a count over at most millions of images or frames (>= 1e-7 when
# not zero, and AlexNet's published rates are >= 1e-4); a sum smaller than this is floating-point residue of a true
# zero (e.g. 5 x ((1 - 0.7) - 0.3) = 2.8e-16, which once made a relative mCE of 1.39e15), so the ratio is undefined.
ZERO = 1e-9


def ratio(num: float, den: float) -> float:
    """num / den, NaN (undefined) when den is zero up to floating-point residue (see ZERO)."""
    return float(num) / float(den) if abs(float(den)) > ZERO else float("nan")


def mean(values: Sequence[float] | np.ndarray) -> float:
    """The plain mean (float64, pairwise summation in the order given). It defines FP and uT5D of a perturbation
    (the mean over its sequences of `flip_probability` / `sequence_t5d`: ImageNet-P/test.py `flip_prob` and
    `ranking_dist`, `result += np.mean(result_for_vid) / len(predictions)`) and mean_fp / mean_t5d (the mean of FP /
    uT5D over the test perturbations, unnormalised)."""
    return float(np.mean(values))


# --------------------------------------------------------------------------------------------------------------- -C

def accuracy(correct: np.ndarray) -> float:
    """Top-1 (or top-5) accuracy (fraction) of per-image outcomes: the share correct. The top1_acc / top5_acc rows of
    every task are 100 x this (clean, -A, attacks, the official shifted sets)."""
    return float(np.mean(correct))


def error(correct: np.ndarray) -> float:
    """E: top-1 error (fraction) of per-image outcomes, 1 - the share correct (ImageNet-C/test.py `show_performance`:
    `errs.append(1 - correct / len(distorted_dataset))`)."""
    return float(1 - np.mean(correct))


def mean_error(errors: Mapping[str, Sequence[float]], corruptions: Iterable[str]) -> float:
    """mean_err (fraction), unnormalised: the mean over `corruptions` of each one's mean error over severities; of one
    corruption, that mean. ImageNet-C/test.py: `show_performance` returns `np.mean(errs)` ("CE (unnormalized)"), and
    the script prints `100 * np.mean(error_rates)` ("mCE (unnormalized by AlexNet errors)")."""
    return mean([mean(errors[c]) for c in corruptions])


def ce(errors: Sequence[float], ref_errors: Sequence[float]) -> float:
    """Corruption error of one corruption: ratio of the summed errors over severities (google-research/augmix
    imagenet.py `compute_mce`: `100 * avg_err / ALEXNET_ERR[i]`, both averages over the same five severities)."""
    if len(errors) != len(ref_errors):
        raise ValueError(f"{len(errors)} severities against {len(ref_errors)} in the normaliser")
    return ratio(np.sum(errors), np.sum(ref_errors))


def relative_ce(errors: Sequence[float], clean_err: float, ref_errors: Sequence[float], ref_clean_err: float) -> float:
    """Relative CE: the summed rise in error over clean, against the normaliser's (Hendrycks & Dietterich, ICLR 2019,
    section 3, "Relative mCE"; ImageNet-C/test.py leaves it out)."""
    num = float(np.sum(np.asarray(errors) - clean_err))
    den = float(np.sum(np.asarray(ref_errors) - ref_clean_err))
    return ratio(num, den)  # undefined when the normaliser does not degrade at all


def normalised_mean(ratios: Sequence[float]) -> float:
    """mCE, relative mCE, mFR and mT5D (x100): the mean of CE / relative CE over the 15 benchmark corruptions
    (augmix imagenet.py `compute_mce`: `mce += ce / 15`), of FR / T5D over the 10 test perturbations (Hendrycks &
    Dietterich, ICLR 2019, section 3). EvalContext.mean_row calls it over the full set, or over the defined members
    of a partial one for the `_partial` rows."""
    return 100 * mean(ratios)


# --------------------------------------------------------------------------------------------------------------- -P

def fr(fp: float, ref_fp: float) -> float:
    """Flip rate FR = FP / FP(ref) (Hendrycks & Dietterich, ICLR 2019, section 3); NaN when the normaliser never
    flips."""
    return ratio(fp, ref_fp)


def t5d_rel(ut5d: float, ref_ut5d: float) -> float:
    """Normalised top-5 distance T5D = uT5D / uT5D(ref) (section 3); NaN when the normaliser's is zero."""
    return ratio(ut5d, ref_ut5d)


def _pairs(n_frames: int, noise: bool, difficulty: int) -> list[tuple[int, int]]:
    """(anchor, frame) index pairs compared in one sequence."""
    if noise:  # every later frame against the clean first frame
        return [(0, j) for j in range(1, n_frames)]
    out = []
    for start in range(difficulty):  # each of the d offset chains, consecutive members compared
        chain = list(range(start, n_frames, difficulty))
        out += list(zip(chain[:-1], chain[1:]))
    return out


def flip_probability(preds: np.ndarray, noise: bool, difficulty: int = 1) -> np.ndarray:
    """Per-sequence flip rate for top-1 predictions `preds` [n_seq, n_frames] (ImageNet-P/test.py `flip_prob`,
    `result_for_vid`); FP of a perturbation is their `mean`."""
    preds = np.asarray(preds)
    pairs = _pairs(preds.shape[1], noise, difficulty)
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])
    return (preds[:, a] != preds[:, b]).mean(axis=1)


def top5_distance(sigma: Sequence[int]) -> int:
    """d(sigma) = sum_{i=1..5} |(i - 1) - min(sigma(i) - 1, 5)|, sigma 1-based ranks (appendix C; ImageNet-P/test.py
    `dist(sigma, mode='top5')` over `cum_sum_top5`)."""
    s = np.asarray(sigma[:5])
    return int(np.abs(np.arange(len(s)) - np.minimum(s - 1, 5)).sum())


def ordinal_ranks(logits: np.ndarray) -> np.ndarray:
    """1-based ranks of each class per row (1 = highest score), ties broken by class index.

    Matches scipy.stats.rankdata(-x, method='ordinal') used by the reference code.
    """
    order = np.argsort(-logits, axis=-1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(1, logits.shape[-1] + 1)[None].repeat(len(logits), 0), axis=-1)
    return ranks


def sequence_t5d(logits: np.ndarray, noise: bool, difficulty: int = 1) -> float:
    """Mean top-5 distance of one sequence of logits [n_frames, C] (ImageNet-P/test.py `ranking_dist`,
    `np.mean(result_for_vid)`); uT5D of a perturbation is the `mean` over its sequences."""
    order = np.argsort(-logits, axis=-1, kind="stable")
    ranks = ordinal_ranks(logits)
    vals = []
    for a, b in _pairs(len(logits), noise, difficulty):
        sigma = ranks[b][order[a]]  # frame b's rank of frame a's i-th class (top5_distance reads the first 5)
        vals.append(top5_distance(sigma))
    return float(np.mean(vals))


def is_noise(perturbation: str) -> bool:
    """The reference code's rule: a perturbation whose name contains 'noise' compares against the first frame."""
    return "noise" in perturbation
