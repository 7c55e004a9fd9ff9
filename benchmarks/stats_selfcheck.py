"""Do nsbench's statistics keep their promises? Simulated data with known truth, run through the report's own code:

- coverage: how often the 95% paired bootstrap interval (report/stats.py `difference`) holds the true difference, for
  per-image paired 0/1 outcomes (accuracy) and for per-sequence flip probabilities normalised by a third model that
  is resampled with them (mFR's ratio of means); goal 95% (+- 1 at the default size);
- family-wise error: a null study (three variants, every one the same in truth, several seeds with a shared seed
  effect) through the claim machinery `nsbench study` uses (report/claims.py `study_tables`: paired t over seeds,
  Holm across the claims); the share of studies in which any claim says "holds" or "reversed"; goal <= 5%;
- power: the share of studies (and of paired image comparisons) that detect a known effect, and for the image
  comparisons at a true effect equal to the minimum detectable effect the report states (stats.mde), where the
  promise is 80%.

Each share comes with its Monte Carlo standard error, sqrt(q (1 - q) / R) over R replications.

    python benchmarks/stats_selfcheck.py                 # the default size (about 5 minutes on 2 cores)
    python benchmarks/stats_selfcheck.py --size small    # a CI-sized check (seconds), wider Monte Carlo errors
    python benchmarks/stats_selfcheck.py --json out.json # also write the table as JSON
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nsbench.report import claims, stats  # noqa: E402

SIZES = {  # replications per check; the default resolves coverage to about +-0.5 points (one Monte Carlo SE)
    "small": {"coverage": 150, "study": 400, "power": 150},
    "default": {"coverage": 2000, "study": 4000, "power": 1000},
}


@dataclass
class Check:
    name: str
    what: str
    hits: int
    reps: int
    goal: str

    @property
    def share(self) -> float:
        return self.hits / self.reps

    @property
    def mc_se(self) -> float:
        q = self.share
        return float(np.sqrt(max(q * (1 - q), 1e-12) / self.reps))

    def row(self) -> dict:
        return {"check": self.name, "what": self.what, "value_pct": round(100 * self.share, 2),
                "mc_se_pct": round(100 * self.mc_se, 2), "replications": self.reps, "goal": self.goal}


# ------------------------------------------------------------------------------------------------ simulated data

def paired_outcomes(rng, n: int, p_a: float, discord: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """n images drawn from a population where model a is right with probability p_a, and b differs from a on a
    share discord[0] of images (a right, b wrong) and discord[1] (a wrong, b right): the true difference b - a is
    100 (discord[1] - discord[0]) points."""
    u = rng.random(n)
    a = u < p_a
    v = rng.random(n)
    b = a.copy()
    b[a & (v < discord[0] / p_a)] = False
    b[~a & (v < discord[1] / (1 - p_a))] = True
    return a, b


def flip_sequences(rng, n: int, means: np.ndarray, k: float = 20.0) -> np.ndarray:
    """Per-sequence flip probabilities [P, n] with population means `means` [P] (Beta with concentration k)."""
    return np.stack([rng.beta(m * k, (1 - m) * k, n) for m in means])


def _on(s: stats.Sampler) -> stats.Sampler:
    s.data = "simulated"  # both sides scored on the same items: the paired bootstrap
    return s


def paired_differences(rng, reps: int, n: int, p_a: float, discord: tuple[float, float]):
    """`reps` simulated paired accuracy comparisons b - a through stats.difference (McNemar's p, bootstrap interval)."""
    items = tuple(range(n))
    for r in range(reps):
        a, b = paired_outcomes(rng, n, p_a, discord)
        sa = _on(stats.accuracy(a, items, 100 * a.mean()))
        sb = _on(stats.accuracy(b, items, 100 * b.mean()))
        yield stats.difference(sb, sa, seed=r)


# ------------------------------------------------------------------------------------------------------- checks

def coverage_accuracy(rng, reps: int, n: int = 1000) -> Check:
    p_a, discord = 0.80, (0.04, 0.06)
    truth = 100 * (discord[1] - discord[0])
    hits = sum(d["diff_low"] <= truth <= d["diff_high"] for d in paired_differences(rng, reps, n, p_a, discord))
    return Check("coverage, paired accuracy", f"95% paired bootstrap interval of b - a over {n} images "
                 f"(true difference +{truth:g} points)", hits, reps, "95 +- 1")


def coverage_flip_rate(rng, reps: int, n: int = 200) -> Check:
    """mFR-style: 100 x mean over P perturbations of mean(model) / mean(normaliser), normaliser resampled too."""
    ref_m, a_m, b_m = np.array([0.10, 0.05, 0.20]), np.array([0.08, 0.04, 0.15]), np.array([0.07, 0.04, 0.13])
    truth = 100 * np.mean(b_m / ref_m) - 100 * np.mean(a_m / ref_m)
    hits = 0
    items = tuple(range(n))
    for r in range(reps):
        ref, a, b = (flip_sequences(rng, n, m) for m in (ref_m, a_m, b_m))
        den = (lambda rv: lambda w: w @ rv.T)(ref)
        sa = _on(stats.perturbation(a, items, 100 * np.mean(a.mean(1) / ref.mean(1)), den=den))
        sb = _on(stats.perturbation(b, items, 100 * np.mean(b.mean(1) / ref.mean(1)), den=den))
        d = stats.difference(sb, sa, seed=r)
        hits += d["diff_low"] <= truth <= d["diff_high"]
    return Check("coverage, normalised flip rate", f"95% paired bootstrap interval of an mFR-style difference over "
                 f"{n} sequences, normaliser resampled (true {truth:+.2f})", hits, reps, "95 +- 1")


VARIANTS = ("teacher", "noisy_student", "no_noise")
CLAIMS = [("noisy_student", "teacher"), ("noisy_student", "no_noise"), ("no_noise", "teacher")]


def study_spec(seeds: list[int]) -> dict:
    """A study shaped like paper_ablations: three variants, three claims in one table, the clean top-1 measure."""
    labels = {v: {s: f"{v}-seed{s}" for s in seeds} for v in VARIANTS}
    return {"seeds": seeds, "tables": [{"id": "t", "title": "simulated", "rows": [
        {"ref": v, "labels": labels[v]} for v in VARIANTS], "claims": [
        {"claim": f"{a} beats {b}", "metric": "clean_top1", "better": {"ref": a, "labels": labels[a]},
         "than": {"ref": b, "labels": labels[b]}} for a, b in CLAIMS]}]}


def study_head(rng, seeds: list[int], effects: dict[str, float], seed_sd: float, noise_sd: float) -> pd.DataFrame:
    """Clean top-1 per variant and seed: 85 + effect + a seed effect shared by the variants + independent noise."""
    shared = rng.normal(0, seed_sd, len(seeds))
    rows = []
    for v in VARIANTS:
        for k, s in enumerate(seeds):
            rows.append({"model": f"{v}-seed{s}", "measure": "clean_top1", "value": 85 + effects.get(v, 0.0) + shared[k]
                         + rng.normal(0, noise_sd), "higher_is_better": True, "usual_effect": 2.0,
                         "ci_low": np.nan, "ci_high": np.nan})
    return pd.DataFrame(rows)


def null_study(rng, reps: int, seeds: int = 3) -> Check:
    spec = study_spec(list(range(seeds)))
    false = 0
    for _ in range(reps):
        head = study_head(rng, spec["seeds"], {}, seed_sd=0.3, noise_sd=0.35)
        _, frame = claims.study_tables(spec, [], head)
        false += bool(frame.verdict.isin([claims.HOLDS, claims.REVERSED]).any())
    return Check("family-wise error, null study", f"any of {len(CLAIMS)} claims holds or is reversed when no variant "
                 f"differs ({seeds} seeds, paired t, Holm; nsbench study's claim code)", false, reps, "<= 5")


def study_power(rng, reps: int, seeds: int = 3, effect: float = 1.0) -> Check:
    spec = study_spec(list(range(seeds)))
    hits = 0
    for _ in range(reps):
        head = study_head(rng, spec["seeds"], {"noisy_student": effect}, seed_sd=0.3, noise_sd=0.35)
        _, frame = claims.study_tables(spec, [], head)
        hits += frame.verdict.iloc[0] == claims.HOLDS  # noisy_student beats teacher
    return Check("power, study claim", f"'noisy_student beats teacher' holds at a true +{effect:g} point effect "
                 f"({seeds} seeds, per-variant noise sd 0.35, 3 claims under Holm)", hits, reps, "reported")


def mde_power(rng, reps: int, n: int = 2000, family: int = 10) -> Check:
    """The minimum detectable effect's promise: at a true difference equal to the MDE the report would state for
    this design (stats.mde at a family of `family`, from the standard error of the difference), the test detects it
    (Holm's strictest level, ALPHA / family) in about 80% of replications."""
    p_a, base = 0.80, 0.05  # a right / b wrong share; b's extra right share sets the effect
    # the standard error of the difference in this design at the effect itself (what the report sees when the
    # effect is there), found by fixed point: MDE = (z + z_power) x se(MDE)
    mde = 0.0
    for _ in range(5):
        q = (base, base + mde / 100)
        se = 100 * np.sqrt((q[0] + q[1] - (q[1] - q[0]) ** 2) / n)  # sd of the per-image difference / sqrt(n)
        mde = stats.mde(se, family)
    discord = (base, base + mde / 100)
    hits = sum(d["p"] < stats.ALPHA / family and d["diff"] > 0 for d in paired_differences(rng, reps, n, p_a, discord))
    return Check("power at the stated MDE", f"paired accuracy over {n} images, true difference = the stated MDE "
                 f"({mde:.2f} points at 0.05 / {family}); exact McNemar", hits, reps, "80 (the MDE's promise)")


def run(size: str, seed: int = 0) -> list[Check]:
    n = SIZES[size]
    rng = np.random.default_rng(seed)
    return [coverage_accuracy(rng, n["coverage"]), coverage_flip_rate(rng, n["coverage"]),
            null_study(rng, n["study"]), study_power(rng, n["power"]), mde_power(rng, n["power"])]


def markdown(checks: list[Check]) -> str:
    lines = ["| check | what | value (%) | Monte Carlo SE (%) | replications | goal (%) |", "|---|---|---|---|---|---|"]
    for c in checks:
        r = c.row()
        lines.append(f"| {r['check']} | {r['what']} | {r['value_pct']:.2f} | {r['mc_se_pct']:.2f} | {r['replications']} "
                     f"| {r['goal']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="default")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    checks = run(args.size, args.seed)
    print(markdown(checks))
    print(f"\n{args.size} size, seed {args.seed}, {time.perf_counter() - t0:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"size": args.size, "seed": args.seed, "checks": [c.row() for c in checks]},
                                        indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
