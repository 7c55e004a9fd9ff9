"""Reports: rendered from saved results only, escaped, self-contained, and checked in a real browser."""
from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import ARTIFACTS, FIX
from nsbench.cli import main
from nsbench.report.render import render_report
from nsbench.utils import NsbenchError

XSS = "<script>alert(1)</script>"


@pytest.fixture
def no_models(monkeypatch):
    """Any attempt to build or run a model fails the test: reports come from saved results only."""
    from nsbench.bench import harness
    from nsbench import models

    def boom(*a, **k):
        raise AssertionError("the report ran a model")

    monkeypatch.setattr(models, "build_model", boom)
    monkeypatch.setattr(harness, "score", boom)


def test_render_from_fixture_results_without_running_a_model(tmp_path, no_models):
    out = tmp_path / "report"
    assert main(["report", str(FIX / "results"), str(FIX / "run"), "--baseline", "iter0", "--out", str(out)]) == 0
    html = (out / "index.html").read_text()
    for f in ("headline.csv", "summary.csv", "corruptions_ce.csv", "perturbations_fr.csv", "results.csv", "provenance.json"):
        assert (out / f).exists(), f
    head = pd.read_csv(out / "headline.csv")
    assert set(head.model) == {"iter0", XSS}
    mce = head[(head.model == XSS) & (head.measure == "mce")].iloc[0]
    # the fixture's mCE is computed from its per-image outcomes with iter0 as normaliser; the interval comes from
    # resampling both models' outcomes on the identical images
    assert mce.ci_low < mce.value < mce.ci_high and mce.diff_low <= mce["diff"] <= mce.diff_high
    assert mce.verdict == "better" and mce.diff_high < 0 and "paired bootstrap" in mce.test
    for measure in ("clean_top1", "a_top1", "mce", "relative_mce", "mfr", "mt5d", "fgsm@8"):
        row = head[(head.model == XSS) & (head.measure == measure)].iloc[0]
        assert np.isfinite(row.ci_low) and np.isfinite(row.diff_low), measure  # an interval on every headline number
    clean = head[(head.model == XSS) & (head.measure == "clean_top1")].iloc[0]
    # the exact two-sided McNemar p, by hand from the fixture's per-image outcomes: 2 P(X <= min) for X ~ Bin(n, 1/2)
    a, b = (pd.read_parquet(FIX / "results" / m / "per_image.parquet").query("task == 'clean'").set_index("image").correct
            for m in ("xss", "iter0"))
    a, b = a.loc[b.index].to_numpy(bool), b.to_numpy(bool)
    n01, n10 = int((a & ~b).sum()), int((~a & b).sum())
    p = min(1.0, 2 * sum(math.comb(n01 + n10, k) for k in range(min(n01, n10) + 1)) / 2 ** (n01 + n10))
    assert n01 + n10 > 0 and clean.p_value == pytest.approx(p, rel=1e-5)  # saved to 6 digits
    assert clean.test.startswith(f"exact McNemar ({n01} vs {n10} discordant of {len(a)})")
    assert clean["diff"] == pytest.approx(100 * (a.mean() - b.mean()))
    base = head[(head.model == "iter0") & (head.measure == "mce")].iloc[0]
    assert base.value == 100 and "normaliser itself" in base.note  # no fake [100, 100] interval on the page
    assert 'id="verdict"' in html and "p &lt; 0.001" in html and not re.search(r"\de-\d", re.sub(r"data:[^\"]+", "", html))
    assert html.count("data:image/png;base64,") >= 8  # 4 families, CE, FR, attacks, 2 progress, 2 pseudo-label
    assert "http://" not in html and "https://" not in html and "<link" not in html  # nothing from the network
    assert "published, not measured here" not in html  # not ImageNet: no published rows
    assert "{'" not in html and ">None<" not in html  # no Python reprs on the page


def _table(html: str, table_id: str) -> str:
    start = html.index(f'id="{table_id}"')
    return html[start: html.index("</table>", start)]


