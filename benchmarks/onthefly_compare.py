"""Cached against on-the-fly -C / -P: the same model evaluated twice on one built set, once from the reference
generators' cached images and once with the images made in torch (corruptions.generate / perturbations.generate).

    nsbench eval --suite robustness RUN/iter3.pt --cache CACHE --out A corruptions.generate=cached perturbations.generate=cached
    nsbench eval --suite robustness RUN/iter3.pt --cache CACHE --out B corruptions.generate=on_the_fly perturbations.generate=on_the_fly
    python benchmarks/onthefly_compare.py A/LABEL B/LABEL [--markdown]

Per -C cell (corruption x severity): top-1 error of each and their difference with a 95% paired bootstrap interval
over the images (the same images in both: the built set's), marked when beyond 0.5 points (issue 34's bar for the
random corruptions); per -P perturbation: flip probability of each and the difference with its interval over the
sequences; then mCE, relative mCE, mFR, mT5D (or their partial forms) of each and the difference (bar 0.3 points).

Several draws: evaluate both paths at several suite seeds (`seed=1` ...: every random corruption draws anew, the
images stay the same) and pass the pairs as `--draws A1 B1 A2 B2 ...` instead of A B. A cell's difference is then the
mean over draws and images, its interval a bootstrap over the images with each image's draws kept together (the
draws of one image are not independent of each other); the means (mCE ...) are averaged over draws, their interval a
t-interval over the draws' differences.
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


def paired_draws(a: np.ndarray, b: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """a, b: [draws, items]. mean(b - a) with a 95% percentile bootstrap interval over the items, each item's draws
    resampled together."""
    d = (np.asarray(b, float) - np.asarray(a, float)).mean(0)  # per item: the mean over its draws
    return paired(np.zeros_like(d), d, seed)


def _cells(per: pd.DataFrame, task: str, keys: list[str], value) -> dict:
    out = {}
    for k, g in per[per.task == task].groupby(keys):
        g = g.sort_values("image")
        out[k] = (g.image.to_numpy(), value(g))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cached", type=Path, nargs="?")
    ap.add_argument("on_the_fly", type=Path, nargs="?")
    ap.add_argument("--draws", type=Path, nargs="+", help="A1 B1 A2 B2 ...: cached / on-the-fly pairs, one per seed")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    folders = args.draws if args.draws else [args.cached, args.on_the_fly]
    if len(folders) % 2 or any(f is None for f in folders):
        ap.error("give CACHED ON_THE_FLY, or --draws with cached / on-the-fly pairs")
    pairs = list(zip(folders[::2], folders[1::2]))
    k = len(pairs)
    per = [(pd.read_parquet(a / "per_image.parquet"), pd.read_parquet(b / "per_image.parquet")) for a, b in pairs]
    res = [(pd.read_csv(a / "results.csv"), pd.read_csv(b / "results.csv")) for a, b in pairs]
    err = lambda g: 100 * (1 - g.correct.to_numpy(float))  # noqa: E731
    flip = lambda g: 100 * g.flip.to_numpy(float)  # noqa: E731
    lines = [f"| set | cell | cached | on the fly | difference [95%] | n{' x draws' if k > 1 else ''} |",
             "|---|---|---|---|---|---|"]
    beyond = 0
    for task, keys, value, bar, digits in (("corruptions", ["condition", "severity"], err, 0.5, 1),
                                           ("perturbations", ["condition"], flip, None, 2)):
        cells = [(_cells(pa, task, keys, value), _cells(pb, task, keys, value)) for pa, pb in per]
        for key in cells[0][0]:
            a, b = [], []
            for ca, cb in cells:
                (ia, va), (ib, vb) = ca[key], cb[key]
                assert (ia == ib).all() and (ia == cells[0][0][key][0]).all(), f"{key}: different images"
                a.append(va)
                b.append(vb)
            a, b = np.stack(a), np.stack(b)
            d, lo, hi = paired_draws(a, b)
            flag = f" **>{bar}**" if bar is not None and abs(d) > bar else ""
            beyond += bool(flag)
            name = " ".join(str(int(x)) if isinstance(x, float) else str(x) for x in np.atleast_1d(key))
            lines.append(f"| -{task[0].upper()} | {name} | {a.mean():.{digits}f} | {b.mean():.{digits}f} | "
                         f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]{flag} | {a.shape[1]}{f' x {k}' if k > 1 else ''} |")
    means = ["mce", "relative_mce", "mce_partial", "relative_mce_partial", "mfr", "mt5d", "mfr_partial",
             "mt5d_partial", "mean_fp"]
    for m in means:
        xs = [(ra[ra.metric == m], rb[rb.metric == m]) for ra, rb in res]
        if not all(len(x) and len(y) for x, y in xs):
            continue
        va = np.array([float(x.value.iloc[0]) for x, _ in xs])
        vb = np.array([float(y.value.iloc[0]) for _, y in xs])
        d = vb - va
        ci = ""
        if k > 1:
            from scipy import stats as st

            half = st.t.ppf(0.975, k - 1) * d.std(ddof=1) / np.sqrt(k)
            ci = f" [{d.mean() - half:+.2f}, {d.mean() + half:+.2f}]"
        flag = " **>0.3**" if abs(d.mean()) > 0.3 else ""
        lines.append(f"| mean | {m} | {va.mean():.2f} | {vb.mean():.2f} | {d.mean():+.2f}{ci}{flag} | "
                     f"{int(xs[0][0].n.iloc[0])}{f' x {k}' if k > 1 else ''} |")
    print("\n".join(lines) if args.markdown else "\n".join(l.replace("|", " ") for l in lines))
    print(f"-C cells beyond 0.5 points: {beyond}")


if __name__ == "__main__":
    main()
