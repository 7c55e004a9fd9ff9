"""Benchmark figures rendered with matplotlib (Agg) to inline PNGs (data: URIs): the page needs no network.

Each figure is small (one panel per image), so the page can lay panels out in a grid that wraps at narrow
widths; mathtext is off, so a label holding `$` is drawn as typed; axes share their scale where panels compare."""
from __future__ import annotations

import base64
import functools
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FixedLocator, MaxNLocator, NullLocator, ScalarFormatter  # noqa: E402

from ..schema import measure  # noqa: E402

# ImageNet-C's corruption families (Hendrycks & Dietterich, ICLR 2019, figure 1; "extra" = the validation four).
FAMILIES = {
    "noise": ["gaussian_noise", "shot_noise", "impulse_noise"],
    "blur": ["defocus_blur", "glass_blur", "motion_blur", "zoom_blur"],
    "weather": ["snow", "frost", "fog", "brightness"],
    "digital": ["contrast", "elastic_transform", "pixelate", "jpeg_compression"],
    "extra": ["speckle_noise", "gaussian_blur", "spatter", "saturate"],
}
STYLE = {"text.parse_math": False, "font.size": 10, "axes.titlesize": 11, "legend.fontsize": 8,
         "figure.constrained_layout.use": True}
MARKERS = "osD^vP*X"


def figure(fn):
    """Draw inside the report's style (mathtext off: labels are data, never markup)."""
    @functools.wraps(fn)
    def wrapper(*a, **k):
        with plt.rc_context(STYLE):
            return fn(*a, **k)
    return wrapper


def png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def short(label: str, n: int = 28) -> str:
    label = str(label)
    return label if len(label) <= n else label[: n - 1] + "…"


@figure
def severity_by_family(curves: pd.DataFrame, clean: dict[str, float]) -> list[tuple[str, str]]:
    """One panel per corruption family: accuracy against severity (0 = clean), all on the same y-axis."""
    if curves.empty:
        return []
    lo = min(curves.acc.min(), *[v for v in clean.values() if np.isfinite(v)])
    ylim = (max(0.0, np.floor(lo / 10) * 10 - 5), 100.0)
    out = []
    for fam, names in FAMILIES.items():
        sub = curves[curves.corruption.isin(names)]
        if sub.empty:
            continue
        fig, ax = plt.subplots(figsize=(3.6, 3.0))
        for i, (model, g) in enumerate(sub.groupby("model", sort=False)):
            m = g.groupby("severity").acc.mean()
            ax.plot([0, *m.index.tolist()], [clean.get(model, np.nan), *m.values.tolist()], marker=MARKERS[i % 8],
                    label=short(model))
        ax.set(title=fam, xlabel="severity (0 = clean)", ylabel="top-1 accuracy (%)", ylim=ylim)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left")
        out.append((f"{fam}: mean over {', '.join(n.replace('_', ' ') for n in names if n in set(sub.corruption))}", png(fig)))
    return out


@figure
def dots(table: pd.DataFrame, xlabel: str, names: dict[str, str], ref: float | None = 100.0,
         intervals: dict | None = None) -> str | None:
    """Per-condition values (rows) for each model (columns) as a dot plot, each dot with its 95% interval
    (`intervals[(model, condition)] = (low, high)`) where known; the axis spans the values, not zero (intervals
    beyond it are cut at its edge), and turns logarithmic (ratios around the reference) when the values spread
    over more than a factor 2.5."""
    t = table.apply(pd.to_numeric, errors="coerce")
    if t.empty or not np.isfinite(t.to_numpy(float)).any():
        return None
    intervals = intervals or {}
    fig, ax = plt.subplots(figsize=(4.6, 1.3 + 0.3 * len(t) + 0.2 * len(t.columns)))
    y = np.arange(len(t))[::-1]
    for i, model in enumerate(t.columns):
        x = t[model].to_numpy(float)
        lo = np.array([intervals.get((model, c), (np.nan, np.nan))[0] for c in t.index], float)
        hi = np.array([intervals.get((model, c), (np.nan, np.nan))[1] for c in t.index], float)
        err = np.vstack([x - lo, hi - x])
        ax.errorbar(x, y + (i - (len(t.columns) - 1) / 2) * 0.12, xerr=np.where(np.isfinite(err), np.abs(err), 0.0),
                    fmt=MARKERS[i % 8], elinewidth=0.8, capsize=0, label=short(model), alpha=0.85)
    vals = t.to_numpy(float)
    vals = vals[np.isfinite(vals)]
    lo, hi = float(vals.min()), float(vals.max())
    if ref is not None:
        lo, hi = min(lo, ref), max(hi, ref)
        ax.axvline(ref, color="grey", lw=1, ls="--")
    if lo > 0 and hi / lo > 2.5:
        ax.set_xscale("log")
        xlabel += " (log scale)"
        ticks = [v for v in (10, 20, 30, 50, 70, 100, 150, 200, 300, 500, 1000) if lo / 1.2 <= v <= hi * 1.2]
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlim(lo / 1.15, hi * 1.15)
    else:
        pad = max(2.0, 0.08 * (hi - lo))
        ax.set_xlim(lo - pad, hi + pad)
    ax.set_yticks(y, [names.get(c, str(c)) for c in t.index])
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    fig.legend(loc="outside lower center", ncol=2, frameon=False)
    return png(fig)


@figure
def attack_curve(attacks: pd.DataFrame) -> str | None:
    """Accuracy against eps per model and attack (the headline rows of the attack measures), with 95% intervals as
    error bars (eps 0 = clean)."""
    if attacks.empty:
        return None
    a = attacks.assign(eps=[measure(k).eps_255 for k in attacks.measure],
                       attack=[measure(k).task for k in attacks.measure])
    fig, ax = plt.subplots(figsize=(4.4, 3.2))
    for i, ((model, attack), g) in enumerate(a.groupby(["model", "attack"], sort=False)):
        g = g.sort_values("eps")
        err = np.vstack([g.value - g.ci_low, g.ci_high - g.value]).astype(float)
        err = np.where(np.isfinite(err), err, 0.0)
        ax.errorbar(g.eps, g.value, yerr=err, marker=MARKERS[i % 8], capsize=3, label=short(f"{model} ({attack.upper()})"))
    ax.set(xlabel="eps (grey levels, /255)", ylabel="top-1 accuracy (%)", ylim=(0, 100))
    ax.xaxis.set_major_locator(FixedLocator(sorted(a.eps.unique())))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    return png(fig)
