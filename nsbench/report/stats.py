"""Bootstrap intervals over images (or sequences) for every headline number, paired against the baseline.

A *sampler* holds one model's per-item outcomes for one measure and a function that maps bootstrap weights
W [B, n_items] (each row a resample, as counts / n) to B values of the measure. Two samplers over the identical
items share the same W, so a difference model - baseline is a paired bootstrap on identical images. mCE, relative
mCE, mFR and mT5D divide by the normaliser's errors: when the normaliser was evaluated on the same items, its
outcomes are resampled with the same W; otherwise (AlexNet's published table) its denominators are constants,
recovered from the saved rows, and only the model side is resampled.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..schema import MEAN_ERR

B = 2000  # resamples of every interval, and the first draw of every bootstrap p (refined near a Holm threshold)
B_MAX = 128_000  # the most resamples a p is redrawn with (B x 4^3)
LEVEL = 0.95
ALPHA = 1 - LEVEL  # the family-wise error rate Holm's adjustment keeps
POWER = 0.80  # the power a minimum detectable effect is stated at
Z_MC = 3.0  # a bootstrap p is resolved when no Holm threshold lies within Z_MC Monte Carlo standard errors of it
CHUNK = 250


@dataclass
class Sampler:
    items: tuple  # image / sequence ids, in the order the weights use
    fn: Callable[[np.ndarray], np.ndarray]  # W [b, n] -> b values
    point: float  # the value saved in results.csv
    binary: np.ndarray | None = None  # per-item 0/1 outcomes (accuracy measures), for McNemar
    fixed: bool = False  # the measure is constant by definition (the normaliser's own mCE = 100)
    data: str | None = None  # what the items were scored on (dataset fingerprint, split, set); None: unknown


def weights(n: int, seed: int, b: int) -> np.ndarray:
    """b bootstrap resamples of n items as weights (count of each item / n)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, (b, n)) + (np.arange(b) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=b * n).reshape(b, n) / n


