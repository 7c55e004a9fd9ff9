"""Figures rendered with matplotlib (Agg) to inline PNGs (data: URIs): the page needs no network."""
from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

# ImageNet-C's corruption families (Hendrycks & Dietterich, ICLR 2019, figure 1; "extra" = the validation four).
FAMILIES = {
    "noise": ["gaussian_noise", "shot_noise", "impulse_noise"],
    "blur": ["defocus_blur", "glass_blur", "motion_blur", "zoom_blur"],
    "weather": ["snow", "frost", "fog", "brightness"],
    "digital": ["contrast", "elastic_transform", "pixelate", "jpeg_compression"],
    "extra": ["speckle_noise", "gaussian_blur", "spatter", "saturate"],
}


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def severity_by_family(curves: pd.DataFrame, clean: dict[str, float]) -> str | None:
    if curves.empty:
        return None
    fams = [f for f, names in FAMILIES.items() if curves.corruption.isin(names).any()]
    fig, axes = plt.subplots(1, len(fams), figsize=(3.2 * len(fams), 3.0), sharey=True, squeeze=False)
    for ax, fam in zip(axes[0], fams):
        sub = curves[curves.corruption.isin(FAMILIES[fam])]
        for model, g in sub.groupby("model", sort=False):
            m = g.groupby("severity").acc.mean()
            xs, ys = [0, *m.index.tolist()], [clean.get(model, np.nan), *m.values.tolist()]
            ax.plot(xs, ys, marker="o", label=str(model))
        ax.set_title(fam)
        ax.set_xlabel("severity (0 = clean)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("top-1 accuracy (%)")
    axes[0][-1].legend(fontsize=7, loc="lower left")
    return _png(fig)


def grouped_bars(table: pd.DataFrame, ylabel: str, title: str, ref_line: float | None = None) -> str | None:
    if table.empty:
        return None
    fig, ax = plt.subplots(figsize=(min(11.0, 4.0 + 0.45 * len(table)), 3.6))  # fits the page at full size
    n = len(table.columns)
    width = 0.8 / max(n, 1)
    x = np.arange(len(table))
    for i, model in enumerate(table.columns):
        ax.bar(x + (i - (n - 1) / 2) * width, table[model].to_numpy(float), width, label=str(model))
    ax.set_xticks(x, [str(i).replace("_", " ") for i in table.index], rotation=45, ha="right", fontsize=8)
    if ref_line is not None:
        ax.axhline(ref_line, color="grey", lw=1, ls="--")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig)


def fgsm_curve(evals) -> str | None:
    fig, ax = plt.subplots(figsize=(5, 3.2))
    drawn = False
    for r in evals:
        f = r.rows[(r.rows.task == "fgsm") & (r.rows.metric == "top1_acc")].sort_values("eps_255")
        if len(f):
            ax.plot(f.eps_255, f.value, marker="o", label=r.label)
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("eps (grey levels, /255)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title("FGSM accuracy against eps")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig)


def progress(points: pd.DataFrame) -> str | None:
    """Metrics per Noisy Student iteration: columns iteration, metric, value."""
    if points.empty or points.iteration.nunique() < 2:
        return None
    metrics = list(dict.fromkeys(points.metric))
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.0 * len(metrics), 2.9), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        g = points[points.metric == m].sort_values("iteration")
        ax.plot(g.iteration, g.value, marker="o", color="tab:blue")
        ax.set_title(m, fontsize=9)
        ax.set_xlabel("iteration")
        ax.set_xticks(sorted(g.iteration.unique()))
        ax.grid(alpha=0.3)
    return _png(fig)


def pseudo_stats(pseudo: dict[int, dict], classes: list[str] | None = None) -> str | None:
    if not pseudo:
        return None
    its = sorted(pseudo)
    fig, axes = plt.subplots(1, len(its) + 1, figsize=(3.4 * (len(its) + 1), 3.0), squeeze=False)
    for ax, k in zip(axes[0], its):
        per = pd.DataFrame(pseudo[k]["per_class"])
        x = np.arange(len(per))
        kept, dropped, dup = per["kept"], per["dropped_by_balance"], per["duplicated"]
        ax.bar(x, kept - dropped, label="kept", color="tab:green")
        ax.bar(x, dropped, bottom=kept - dropped, label="dropped by balance", color="tab:orange")
        ax.bar(x, per["predicted"] - kept, bottom=kept, label="below threshold", color="tab:red")
        ax.bar(x, dup, bottom=kept, label="duplicated", color="tab:purple", alpha=0.6)
        ax.set_title(f"iteration {k}: per class", fontsize=9)
        ax.set_xticks(x, [str(c)[:8] for c in (classes or per["class"])], rotation=60, fontsize=6)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=6)
    ax = axes[0][-1]
    agree = [100 * pseudo[k].get("agreement_kept", np.nan) for k in its]
    kept = [100 * pseudo[k]["n_kept"] / max(pseudo[k]["n_unlabeled"], 1) for k in its]
    ax.plot(its, agree, marker="o", label="agreement with hidden labels (kept)")
    ax.plot(its, kept, marker="s", label="kept after filter")
    ax.set_ylabel("%")
    ax.set_xticks(its)
    ax.set_xlabel("iteration")
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3)
    return _png(fig)
