"""Calibration of a classifier's softmax: ECE, NLL and Brier score, as google-research/robustness_metrics defines them.

- ECE: 15 equal-width bins of the top-1 probability over [0, 1] (robustness_metrics/metrics/uncertainty.py,
  `_KerasECEMetric(num_bins=15)`, binned with `tf.histogram_fixed_width_bins(score, [0., 1.], nbins=15)`: bin
  floor(15 * p), clipped to 0..14, so p = 1 falls in the last bin); per bin |accuracy - mean confidence|, weighted
  by the bin's share of images; empty bins drop out. Equivalently sum_b |sum_{i in b} (correct_i - conf_i)| / n,
  which is the form that bootstraps as a weighted sum (report/calibration_table.py).
- NLL: mean of -log p(true class) in nats, as robustness_metrics' `nll` computes it (metrics/uncertainty.py lines
  1258-1279, NegativeLogLikelihood: tf.keras.metrics.SparseCategoricalCrossentropy() on the probabilities). Keras
  clips the probabilities to [eps, 1 - eps], eps = 1e-7, takes their log and hands that to
  tf.nn.sparse_softmax_cross_entropy_with_logits (tf_keras/backend.py sparse_categorical_crossentropy), so the
  clipped probabilities are renormalised: nll = -log(c_y / sum_k c_k), c = clip(p, 1e-7, 1 - 1e-7). No image
  costs more than log(1 + C * 1e-7) - log(1e-7), about 16.12 nats for C <= 1000; an image whose probabilities all
  lie inside [1e-7, 1 - 1e-7] keeps -log p(y). Computed here in float64 (Keras: float32).
- Brier: mean of sum_k (p_k - 1[k = y])^2 (robustness_metrics `brier`: num_classes x the mean squared error of the
  one-hot vector), between 0 and 2.
- Temperature scaling (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017, section 4.2): one
  scalar T > 0 divides the logits, T chosen to minimise the NLL of softmax(z / T) on held-out images; the top-1
  (so accuracy) does not move. The mean NLL is convex in 1 / T (a log-sum-exp of linear functions minus a linear
  one), so its minimum is where the derivative, mean(E_softmax[z] - z_y) in 1 / T, changes sign: found by bisection
  in log(1 / T) within T_RANGE. The fit uses the plain log-softmax NLL (no clip); the rows after scaling are the
  three above, computed on the scaled probabilities.
- Label sets (ImageNet-A / -R): the probabilities are restricted to the set and renormalised
  (robustness_metrics `use_dataset_labelset=True`, metrics/base.py `_map_labelset`), i.e. a softmax over the masked
  logits.

Numbers only (numpy): the harness (bench/calibration_rows.py) makes results rows from them, the report bootstraps
them (report/calibration_table.py), so both use this one binning.
"""
from __future__ import annotations

import numpy as np

ECE_BINS = 15  # robustness_metrics metrics/uncertainty.py: ExpectedCalibrationError(num_bins=15)
# Keras' epsilon, the probability clip of SparseCategoricalCrossentropy: tf_keras/backend_config.py line 26
# `_EPSILON = 1e-7`, applied in tf_keras/backend.py lines 5733-5735 (keras-team/tf-keras dd0a723)
NLL_EPSILON = 1e-7
# names the NLL definition; cached per-image cells written under another are scored again (bench/context.py)
NLL_DEFINITION = "keras-clip-1e-7"
PER_IMAGE = ("confidence", "nll", "brier")  # the per-image columns calibration adds next to `correct`
T_RANGE = (0.01, 100.0)  # temperatures searched; a fit at either end is reported as at the bound


