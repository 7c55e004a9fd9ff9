"""What the top of the page says: the header, the verdict per model against the baseline, the sortable model table
(architecture, parameters, lineage, headline numbers) and the across-seeds table."""
from __future__ import annotations

import datetime as _dt

import pandas as pd

from ..schema import (A_TOP1, A_TOP1_BUILT_LABEL, C_MEAN_ERR, CLEAN_TOP1, FAILED, FGSM, MCE, MEAN_FP, METRICS, MFR,
                      PARTIAL, attack_measure, measure)
from ..utils import library_versions
from . import fmt, stats
from .compare import Report
from .family import UNDERPOWERED
from .load import EvalResult, RunResult
from .notes import one_run_note
from .tables import ATTACK, cell, note_ids

# per benchmark, the measure its verdict line shows: the first that a model holds a value (or a note) of
VERDICT = [[CLEAN_TOP1], [MCE, MCE + PARTIAL, C_MEAN_ERR], [MFR, MFR + PARTIAL, MEAN_FP],
           [A_TOP1]]
MODEL_COLUMNS = [CLEAN_TOP1, MCE, MCE + PARTIAL, MFR, MFR + PARTIAL, A_TOP1]
PAPER_ATTACK = attack_measure(FGSM, 8).name  # the paper's headline attack: FGSM at 8/255


def header(report: Report) -> dict:
    """Title, time, baseline, the normalisers of CE / FR / T5D, and the library versions (the page's footer)."""
    normalisers = sorted({str(n) for r in report.evals if "normaliser" in r.rows
                          for n in r.rows.normaliser.dropna().unique() if str(n)})
    return {"title": report.title, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "baseline": report.baseline, "normalisers": normalisers, "versions": library_versions()}


def attack_key(head: pd.DataFrame) -> str | None:
    """The attack shown in the verdict: FGSM at 8/255 (the paper's headline), else the strongest FGSM, else any."""
    keys = list(dict.fromkeys(head[head.bench == ATTACK].measure))
    if not keys:
        return None
    fgsm = [k for k in keys if measure(k).task == FGSM]
    if PAPER_ATTACK in keys:
        return PAPER_ATTACK
    pool = fgsm or keys
    return max(pool, key=lambda k: measure(k).eps_255)


def _line(h: pd.Series, base: pd.Series | None, notes: dict[str, str] | None = None) -> dict:
    """One verdict line; a warning on its measure is not repeated on it, but linked: `note` is the id of the
    warning's one notice on the page (tables.note_ids), its text the link's tooltip."""
    cls = {"better": "good", "worse": "bad"}.get(h.verdict, "")
    n = f"{int(h.n):,} {'sequences' if h.bench == '-P' else 'images'}" if fmt.finite(h.get("n")) else ""
    mde = fmt.num(h.mde, 1) if fmt.finite(h.get("mde")) else ""
    return {"label": h.label, "value": fmt.value_or_note(h.value, h.note),
            "base": fmt.value_or_note(base.value, base.note) if base is not None else "–",
            "diff": fmt.signed(h["diff"]), "ci": fmt.ci(h.diff_low, h.diff_high), "p": fmt.pvalues(h.p_value, h.p_adjusted),
            "verdict": h.verdict or "–", "cls": cls, "warning": h.warning, "note": (notes or {}).get(h.warning, ""),
            "test": h.test, "n": n, "mde": mde}


def _left_out(h: pd.Series) -> bool:
    """A built -A line that cannot detect the measure's usual effect: left out of the cards (kept in the -A table,
    labelled underpowered). A built set's size is fixed by how many pool images every reference gets wrong, not by
    the user, so its line would otherwise sit on every card as if it were evidence of no effect."""
    return h.label == A_TOP1_BUILT_LABEL and str(h.verdict).startswith(UNDERPOWERED)


def verdicts(head: pd.DataFrame, baseline: str | None) -> list[dict]:
    """Per non-baseline model, one line per benchmark: difference, 95% interval, set size, minimum detectable effect,
    better / worse / no significant difference / underpowered; a built -A line that is underpowered is listed under
    `left_out` instead. A line's warning (a built -A set, a partial mean) links to its one notice on the page."""
    if baseline is None or head.empty:
        return []
    order = list(VERDICT)
    notes = note_ids(head)
    ak = attack_key(head)
    if ak:
        order.append([ak])
    out = []
    for model in dict.fromkeys(head.model):
        if model == baseline:
            continue
        lines, left_out = [], []
        for keys in order:
            for k in keys:
                h = head[(head.model == model) & (head.measure == k)]
                if len(h) and (fmt.finite(h.value.iloc[0]) or h.note.iloc[0] or k == keys[-1]):
                    b = head[(head.model == baseline) & (head.measure == k)]
                    line = _line(h.iloc[0], b.iloc[0] if len(b) else None, notes)
                    (left_out if _left_out(h.iloc[0]) else lines).append(line)
                    break
        out.append({"model": model, "lines": lines, "left_out": left_out})
    return out