def test_a_difference_whose_interval_spans_zero_is_neither_coloured_nor_best(tmp_path):
    out = tmp_path / "r"
    html = render_report([FIX / "results"], out, baseline="iter0").read_text()
    head = pd.read_csv(out / "headline.csv")
    a = head[(head.model == XSS) & (head.measure == "a_top1")].iloc[0]
    assert a["diff"] > 0 and a.diff_low < 0 < a.diff_high  # higher, but the interval spans zero
    assert a.verdict == (f"underpowered (MDE {a.mde:.1f})" if a.mde > a.usual_effect else "no significant difference")
    cell = _table(html, "bench-a")
    assert 'class="best"' not in cell and "d good" not in cell and "d bad" not in cell
    assert "d good" in _table(html, "bench-clean") and 'class="best"' in _table(html, "bench-clean")  # the control


def test_best_marks_need_intervals_that_exclude_zero_and_a_best_clear_of_the_runner_up():
    from nsbench.report.compare import best_marks, verdict

    def head(low, high, new_ci=(50.6, 51.4)):
        return pd.DataFrame([
            {"model": "base", "measure": "m", "higher_is_better": True, "value": 50.0, "ci_low": 49.6,
             "ci_high": 50.4, "verdict": ""},
            {"model": "new", "measure": "m", "higher_is_better": True, "value": 51.0, "ci_low": new_ci[0],
             "ci_high": new_ci[1], "verdict": verdict(low, high, True)}])

    assert best_marks(head(-0.5, 2.5), "base") == set()
    assert best_marks(head(0.2, 2.5), "base") == {("new", "m")}
    # a paired difference that excludes zero, but the best's interval overlaps the runner-up's: no star
    assert best_marks(head(0.2, 2.5, new_ci=(50.2, 51.8)), "base") == set()
    assert verdict(-3.0, -1.0, False) == "better" and verdict(float("nan"), 1.0, True) == "no interval"


def test_model_names_are_escaped(tmp_path):
    html = render_report([FIX / "results"], tmp_path / "r").read_text()
    assert XSS not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.lower().count("<script") == 1 and "<script>\n(function" in html  # only the page's own sorting code


def test_published_rows_appear_for_imagenet_results(tmp_path):
    import json

    src = tmp_path / "in"
    shutil.copytree(FIX / "results" / "iter0", src / "m")
    meta = json.loads((src / "m" / "meta.json").read_text())
    meta["dataset"]["source"] = "imagenet:/data/imagenet"
    (src / "m" / "meta.json").write_text(json.dumps(meta))
    html = render_report([src], tmp_path / "r").read_text()
    assert "published, not measured here" in html and "EfficientNet-L2 NoisyStudent" in html


def test_bad_inputs_get_one_line_errors(tmp_path):
    with pytest.raises(NsbenchError, match="not found"):
        render_report([tmp_path / "missing"], tmp_path / "r")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NsbenchError, match="neither eval results"):
        render_report([tmp_path / "empty"], tmp_path / "r")
    with pytest.raises(NsbenchError, match="baseline 'nope'"):
        render_report([FIX / "results"], tmp_path / "r", baseline="nope")


@pytest.mark.browser
def test_report_in_headless_chromium(tmp_path):
    from browser import pages

    index = render_report([FIX / "results", FIX / "run"], tmp_path / "report", baseline="iter0")
    for b, width in pages(index):  # each width: the page never scrolls sideways; no console error
        # every benchmark has a line, or (an underpowered built -A) a left-out note
        assert b.eval("document.querySelectorAll('.verdict li, .verdict .left-out').length") >= 5
        assert XSS in b.eval("document.querySelector('#verdict').nextElementSibling.innerText")
        decoded = b.eval("Promise.all(Array.from(document.images).map(i => i.decode().then(() => "
                         "[i.naturalWidth, i.getBoundingClientRect().width])))")
        assert len(decoded) >= 8 and all(w > 0 and 0 < shown <= width for w, shown in decoded), decoded
        if width == 1400:  # every table fits without scrolling
            wide = b.eval("Array.from(document.querySelectorAll('table')).filter("
                          "t => t.scrollWidth > t.parentElement.clientWidth).map(t => t.id)")
            assert wide == []
        order = "Array.from(document.querySelectorAll('#models tbody tr')).map(r => r.cells[0].dataset.sort)"
        col = "Array.from(document.querySelectorAll('#models thead button')).findIndex(x => x.textContent === 'mCE')"
        b.eval(f"document.querySelectorAll('#models thead button')[{col}].click()")
        assert b.eval(order) == [XSS, "iter0"]  # ascending mCE: 85 before 100
        b.eval(f"document.querySelectorAll('#models thead button')[{col}].click()")
        assert b.eval(order) == ["iter0", XSS]
        assert b.eval("document.querySelectorAll('script').length") == 1
        shot = ARTIFACTS / f"report-{width}.png"
        b.screenshot(shot)
        assert shot.stat().st_size > 10_000