def per_image(logits: np.ndarray, labels: np.ndarray, mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """pred, correct, confidence (top-1 probability), nll and brier per image from logits [n, C] (restricted to
    the `mask` columns first when given: labels then index the mask)."""
    z = np.asarray(logits, np.float64)
    if mask is not None:
        z = z[:, np.asarray(mask, np.int64)]
    labels = np.asarray(labels, np.int64)
    if len(z) == 0:
        empty = np.zeros(0)
        return {"pred": np.zeros(0, np.int64), "correct": np.zeros(0, bool), "confidence": empty, "nll": empty,
                "brier": empty}
    z = z - z.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    p = np.exp(logp)
    rows = np.arange(len(z))
    pred = p.argmax(1)
    p_true = p[rows, labels]
    return {"pred": pred, "correct": pred == labels, "confidence": p.max(1), "nll": nll(p, labels),
            "brier": (p**2).sum(1) - 2 * p_true + 1.0}


def nll(p: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-image NLL from probabilities [n, C] as Keras' sparse_categorical_crossentropy(from_logits=False) computes
    it: clip to [NLL_EPSILON, 1 - NLL_EPSILON], log, then sparse_softmax_cross_entropy_with_logits on those logs
    (tf_keras/backend.py lines 5733-5735 and 5777-5782), i.e. -log(c_y / sum_k c_k)."""
    c = np.clip(p, NLL_EPSILON, 1 - NLL_EPSILON)
    return np.log(c.sum(1)) - np.log(c[np.arange(len(c)), labels])


def bins(confidence: np.ndarray, n_bins: int = ECE_BINS) -> np.ndarray:
    """tf.histogram_fixed_width_bins over [0, 1]: floor(n_bins * p), clipped to the first and last bin."""
    return np.clip(np.floor(np.asarray(confidence, np.float64) * n_bins).astype(np.int64), 0, n_bins - 1)


def ece(confidence: np.ndarray, correct: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """Expected calibration error as a fraction (0..1)."""
    conf = np.asarray(confidence, np.float64)
    if len(conf) == 0:
        return float("nan")
    gap = np.bincount(bins(conf, n_bins), weights=np.asarray(correct, np.float64) - conf, minlength=n_bins)
    return float(np.abs(gap).sum() / len(conf))


def ece_weighted(w: np.ndarray, confidence: np.ndarray, correct: np.ndarray, n_bins: int = ECE_BINS) -> np.ndarray:
    """ECE (fraction) of each bootstrap resample: w [b, n] holds each image's count / n (rows sum to 1)."""
    conf = np.asarray(confidence, np.float64)
    onehot = np.zeros((len(conf), n_bins))
    onehot[np.arange(len(conf)), bins(conf, n_bins)] = np.asarray(correct, np.float64) - conf
    return np.abs(w @ onehot).sum(1)


def summary(z: dict[str, np.ndarray]) -> dict[str, float]:
    """ece (%), nll, brier of one set of per-image values: the values of the published rows (bench/calibration.rows),
    nll and brier the means over the images of `per_image`'s."""
    return {"ece": 100 * ece(z["confidence"], z["correct"]), "nll": float(np.mean(z["nll"])),
            "brier": float(np.mean(z["brier"]))}


def _nll_slope(z: np.ndarray, labels: np.ndarray, beta: float) -> float:
    """d/d beta of the mean of -log softmax(beta z)_y: mean over images of E_softmax(beta z)[z] - z_y."""
    s = beta * z
    s = s - s.max(1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(1, keepdims=True)
    return float(((p * z).sum(1) - z[np.arange(len(z)), labels]).mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray, steps: int = 60) -> float:
    """The temperature T minimising the mean NLL of softmax(logits / T) over these images (held out from the ones it
    will be applied to), within T_RANGE. NaN for no images."""
    z = np.asarray(logits, np.float64)
    labels = np.asarray(labels, np.int64)
    if len(z) == 0:
        return float("nan")
    lo, hi = np.log(1 / T_RANGE[1]), np.log(1 / T_RANGE[0])  # log(beta), beta = 1 / T
    if _nll_slope(z, labels, np.exp(lo)) >= 0:
        return T_RANGE[1]
    if _nll_slope(z, labels, np.exp(hi)) <= 0:
        return T_RANGE[0]
    for _ in range(steps):  # the slope rises with beta: keep the sign change inside [lo, hi]
        mid = (lo + hi) / 2
        if _nll_slope(z, labels, np.exp(mid)) < 0:
            lo = mid
        else:
            hi = mid
    return float(1 / np.exp((lo + hi) / 2))


def cross_fit_folds(n: int, seed: int, folds: int = 2) -> np.ndarray:
    """Each of `n` images' fold (0..folds-1): a seeded permutation dealt round-robin, so folds differ by at most one
    image."""
    out = np.empty(n, np.int64)
    out[np.random.default_rng(seed).permutation(n)] = np.arange(n) % folds
    return out
