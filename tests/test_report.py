"""Reports: rendered from saved results only, escaped, self-contained, and checked in a real browser."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from conftest import ARTIFACTS
from nsbench.cli import main
from nsbench.report.render import render_report
from nsbench.utils import NsbenchError

FIX = Path(__file__).resolve().parent / "fixtures"
XSS = "<script>alert(1)</script>"


@pytest.fixture
def no_models(monkeypatch):
    """Any attempt to build or run a model fails the test: reports come from saved results only."""
    import nsbench.bench.api as R
    import nsbench.models as M

    def boom(*a, **k):
        raise AssertionError("the report ran a model")

    monkeypatch.setattr(M, "build_model", boom)
    monkeypatch.setattr(R, "evaluate", boom)


def test_render_from_fixture_results_without_running_a_model(tmp_path, no_models):
    out = tmp_path / "report"
    assert main(["report", str(FIX / "results"), str(FIX / "run"), "--baseline", "iter0", "--out", str(out)]) == 0
    html = (out / "index.html").read_text()
    for f in ("summary.csv", "comparisons.csv", "corruptions_ce.csv", "perturbations_fr.csv", "results.csv", "provenance.json"):
        assert (out / f).exists(), f
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary.model) == {"iter0", XSS}
    xss = summary[summary.model == XSS].iloc[0]
    assert xss["Δ mCE"] == pytest.approx(-21.0)  # fixture: mCE 100 - 7 * 3 against the baseline's 100
    comp = pd.read_csv(out / "comparisons.csv")
    row = comp[(comp.model == XSS) & (comp.measure == "clean top-1")].iloc[0]
    assert row.ci_low <= row.value <= row.ci_high and 0 <= row.p_value <= 1 and "McNemar" in row.test
    assert html.count("data:image/png;base64,") >= 5  # severity, CE, FR, FGSM, pseudo-label figures
    assert "http://" not in html and "https://" not in html and "<link" not in html  # nothing from the network
    assert "published, not measured here" not in html  # not ImageNet: no published rows


def test_model_names_are_escaped(tmp_path):
    html = render_report([FIX / "results"], tmp_path / "r").read_text()
    assert XSS not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html.lower()


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
    from browser import Browser, chromium_path

    if chromium_path() is None:
        pytest.fail("chromium is not installed; `make test` installs it (apt-get install chromium)")
    index = render_report([FIX / "results", FIX / "run"], tmp_path / "report", baseline="iter0")
    b = Browser()
    try:
        b.goto(index.as_uri())
        rows = b.eval("Array.from(document.querySelectorAll('#summary tbody tr')).map(r => r.dataset.model)")
        assert sorted(rows) == sorted(["iter0", XSS])  # a row per model, the hostile name shown as text
        assert b.eval("document.querySelectorAll('script').length") == 0
        assert XSS in b.eval("document.querySelector('#summary').innerText")
        imgs = b.eval("Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
        assert len(imgs) >= 5 and all(c and w > 0 and h > 0 for c, w, h in imgs), imgs
        shot = ARTIFACTS / "report.png"
        b.screenshot(shot)
        assert shot.stat().st_size > 10_000
        assert b.console_errors() == []
    finally:
        b.close()