def _demo_like(tmp_path: Path) -> Path:
    """The fixture's model as four iterations with the demo's labels, a lineage chain and a long architecture."""
    import json

    root = tmp_path / "demo"
    parent = None
    for k in range(4):
        label, dst = f"demo-iter{k}", root / f"demo-iter{k}"
        shutil.copytree(FIX / "results" / "iter0", dst)
        meta = json.loads((dst / "meta.json").read_text())
        sha = f"{k + 1:064x}"
        meta["model"].update(label=label, sha256=sha, iteration=k, parent_sha256=parent,
                             arch="tf_efficientnet_lite0.in1k_with_a_long_variant_name")
        parent = sha
        (dst / "meta.json").write_text(json.dumps(meta))
        rows = pd.read_csv(dst / "results.csv")
        rows.assign(model=label).to_csv(dst / "results.csv", index=False)
        per = pd.read_parquet(dst / "per_image.parquet")
        per.assign(model=label).to_parquet(dst / "per_image.parquet") if "model" in per else None
    return root


@pytest.mark.browser
def test_a_demo_sized_report_fits_at_1400_and_400_px(tmp_path):
    """Four models with lineage: the Models table fits at 1400 px (its text cells wrap) and scrolls inside its own
    box at 400 px; preprocessing/versions are said once; the -P table is headed by what it shows."""
    from browser import pages

    index = render_report([_demo_like(tmp_path)], tmp_path / "report", baseline="demo-iter0")
    html = index.read_text()
    assert html.count(": preprocessing ") == 1 and "all models: preprocessing " in html  # once, not per model
    for b, width in pages(index):  # each width: the page never scrolls sideways; no console error
        models = b.eval("(() => { const t = document.querySelector('#models'); "
                        "return [t.scrollWidth, t.parentElement.clientWidth, t.rows.length]; })()")
        assert models[2] == 5
        if width == 1400:
            assert models[0] <= models[1], models  # no clipped last column
            wide = b.eval("Array.from(document.querySelectorAll('table')).filter("
                          "t => t.scrollWidth > t.parentElement.clientWidth).map(t => t.id)")
            assert wide == []
        heads = b.eval("Array.from(document.querySelectorAll('h3')).map(h => h.textContent)")
        assert "Flip rate per perturbation" not in heads  # FR (normalised) or flip probability, by what it holds
        assert any(h.startswith(("FR per perturbation", "Flip probability per perturbation")) for h in heads)
        b.screenshot(ARTIFACTS / f"report-demo-{width}.png")


def test_per_corruption_and_perturbation_intervals_for_the_dot_plots():
    """Each CE / FR dot gets a 95% bootstrap interval around its saved value (the normaliser's own CE = 100 has
    none to speak of), computed as the headline means are; cells without per-image outcomes get none."""
    from nsbench.report import conditions
    from nsbench.report.headline import condition_intervals
    from nsbench.report.load import load_inputs

    evals, _ = load_inputs([FIX / "results"])
    for task, metric in (("corruptions", "ce"), ("perturbations", "fr"), ("perturbations", "fp")):
        t = conditions.per_condition(evals, task, metric)
        ci = condition_intervals(evals, task, metric, list(t.index))
        assert len(ci) == t.size
        for (model, cond), (lo, hi) in ci.items():
            v = t.loc[cond, model]
            assert lo <= v + 1e-9 and v - 1e-9 <= hi
            if metric != "fp" and model == "iter0":  # the normaliser: exactly 100, interval of width 0
                assert lo == hi == 100.0
            else:
                assert hi > lo
