"""Robustness metrics exactly as Hendrycks & Dietterich (ICLR 2019) and their reference code define them.

- CE(f, c) = sum_s E(f, c, s) / sum_s E(ref, c, s); mCE = 100 * mean over the benchmark corruptions. The ratio of
  sums, never the mean of per-severity ratios.
- Relative CE(f, c) = sum_s (E(f, c, s) - E_clean(f)) / sum_s (E(ref, c, s) - E_clean(ref)).
- Flip probability and top-5 distance follow `flip_prob` and `ranking_dist` of hendrycks/robustness
  ImageNet-P/test.py: noise perturbations compare every frame with the first; the others compare frame j with
  frame j - d, along each of the d offset chains; mean per sequence first, then over sequences.
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


def ce(errors: Sequence[float], ref_errors: Sequence[float]) -> float:
    """Corruption error of one corruption: ratio of the summed errors over severities."""
    if len(errors) != len(ref_errors):
        raise ValueError(f"{len(errors)} severities against {len(ref_errors)} in the normaliser")
    return ratio(np.sum(errors), np.sum(ref_errors))


def relative_ce(errors: Sequence[float], clean_err: float, ref_errors: Sequence[float], ref_clean_err: float) -> float:
    num = float(np.sum(np.asarray(errors) - clean_err))
    den = float(np.sum(np.asarray(ref_errors) - ref_clean_err))
    return ratio(num, den)  # undefined when the normaliser does not degrade at all


def mce(errors: Mapping[str, Sequence[float]], ref: Mapping[str, Sequence[float]], corruptions: Iterable[str]) -> float:
    """100 x mean CE over `corruptions` (those present in both `errors` and `ref`)."""
    names = [c for c in corruptions if c in errors and c in ref]
    if not names:
        return float("nan")
    return 100.0 * float(np.mean([ce(errors[c], ref[c]) for c in names]))


def relative_mce(errors, clean_err, ref, ref_clean_err, corruptions) -> float:
    names = [c for c in corruptions if c in errors and c in ref]
    if not names:
        return float("nan")
    return 100.0 * float(np.mean([relative_ce(errors[c], clean_err, ref[c], ref_clean_err) for c in names]))


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
    """Per-sequence flip rate for top-1 predictions `preds` [n_seq, n_frames]."""
    preds = np.asarray(preds)
    pairs = _pairs(preds.shape[1], noise, difficulty)
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])
    return (preds[:, a] != preds[:, b]).mean(axis=1)


def top5_distance(sigma: Sequence[int]) -> int:
    """d(sigma) = sum_{i=1..5} |(i - 1) - min(sigma(i) - 1, 5)|, sigma 1-based ranks (appendix C)."""
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
    """Mean top-5 distance of one sequence of logits [n_frames, C]."""
    order = np.argsort(-logits, axis=-1, kind="stable")
    ranks = ordinal_ranks(logits)
    k = min(5, logits.shape[1])
    vals = []
    for a, b in _pairs(len(logits), noise, difficulty):
        sigma = ranks[b][order[a][:k]]  # frame b's rank of frame a's i-th class
        vals.append(np.abs(np.arange(k) - np.minimum(sigma - 1, 5)).sum())
    return float(np.mean(vals))


def is_noise(perturbation: str) -> bool:
    """The reference code's rule: a perturbation whose name contains 'noise' compares against the first frame."""
    return "noise" in perturbation