def draws(fn: Callable[[np.ndarray], np.ndarray], n: int, seed: int, b: int = B) -> np.ndarray:
    out = [fn(weights(n, seed + 7919 * k, min(CHUNK, b - k * CHUNK))) for k in range((b + CHUNK - 1) // CHUNK)]
    return np.concatenate(out)


def reproduces(s: Sampler) -> bool:
    """The per-item outcomes give back the saved value (else they belong to something else: no interval)."""
    n = len(s.items)
    if n == 0 or not np.isfinite(s.point):
        return False
    got = float(s.fn(np.full((1, n), 1.0 / n))[0])
    return bool(np.isfinite(got) and abs(got - s.point) <= 1e-3 * max(1.0, abs(s.point)))


def quantiles(x: np.ndarray) -> tuple[float, float]:
    """The central LEVEL interval of bootstrap values; none when a tenth of them are not finite."""
    n = len(x)
    x = x[np.isfinite(x)]
    if n == 0 or len(x) < 0.9 * n:
        return np.nan, np.nan
    lo, hi = np.quantile(x, [(1 - LEVEL) / 2, 1 - (1 - LEVEL) / 2])
    return float(lo), float(hi)


def interval(s: Sampler, seed: int) -> tuple[float, float]:
    if s.fixed:
        return s.point, s.point
    return quantiles(draws(s.fn, len(s.items), seed))


def paired(a: Sampler, b: Sampler) -> bool:
    """Image by image only on the same data: equal item ids mean the same images only when both were scored on one
    dataset (equal fingerprints); ids of two different folders of the same size are equal too."""
    return len(a.items) > 0 and a.items == b.items and a.data is not None and a.data == b.data


def difference(a: Sampler, b: Sampler, seed: int, resamples: int = B) -> dict:
    """a - b with a 95% interval, a two-sided p, the standard error of the difference (`interval_se`, for the minimum
    detectable effect) and how many resamples gave them: paired on identical items, else
    two independent bootstraps. For accuracies paired on identical items the p is McNemar's exact test (no Monte
    Carlo error); otherwise the bootstrap's (`bootstrap_p`), from `resamples` draws."""
    if paired(a, b):
        d = draws(lambda w: a.fn(w) - b.fn(w), len(a.items), seed, resamples)
        how = f"paired bootstrap over {len(a.items)} items"
    else:
        d = draws(a.fn, len(a.items), seed, resamples) - draws(b.fn, len(b.items), seed + 1, resamples)
        how = f"unpaired bootstrap ({len(a.items)} vs {len(b.items)} items)"
        if a.data is None or b.data is None:
            how += "; not paired: a dataset fingerprint is missing"
        elif a.data != b.data:
            how += "; not paired: scored on different data (dataset fingerprints or sets differ)"
    lo, hi = quantiles(d)
    out = {"diff": a.point - b.point, "diff_low": lo, "diff_high": hi, "p": bootstrap_p(d), "test": how,
           "se": interval_se(lo, hi), "resamples": int(resamples)}
    if paired(a, b) and a.binary is not None and b.binary is not None:
        out["p"], out["test"] = mcnemar(a.binary, b.binary)
        out["resamples"] = 0  # an exact p: nothing to refine
    return out


def interval_se(lo: float, hi: float) -> float:
    """The standard error a central LEVEL interval implies, (hi - lo) / (2 z): the bootstrap values' standard
    deviation would be the same for a normal difference, but a ratio of means whose denominator comes near zero in
    a few resamples (relative mCE) has tails that make it meaningless; the interval is what the verdict reads."""
    from scipy.stats import norm

    if not (np.isfinite(lo) and np.isfinite(hi)):
        return np.nan
    return float((hi - lo) / (2 * norm.ppf(1 - (1 - LEVEL) / 2)))


def bootstrap_p(d: np.ndarray) -> float:
    """Two-sided bootstrap p of "no difference" from the bootstrap values d of a difference: twice the smaller tail
    (the resamples at or beyond zero), each tail counted as (count + 1) / (resamples + 1) (Davison & Hinkley 1997,
    Bootstrap Methods and their Application, eq. 4.11), so that no p is ever 0: with B resamples the smallest is
    2 / (B + 1). A tenth or more non-finite values give none."""
    n = len(d)
    d = d[np.isfinite(d)]
    if n == 0 or len(d) < 0.9 * n:
        return np.nan
    # w @ x sums rounded fractions: equal resampled values may differ by ~1e-16 and a tie (d = 0, counted in
    # both tails) would fall on one side by rounding noise alone
    d = np.round(d, 9)
    tail = min(int((d <= 0).sum()), int((d >= 0).sum()))
    return float(min(1.0, 2 * (tail + 1) / (len(d) + 1)))


def resolved(p: float, resamples: int, family: int) -> bool:
    """Whether a bootstrap p from `resamples` draws decides the same under Holm in a family of `family` tests
    whatever its Monte Carlo error: Holm compares each p with some ALPHA / k (k = 1..family), and none of those
    lies within Z_MC standard errors of p (the standard error of twice a tail frequency, 2 sqrt(q (1 - q) / B) with
    q = p / 2, at least one resample's step). An exact p (resamples 0) is always resolved."""
    if resamples <= 0 or not np.isfinite(p) or family < 1:
        return True
    q = min(p / 2, 0.5)
    se = max(2 * np.sqrt(q * (1 - q) / resamples), 2 / (resamples + 1))
    thresholds = ALPHA / np.arange(1, family + 1)
    return not bool(np.any(np.abs(thresholds - p) <= Z_MC * se))


def refine(p: float, resamples: int, family: int, redraw: Callable[[int], dict]) -> tuple[dict | None, str]:
    """Redraw a bootstrap p that is not `resolved` in a family of `family` with 4x the resamples until it is, or
    until B_MAX: (the last redraw's `difference` dict, None when none was needed; a note for the test when the p is
    still within Monte Carlo error of a Holm threshold at the cap, else "")."""
    d, b = None, resamples
    while b and not resolved(p, b, family) and b < B_MAX:
        b = min(4 * b, B_MAX)
        d = redraw(b)
        p = d["p"]
    if b and not resolved(p, b, family):
        return d, f"p within Monte Carlo error of a Holm threshold at {b:,} resamples"
    return d, ""


def mde(se: float, family: int, dof: float | None = None) -> float:
    """The minimum detectable effect: the true difference a two-sided test at ALPHA / family (Bonferroni's level,
    the strictest that Holm's step-down uses in a family of `family`) detects with probability POWER, given the
    difference's standard error: (z_{1 - ALPHA / (2 family)} + z_POWER) x se, with t quantiles on `dof` degrees of
    freedom for a t-test (Cohen 1988, ch. 2; the normal approximation for bootstrap and McNemar tests)."""
    from scipy.stats import norm, t

    if not (np.isfinite(se) and se > 0) or family < 1:
        return np.nan
    level = ALPHA / family
    if dof is not None and np.isfinite(dof) and dof > 0:
        return float((t.ppf(1 - level / 2, dof) + t.ppf(POWER, dof)) * se)
    return float((norm.ppf(1 - level / 2) + norm.ppf(POWER)) * se)


def mcnemar(a: np.ndarray, b: np.ndarray) -> tuple[float, str]:
    from scipy.stats import binomtest

    n01, n10 = int((a & ~b).sum()), int((~a & b).sum())
    p = binomtest(n01, n01 + n10, 0.5).pvalue if n01 + n10 else 1.0
    return float(p), f"exact McNemar ({n01} vs {n10} discordant of {len(a)}); interval: paired bootstrap"


# ----------------------------------------------------------------------------------------- samplers per measure

def accuracy(x: np.ndarray, items: tuple, point: float) -> Sampler:
    """Top-1 accuracy (%) from per-item 0/1 outcomes."""
    x = np.asarray(x, float)
    return Sampler(items, lambda w: 100 * (w @ x), point, binary=x.astype(bool))


def corruption(err_cells: np.ndarray, groups: np.ndarray, items: tuple, point: float, *, kind: str,
               den: np.ndarray | Callable | None = None, clean: tuple[float, float] = (0.0, 0.0)) -> Sampler:
    """-C measures from correct [cells, n] and the corruption index of each cell (groups [cells]).

    kind: the mean's metric. The mean error (schema.MEAN_ERR): 100 x mean over corruptions of the mean error; any
    other: 100 x mean of sum_s (E - E_clean) / den_c, mCE with E_clean = 0 (clean's default), relative mCE with the
    model's clean error. den: constants [C] (in %), or a function W -> [b, C] for a normaliser resampled on the same
    items. clean: (model clean error %, its severities per corruption).
    """
    x = np.asarray(err_cells, float)
    n_c = int(groups.max()) + 1
    g = np.zeros((len(groups), n_c))
    g[np.arange(len(groups)), groups] = 1.0
    per_c = g.sum(0)

    def fn(w):
        sums = (100 * (1 - w @ x.T)) @ g  # [b, C] summed errors (%) over severities
        if kind == MEAN_ERR:
            return (sums / per_c).mean(1)
        sums = sums - clean[0] * per_c  # exactly sums when clean[0] is 0 (mCE)
        d = den(w) if callable(den) else np.broadcast_to(den, sums.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            return 100 * (sums / d).mean(1)

    return Sampler(items, fn, point)


def perturbation(v: np.ndarray, items: tuple, point: float, *, den: np.ndarray | Callable | None = None,
                 scale: float = 100.0) -> Sampler:
    """-P measures from per-sequence values v [P, n] (flip rate or top-5 distance): scale x mean_p(mean / den_p);
    den None gives the plain mean over perturbations (scale 100 turns flip rates into %)."""
    v = np.asarray(v, float)

    def fn(w):
        means = w @ v.T  # [b, P]
        if den is None:
            return scale * means.mean(1)
        d = den(w) if callable(den) else np.broadcast_to(den, means.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            return scale * (means / d).mean(1)

    return Sampler(items, fn, point)


def holm(p) -> np.ndarray:
    """Holm's step-down adjustment (Holm 1979) of a family of p values, the one-step-per-rank form:
    sort ascending, p_(i) x (m - i + 1) for i = 1..m, a running maximum so the adjusted values keep the raw order,
    capped at 1. Non-finite entries (no test) are left out of the family and stay NaN."""
    p = np.asarray(p, float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    scaled = np.minimum(1.0, p[order] * (m - np.arange(m)))
    out[order] = np.maximum.accumulate(scaled)
    return out


ZERO_VARIANCE = ("the per-seed differences are all equal (zero variance): no interval or test; a constant "
                 "difference across seeds usually means the seeds do not vary what differs")


def seeds_interval(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95% t-interval over seeds."""
    from scipy.stats import t

    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return (float(v.mean()) if len(v) else np.nan), np.nan, np.nan
    half = t.ppf(1 - (1 - LEVEL) / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return float(v.mean()), float(v.mean() - half), float(v.mean() + half)


def seeds_difference(a: dict, b: dict) -> dict:
    """Across seeds: a, b map seed -> value. Paired by seed when both hold the same seeds, else Welch."""
    from scipy.stats import t, ttest_1samp, ttest_ind

    common = sorted(set(a) & set(b))
    if len(common) >= 2 and len(common) == len(a) == len(b):
        d = np.array([a[s] - b[s] for s in common], float)
        test = f"paired t over {len(d)} seeds"
        if np.ptp(d) == 0:  # a t-interval of zero width would call any constant difference certain
            return {"diff": float(d.mean()), "diff_low": np.nan, "diff_high": np.nan, "p": np.nan, "test": test,
                    "flag": ZERO_VARIANCE}
        m, lo, hi = seeds_interval(d)
        return {"diff": m, "diff_low": lo, "diff_high": hi, "p": float(ttest_1samp(d, 0.0).pvalue), "test": test,
                "se": float(d.std(ddof=1) / np.sqrt(len(d))), "dof": float(len(d) - 1)}
    x, y = np.array(list(a.values()), float), np.array(list(b.values()), float)
    if len(x) < 2 or len(y) < 2:
        return {"diff": np.nan, "diff_low": np.nan, "diff_high": np.nan, "p": np.nan, "test": ""}
    va, vb = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se = np.sqrt(va + vb)
    if se == 0:
        return {"diff": float(x.mean() - y.mean()), "diff_low": np.nan, "diff_high": np.nan, "p": np.nan,
                "test": "Welch t over seeds", "flag": "both sides are constant across seeds (zero variance): no "
                                                     "interval or test"}
    dof = (va + vb) ** 2 / (va**2 / (len(x) - 1) + vb**2 / (len(y) - 1)) if va + vb > 0 else 1.0
    half = t.ppf(1 - (1 - LEVEL) / 2, dof) * se
    m = float(x.mean() - y.mean())
    p = float(ttest_ind(x, y, equal_var=False).pvalue)
    return {"diff": m, "diff_low": m - half, "diff_high": m + half, "p": p, "test": "Welch t over seeds", "se": float(se),
            "dof": float(dof)}
