"""Tables from tidy rows: a summary per model with deltas against the baseline, per-corruption CE,
per-perturbation FR, bootstrap confidence intervals and paired tests on identical images."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .load import EvalResult

# (column, task, metric, condition, higher_is_better)
SUMMARY = [
    ("clean top-1", "clean", "top1_acc", "clean", True),
    ("clean top-5", "clean", "top5_acc", "clean", True),
    ("-A top-1", "natural_adversarial", "top1_acc", None, True),
    ("mCE", "corruptions", "mce", "all", False),
    ("relative mCE", "corruptions", "relative_mce", "all", False),
    ("-C mean error", "corruptions", "mean_err", "all", False),
    ("mFR", "perturbations", "mfr", "all", False),
    ("mT5D", "perturbations", "mt5d", "all", False),
]
BOOTSTRAP = 1000


def _value(rows: pd.DataFrame, task: str, metric: str, condition: str | None) -> float:
    m = (rows.task == task) & (rows.metric == metric)
    if condition is not None:
        m &= rows.condition == condition
    return float(rows[m].value.iloc[0]) if m.any() else np.nan


def summary_table(evals: list[EvalResult]) -> tuple[pd.DataFrame, dict[str, bool]]:
    """One row per model; columns as SUMMARY plus FGSM accuracy per eps. Returns the frame and higher-is-better."""
    eps = sorted({float(e) for r in evals for e in r.rows[r.rows.task == "fgsm"].eps_255.dropna()})
    better = {c: hb for c, _, _, _, hb in SUMMARY}
    data = []
    for r in evals:
        row = {"model": r.label}
        for col, task, metric, cond, _ in SUMMARY:
            row[col] = _value(r.rows, task, metric, cond)
        f = r.rows[r.rows.task == "fgsm"]
        for e in eps:
            m = f.eps_255 == e
            row[f"FGSM {e:g}/255"] = float(f[m].value.iloc[0]) if m.any() else np.nan
            better[f"FGSM {e:g}/255"] = True
        data.append(row)
    df = pd.DataFrame(data)
    keep = ["model"] + [c for c in df.columns[1:] if df[c].notna().any()]
    return df[keep], {c: better[c] for c in keep[1:]}


def with_deltas(df: pd.DataFrame, baseline: str) -> pd.DataFrame:
    base = df[df.model == baseline]
    out = df.copy()
    if base.empty:
        return out
    for c in df.columns[1:]:
        out[f"Δ {c}"] = df[c] - float(base[c].iloc[0])
    return out


def best_per_column(df: pd.DataFrame, better: dict[str, bool]) -> dict[str, str]:
    best = {}
    for c, hb in better.items():
        col = df[c].dropna()
        if len(col) > 1:
            best[c] = df.loc[col.idxmax() if hb else col.idxmin(), "model"]
    return best


def per_condition(evals: list[EvalResult], task: str, metric: str) -> pd.DataFrame:
    """Rows: conditions (corruptions / perturbations); columns: models."""
    frames = []
    for r in evals:
        m = (r.rows.task == task) & (r.rows.metric == metric) & (r.rows.condition != "all")
        frames.append(r.rows[m].set_index("condition").value.rename(r.label))
    if not frames or all(f.empty for f in frames):
        return pd.DataFrame()
    return pd.concat(frames, axis=1)


def severity_curves(evals: list[EvalResult]) -> pd.DataFrame:
    """Top-1 accuracy by corruption and severity: columns model, corruption, severity, acc."""
    out = []
    for r in evals:
        m = (r.rows.task == "corruptions") & (r.rows.metric == "top1_err") & r.rows.severity.notna() & (r.rows.condition != "clean")
        sub = r.rows[m]
        out.append(pd.DataFrame({"model": r.label, "corruption": sub.condition, "severity": sub.severity.astype(int),
                                 "acc": 100 - sub.value}))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


# ----------------------------------------------------------------------- uncertainty and paired comparisons

def _outcomes(r: EvalResult, task: str, eps: float | None = None) -> pd.Series | None:
    """Per-image correctness for a task (for -C: the mean over all cells, per image)."""
    if r.per_image is None:
        return None
    p = r.per_image[r.per_image.task == task]
    if eps is not None:
        p = p[p.eps_255 == eps]
    if p.empty or "correct" not in p or p.correct.isna().all():
        return None
    if task == "corruptions":
        return p.groupby("image").correct.mean()
    return p.set_index("image").correct.astype(float)


def bootstrap_ci(values: np.ndarray, seed: int = 0, n: int = BOOTSTRAP, level: float = 0.95) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), (n, len(values)))
    means = values[idx].mean(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def comparisons(evals: list[EvalResult], baseline: str) -> pd.DataFrame:
    """Per model and task: accuracy with a 95% bootstrap CI over images, and a paired comparison with the baseline
    on the identical images (difference with a paired-bootstrap CI; exact McNemar p-value for 0/1 outcomes)."""
    from scipy.stats import binomtest

    base = next((r for r in evals if r.label == baseline), None)
    tasks = [("clean", None, "clean top-1"), ("natural_adversarial", None, "-A top-1"),
             ("corruptions", None, "-C accuracy (all cells)")]
    eps_all = sorted({float(e) for r in evals if r.per_image is not None
                      for e in r.per_image[r.per_image.task == "fgsm"].eps_255.unique()})
    tasks += [("fgsm", e, f"FGSM {e:g}/255") for e in eps_all if e > 0]
    rows = []
    for r in evals:
        for task, eps, name in tasks:
            o = _outcomes(r, task, eps)
            if o is None or o.empty:
                continue
            v = o.to_numpy(float)
            lo, hi = bootstrap_ci(v)
            row = {"model": r.label, "measure": name, "value": 100 * v.mean(), "ci_low": 100 * lo, "ci_high": 100 * hi,
                   "n": len(v), "diff": np.nan, "diff_low": np.nan, "diff_high": np.nan, "p_value": np.nan, "test": ""}
            ob = _outcomes(base, task, eps) if base is not None and r.label != baseline else None
            if ob is not None:
                common = o.index.intersection(ob.index)
                if len(common):
                    a, b = o.loc[common].to_numpy(float), ob.loc[common].to_numpy(float)
                    d = a - b
                    dlo, dhi = bootstrap_ci(d, seed=1)
                    row.update(diff=100 * d.mean(), diff_low=100 * dlo, diff_high=100 * dhi)
                    if set(np.unique(np.concatenate([a, b]))) <= {0.0, 1.0}:
                        n01, n10 = int(((a == 1) & (b == 0)).sum()), int(((a == 0) & (b == 1)).sum())
                        row["p_value"] = binomtest(n01, n01 + n10, 0.5).pvalue if n01 + n10 else 1.0
                        row["test"] = f"McNemar exact ({n01} vs {n10} discordant, n={len(common)})"
                    else:
                        row["p_value"] = float(min(1.0, 2 * min((_boot_sign(d) <= 0).mean(), (_boot_sign(d) >= 0).mean())))
                        row["test"] = f"paired bootstrap over images (n={len(common)})"
            rows.append(row)
    return pd.DataFrame(rows)


def _boot_sign(d: np.ndarray, seed: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return d[rng.integers(0, len(d), (BOOTSTRAP, len(d)))].mean(1)
