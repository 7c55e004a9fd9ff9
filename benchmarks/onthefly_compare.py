"""Cached against on-the-fly -C / -P: the same model evaluated twice on one built set, once from the reference
generators' cached images and once with the images made in torch (corruptions.generate / perturbations.generate).

    nsbench eval --suite robustness RUN/iter3.pt --cache CACHE --out A corruptions.generate=cached perturbations.generate=cached
    nsbench eval --suite robustness RUN/iter3.pt --cache CACHE --out B corruptions.generate=on_the_fly perturbations.generate=on_the_fly
    python benchmarks/onthefly_compare.py A/LABEL B/LABEL [--markdown]

Per -C cell (corruption x severity): top-1 error of each and their difference with a 95% paired bootstrap interval
over the images (the same images in both: the built set's), marked when beyond 0.5 points (issue 34's bar for the
random corruptions); per -P perturbation: flip probability of each and the difference with its interval over the
sequences; then mCE, relative mCE, mFR, mT5D (or their partial forms) of each and the difference (bar 0.3 points).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

B = 2000


def paired(a: np.ndarray, b: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """mean(b - a) with a 95% percentile bootstrap interval over the items."""
    d = np.asarray(b, float) - np.asarray(a, float)
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), (B, len(d)))].mean(1)
    return float(d.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cached", type=Path)
    ap.add_argument("on_the_fly", type=Path)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    pa, pb = (pd.read_parquet(p / "per_image.parquet") for p in (args.cached, args.on_the_fly))
    ra, rb = (pd.read_csv(p / "results.csv") for p in (args.cached, args.on_the_fly))
    lines = ["| set | cell | cached | on the fly | difference [95%] | n |", "|---|---|---|---|---|---|"]
    beyond = 0
    for (cond, sev), a in pa[pa.task == "corruptions"].groupby(["condition", "severity"]):
        b = pb[(pb.task == "corruptions") & (pb.condition == cond) & (pb.severity == sev)]
        a, b = a.sort_values("image"), b.sort_values("image")
        assert (a.image.to_numpy() == b.image.to_numpy()).all(), f"{cond}-{sev}: different images"
        ea, eb = 100 * (1 - a.correct.to_numpy(float)), 100 * (1 - b.correct.to_numpy(float))
        d, lo, hi = paired(ea, eb)
        flag = " **>0.5**" if abs(d) > 0.5 else ""
        beyond += bool(flag)
        lines.append(f"| -C | {cond} {sev} | {ea.mean():.1f} | {eb.mean():.1f} | {d:+.2f} [{lo:+.2f}, {hi:+.2f}]{flag} | "
                     f"{len(a)} |")
    for cond, a in pa[pa.task == "perturbations"].groupby("condition"):
        b = pb[(pb.task == "perturbations") & (pb.condition == cond)]
        a, b = a.sort_values("image"), b.sort_values("image")
        d, lo, hi = paired(100 * a.flip.to_numpy(float), 100 * b.flip.to_numpy(float))
        lines.append(f"| -P | {cond} | {100 * a.flip.mean():.2f} | {100 * b.flip.mean():.2f} | {d:+.2f} [{lo:+.2f}, "
                     f"{hi:+.2f}] | {len(a)} |")
    means = ["mce", "relative_mce", "mce_partial", "relative_mce_partial", "mfr", "mt5d", "mfr_partial",
             "mt5d_partial", "mean_fp"]
    for m in means:
        x, y = ra[ra.metric == m], rb[rb.metric == m]
        if len(x) and len(y):
            d = float(y.value.iloc[0] - x.value.iloc[0])
            flag = " **>0.3**" if abs(d) > 0.3 else ""
            lines.append(f"| mean | {m} | {x.value.iloc[0]:.2f} | {y.value.iloc[0]:.2f} | {d:+.2f}{flag} | "
                         f"{int(x.n.iloc[0])} |")
    print("\n".join(lines) if args.markdown else "\n".join(l.replace("|", " ") for l in lines))
    print(f"-C cells beyond 0.5 points: {beyond}")


if __name__ == "__main__":
    main()
