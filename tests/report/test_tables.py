"""report/tables.py by value: a cell's text (a finite value to one decimal with its interval, "(normaliser)" in
place of the normaliser's own interval, a missing measure never marked best), each benchmark's table (columns in
schema.HEADLINE's order, the attacks in the order held, each model's own values in its row, the baseline row
flagged), each table's warnings numbered under its own id, the per-condition table under -C only, and the severity
curves' accuracy as 100 - top-1 error. Inputs are fabricated headline frames and result rows, numbers by hand."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from nsbench import schema
from nsbench.report import tables
from nsbench.report.compare import COLUMNS, Report
from nsbench.report.load import EvalResult


def head_row(model: str, measure: str, value: float, **kw) -> dict:
    """One headline row by hand: the measure's label and bench from schema, no interval, note or verdict."""
    m = schema.measure(measure)
    row = {c: math.nan for c in COLUMNS}
    row.update(model=model, measure=measure, label=m.label, bench=m.group, higher_is_better=m.higher_is_better,
               value=value, note="", warning="", test="", verdict="")
    row.update(kw)
    return row


def head_of(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=COLUMNS)


def result(label: str, *rows: dict) -> EvalResult:
    """A model's results rows (schema.row's keywords less model / suite), values as load.py reads them (float)."""
    df = schema.frame([schema.row(model=label, suite="t", n=10, **r) for r in rows])
    return EvalResult(label, Path(label), df.astype({"value": float}), {"model": {"label": label}}, None)


def test_a_finite_value_without_a_note_shows_one_decimal_and_its_interval():
    h = pd.Series(head_row("m", schema.CLEAN_TOP1, 76.94, ci_low=75.04, ci_high=78.86))
    c = tables.cell(h, set())
    assert c["value"] == "76.9" and c["ci"] == "[75.0, 78.9]" and c["sort"] == "76.94"


def test_the_normalisers_own_cell_says_normaliser_in_place_of_an_interval():
    h = pd.Series(head_row("base", schema.MCE, 100.0, ci_low=100.0, ci_high=100.0,
                           note="normaliser itself (mCE of base is 100 by definition)"))
    assert tables.cell(h, set())["ci"] == "(normaliser)"


def test_a_missing_measure_is_never_marked_best_and_says_why():
    c = tables.cell(None, {("m", schema.CLEAN_TOP1)}, failed="out of memory")
    assert c == {"value": "failed (out of memory)", "ci": "", "delta": "", "cls": "", "best": False, "title": "",
                 "sort": ""}


def _two_models():
    head = head_of(
        head_row("base", schema.CLEAN_TOP1, 76.1), head_row("new", schema.CLEAN_TOP1, 78.3),
        # held in the opposite of schema.HEADLINE's order (mCE before relative mCE)
        head_row("base", schema.RELATIVE_MCE, 100.0), head_row("base", schema.MCE, 100.0),
        head_row("new", schema.RELATIVE_MCE, 95.5), head_row("new", schema.MCE, 90.2),
        # the attacks: 8/255 held before 2/255
        head_row("base", "fgsm@8", 12.5), head_row("base", "fgsm@2", 40.0),
        head_row("new", "fgsm@8", 20.0), head_row("new", "fgsm@2", 45.0))
    return head, [result("base"), result("new")]


def test_bench_tables_columns_follow_the_headline_order_and_the_attacks_as_held():
    head, evals = _two_models()
    out = {t["bench"]: t for t in tables.bench_tables(head, evals, set(), "base")}
    assert list(out) == ["clean", "-C", "attack"]  # no -P or -A rows: no table
    assert out["clean"]["columns"] == ["clean top-1 (%)"]
    assert out["-C"]["columns"] == ["mCE", "relative mCE"]
    assert out["attack"]["columns"] == ["FGSM 8/255 top-1 (%)", "FGSM 2/255 top-1 (%)"]


def test_bench_tables_rows_hold_each_models_own_values_and_flag_the_baseline():
    head, evals = _two_models()
    out = {t["bench"]: t for t in tables.bench_tables(head, evals, set(), "base")}
    assert [(r["model"], r["baseline"]) for r in out["clean"]["rows"]] == [("base", True), ("new", False)]
    assert [[c["value"] for c in r["cells"]] for r in out["-C"]["rows"]] == [["100.0", "100.0"], ["90.2", "95.5"]]
    assert [[c["value"] for c in r["cells"]] for r in out["attack"]["rows"]] == [["12.5", "40.0"], ["20.0", "45.0"]]


def test_each_warning_is_numbered_under_its_own_benchmarks_table():
    built, partial = "a built -A set is not ImageNet-A", "mCE (partial) is not mCE"
    head = head_of(head_row("m", schema.CLEAN_TOP1, 70.0), head_row("m", schema.A_TOP1, 10.0, warning=built),
                   head_row("m", "mce_partial", 80.0, warning=partial))
    assert tables.note_ids(head) == {partial: "bench-c-note-0", built: "bench-a-note-0"}


def test_only_the_corruption_and_perturbation_tables_carry_a_per_condition_table():
    ce = {"task": schema.CORRUPTIONS, "metric": schema.CE}
    evals = [result("base", {**ce, "condition": "gaussian_noise", "value": 100.0}),
             result("new", {**ce, "condition": "gaussian_noise", "value": 88.0})]
    head = head_of(head_row("base", schema.CLEAN_TOP1, 76.1), head_row("new", schema.CLEAN_TOP1, 78.3),
                   head_row("base", schema.MCE, 100.0), head_row("new", schema.MCE, 88.0))
    report = Report(evals, [], "base", head, pd.DataFrame(), set(), "t")
    out = {t["bench"]: t for t in tables.bench_section(report)}
    assert out["clean"]["conditions"] is None
    c = out["-C"]["conditions"]
    assert c["id"] == schema.CORRUPTIONS and c["heading"] == "CE per corruption (100 = normaliser)"
    assert [r["vals"] for r in c["rows"]] == [["100"], ["88"]]  # CE to whole numbers, as the ImageNet-C paper prints it


def test_severity_curves_accuracy_is_100_minus_the_top1_error():
    err = {"task": schema.CORRUPTIONS, "metric": schema.TOP1_ERR, "condition": "fog"}
    r = result("m", {**err, "severity": 1, "value": 23.5}, {**err, "severity": 2, "value": 41.25},
               {"task": schema.CORRUPTIONS, "metric": schema.MEAN_ERR, "condition": "fog", "value": 32.375})
    curves = tables.severity_curves([r])
    assert curves[["corruption", "severity", "acc"]].values.tolist() == [["fog", 1, 76.5], ["fog", 2, 58.75]]
