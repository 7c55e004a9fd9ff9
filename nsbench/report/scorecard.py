"""The scorecard sections of the report (issue 23): calibration with intervals, accuracy on the shifted sets (headed
by what they are: built or official), attacks by name, published against measured, and effective robustness; each
also written as a CSV next to index.html."""
from __future__ import annotations

import pandas as pd

from ..schema import CLEAN
from . import effective, fmt, published, shifts
from .calibration_table import calibration_frame, calibration_table
from .compare import Report
from .family import Tests, adjust
from .load import EvalResult


def build(evals: list[EvalResult], head: pd.DataFrame, baseline: str | None,
          er_baselines: list[str] | None = None, cal: pd.DataFrame | None = None,
          pub: pd.DataFrame | None = None) -> tuple[dict, dict[str, pd.DataFrame]]:
    """(template context, {csv name: frame}); `cal`, `pub`: the calibration and published-vs-measured frames,
    Holm-adjusted with the page's other tests (compare.py), else built and adjusted on their own. The calibration
    table itself is a section of its own, after the figures (`calibration_section`)."""
    if cal is None:
        cal = calibration_frame(evals, baseline) if evals else pd.DataFrame(columns=["model"])
    if pub is None:
        pub = published.published_vs_measured(evals, head) if evals else pd.DataFrame(columns=published.COLUMNS)
        if len(pub):
            tests = Tests(pub)
            adjust(tests)
            pub = published.decide(tests.frame)
    acc = shifts.accuracy_frame(evals) if evals else pd.DataFrame(columns=["model", "set"])
    er = (effective.effective_robustness(evals, er_baselines) if len(evals) >= 2
          else pd.DataFrame(columns=effective.COLUMNS))
    shifted = acc[~acc.set.isin([CLEAN])] if len(acc) else acc
    attacks = shifts.attack_frame(evals) if evals else pd.DataFrame()
    by_label = {r.label: r for r in evals}
    origins = [shifts.origin(by_label[x.model], x.set) for _, x in shifted.iterrows()]
    ctx = {
        "shifts": [{"model": x.model, "set": x.label, "origin": o or "–", "value": fmt.num(x.value, 2),
                    "ci": fmt.ci(x.ci_low, x.ci_high, 2), "n": str(int(x.n)) if x.n else "–", "note": str(x.note or "")}
                   for o, (_, x) in zip(origins, shifted.iterrows())],
        # headed by what was scored; the origin column only where the sets differ in it
        "shifts_heading": shifts.heading(set(origins)),
        "shifts_origins": shifts.origin_note(set(origins)),
        "shifts_origin_column": len(set(origins)) > 1 or "" in origins,
        "shifts_no_normaliser": any(k in shifts.NO_NORMALISER_SETS for k in shifted.set) if len(shifted) else False,
        "attacks_by_name": [{"model": x.model, "attack": x.attack,
                             "eps": "–" if not fmt.finite(x.eps_255) else f"{x.eps_255:g}/255",
                             "value": fmt.num(x.value, 2), "ci": fmt.ci(x.ci_low, x.ci_high, 2), "n": str(int(x.n))}
                            for _, x in attacks.iterrows()],
        "published": published.table(pub) if len(pub) else [],
        "effective": effective.table(er) if len(er) else [],
        "effective_panels": effective.figure(er, er_baselines) if len(er) else [],
        "er_baselines": list(er_baselines or []),
    }
    frames = {"calibration.csv": cal, "shifted_accuracy.csv": acc, "attacks_by_name.csv": attacks,
              "published_vs_measured.csv": pub, "effective_robustness.csv": er}
    return ctx, {k: v for k, v in frames.items() if len(v)}


def section(report: Report) -> dict:
    """The scorecard's page data, with its CSV frames under `frames` (render.py writes them beside the page)."""
    ctx, frames = build(report.evals, report.head, report.baseline, report.er_baselines, report.calibration,
                        report.published)
    return {**ctx, "frames": frames}


def calibration_section(report: Report) -> dict | None:
    """The calibration part of the page, after the figures (render.py SECTIONS): one fold per task."""
    frame = report.calibration
    return calibration_table(frame, report.baseline) if frame is not None and len(frame) else None