def verdict_section(report: Report) -> dict:
    """The verdict cards (none under a study: its claims take their place), the note on single training runs, and
    how many tests the page makes (one Holm family)."""
    return {"cards": [] if report.study else verdicts(report.head, report.baseline), "baseline": report.baseline,
            "one_run": one_run_note(report.evals, report.seeds), "n_tests": report.n_tests,
            "resamples": f"{stats.B:,}", "max_resamples": f"{stats.B_MAX:,}", "power": f"{stats.POWER:.0%}"}


def _lineage(r: EvalResult, evals: list[EvalResult]) -> str:
    by_sha = {(e.meta.get("model") or {}).get("sha256"): e for e in evals}
    chain, cur, seen = [r.label], r, set()
    while True:
        parent = (cur.meta.get("model") or {}).get("parent_sha256")
        if not parent or parent in seen:
            break
        seen.add(parent)
        nxt = by_sha.get(parent)
        if nxt is None:
            chain.append(f"{str(parent)[:8]}… (not evaluated)")
            break
        chain.append(nxt.label)
        cur = nxt
    it = (r.meta.get("model") or {}).get("iteration")
    if len(chain) == 1:
        return "teacher (iteration 0)" if it == 0 else "–"
    return " → ".join(chain[::-1])


def _from_runs(sha: str | None, runs: list[RunResult]) -> dict:
    for run in runs:
        for e in run.summary.get("iterations", []):
            if sha and e.get("sha256") == sha:
                return e
    return {}


def model_table(head: pd.DataFrame, evals: list[EvalResult], runs: list[RunResult], baseline: str | None) -> dict:
    """Rows for the sortable model table; every cell carries a sort key."""
    ak = attack_key(head)
    # labelled as the headline rows label them (a built -A set as "built -A")
    cols = [(k, head[head.measure == k].label.iloc[0].replace(" (%)", " %")) for k in MODEL_COLUMNS
            if (head.measure == k).any()]
    if ak:
        cols.append((ak, head[head.measure == ak].label.iloc[0].replace(" top-1 (%)", " %")))
    rows = []
    for r in evals:
        m = r.meta.get("model") or {}
        extra = _from_runs(m.get("sha256"), runs)
        n_params = m.get("n_params") or extra.get("n_params")
        arch = m.get("arch") or extra.get("arch")
        kwargs = extra.get("kwargs")
        cells = [{"text": r.label, "sort": r.label},
                 {"text": fmt.text(arch) + (f" ({fmt.text(kwargs)})" if kwargs else ""), "sort": fmt.text(arch)},
                 {"text": fmt.params(n_params), "sort": str(n_params or "")},
                 {"text": fmt.text(m.get("iteration")), "sort": str(m.get("iteration") if m.get("iteration") is not None else "")},
                 {"text": _lineage(r, evals), "sort": _lineage(r, evals)}]
        for k, _ in cols:
            h = head[(head.model == r.label) & (head.measure == k)]
            v = h.value.iloc[0] if len(h) else float("nan")
            text = fmt.value_or_note(v, h.note.iloc[0] if len(h) else "")
            cells.append({"text": METRICS[FAILED].label if text.startswith(FAILED) else text,  # no room for why
                          "sort": f"{v:.6g}" if fmt.finite(v) else ""})
        rows.append({"baseline": r.label == baseline, "cells": cells})
    header = [("model", "text"), ("architecture", "text"), ("parameters", "num"), ("iteration", "num"),
              ("lineage", "text")] + [(lab, "num") for _, lab in cols]
    return {"header": header, "rows": rows}


def model_section(report: Report) -> dict:
    return model_table(report.head, report.evals, report.runs, report.baseline)


def seeds_section(report: Report) -> dict | None:
    return seeds_table(report.seeds, report.head)


def seeds_table(seeds: pd.DataFrame, head: pd.DataFrame) -> dict | None:
    """Seed groups as rows, the model table's headline measures as columns; cells as in the benchmark tables."""
    if seeds.empty:
        return None
    ak = attack_key(head)
    keys = [k for k in MODEL_COLUMNS if (seeds.measure == k).any()] + ([ak] if ak in set(seeds.measure) else [])
    rows = []
    for group, sub in seeds.groupby("group", sort=False):
        cells = []
        for k in keys:
            hit = sub[sub.measure == k]
            h = hit.iloc[0].copy() if len(hit) else None
            if h is not None:
                h["model"], h["note"], h["warning"] = group, "", ""
            cells.append(cell(h, set()))
        rows.append({"group": group, "seeds": int(sub.seeds.max()), "cells": cells})
    return {"columns": [seeds[seeds.measure == k].label.iloc[0] for k in keys], "rows": rows}
