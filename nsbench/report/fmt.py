"""Numbers and names formatted for people: p < 0.001, intervals to the precision their width allows, corruption
names as the papers print them, metric and task names as schema.py labels them, no Python reprs (None, {...}) on
the page."""
from __future__ import annotations

import math

import numpy as np

from ..schema import METRICS, TASK_LABELS

CORRUPTION_NAMES = {
    "gaussian_noise": "Gaussian noise", "shot_noise": "Shot noise", "impulse_noise": "Impulse noise",
    "defocus_blur": "Defocus blur", "glass_blur": "Glass blur", "motion_blur": "Motion blur", "zoom_blur": "Zoom blur",
    "snow": "Snow", "frost": "Frost", "fog": "Fog", "brightness": "Brightness", "contrast": "Contrast",
    "elastic_transform": "Elastic", "pixelate": "Pixelate", "jpeg_compression": "JPEG", "speckle_noise": "Speckle noise",
    "gaussian_blur": "Gaussian blur", "spatter": "Spatter", "saturate": "Saturate", "translate": "Translate",
    "rotate": "Rotate", "tilt": "Tilt", "scale": "Scale", "shear": "Shear",
}
# column headings as the ImageNet-C paper's tables print them (the family row above says noise / blur / ...)
SHORT_NAMES = {"gaussian_noise": "Gauss.", "shot_noise": "Shot", "impulse_noise": "Impulse", "defocus_blur": "Defocus",
               "glass_blur": "Glass", "motion_blur": "Motion", "zoom_blur": "Zoom", "brightness": "Bright",
               "elastic_transform": "Elastic", "jpeg_compression": "JPEG", "speckle_noise": "Speckle",
               "gaussian_blur": "G. blur"}


def finite(v) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def num(v, digits: int = 1) -> str:
    return f"{float(v):.{digits}f}" if finite(v) else "–"


def signed(v, digits: int = 1) -> str:
    return f"{float(v):+.{digits}f}" if finite(v) else "–"


def ci(lo, hi, digits: int = 1) -> str:
    return f"[{float(lo):.{digits}f}, {float(hi):.{digits}f}]" if finite(lo) and finite(hi) else ""


def pvalue(p) -> str:
    if not finite(p):
        return ""
    p = float(p)
    if p < 0.001:
        return "p < 0.001"
    return f"p = {p:.3f}" if p < 0.1 else f"p = {p:.2f}"


def pvalues(p, adjusted) -> str:
    """The raw p and, beside it, its Holm-adjusted value: "p = 0.012 (Holm 0.21)"."""
    raw = pvalue(p)
    if not raw or not finite(adjusted):
        return raw
    return f"{raw} (Holm {pvalue(adjusted).removeprefix('p ').removeprefix('= ')})"


def value_or_note(v, note: str = "", digits: int = 1) -> str:
    """A saved value, or why there is none: "failed (reason)", "undefined", never nan."""
    if finite(v):
        return num(v, digits)
    note = str(note or "")
    if note.startswith("undefined"):
        return "undefined"
    return f"failed ({note})" if note else "–"


def metric_label(metric: str) -> str:
    """A metric's name on a page (schema.METRICS): "mCE", "flip probability"."""
    m = METRICS.get(metric)
    return m.label if m else str(metric).replace("_", " ")


def task_label(task: str) -> str:
    """A task's name on a page (schema.TASK_LABELS): "-C (corruptions)"."""
    return TASK_LABELS.get(task, task)


def short_name(condition: str) -> str:
    return SHORT_NAMES.get(condition) or name(condition)


def name(condition: str) -> str:
    return CORRUPTION_NAMES.get(condition, str(condition).replace("_", " "))


def text(v) -> str:
    """Any config value as plain text: None -> –, dicts as `key value` pairs, lists comma-separated."""
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    if isinstance(v, dict):
        return ", ".join(f"{str(k).replace('_', ' ')} {text(x)}" for k, x in v.items()) or "–"
    if isinstance(v, (list, tuple)):
        return ", ".join(text(x) for x in v) or "–"
    return str(v)


def params(n) -> str:
    if not finite(n):
        return "–"
    n = float(n)
    return f"{n / 1e6:.1f} M" if n >= 1e6 else f"{n / 1e3:.0f} k" if n >= 1e3 else f"{n:.0f}"
