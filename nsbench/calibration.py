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
