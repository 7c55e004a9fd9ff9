"""A report that adapts to the data it has (issue 33, item 5): headings from what was scored (built or official sets),
one built -A notice per page, figure captions only for what is drawn, number cells that never break, and the
calibration table after the figures, folded per task, every row with its eps. Two reports: a Fashion-MNIST-like one
(three models, every robustness set built, calibration rows, a built -A set large enough to reach the verdict
cards) and a bring-your-own-model one (one timm model on ImageNet, the official -C files, no normaliser)."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import ARTIFACTS, FIX
from nsbench.calibration import summary
from nsbench.report.headline import BUILT_A
from nsbench.report.render import render_report

FASHION = ["fm-iter0", "fm-iter1", "fm-iter2"]
NA = 3000  # built -A images: enough for the -A line to be evidence, so it sits on every verdict card
A_NOTICE = "reference classifiers all get wrong"  # a phrase of the built -A notice (headline.BUILT_A)
assert A_NOTICE in BUILT_A


def _make_results():
    """tests/fixtures/make_results.py as a fresh module (its NA is set per report, never on a shared module)."""
    spec = importlib.util.spec_from_file_location("make_results_adapts", FIX / "make_results.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _calibrated(frames: list[pd.DataFrame], rows: list[list], label: str, rng: np.random.Generator) -> None:
    """Per-image confidence / nll / brier on every cell that holds `correct`, and the cell's ece / nll / brier rows
    valued as the harness values them (nsbench.calibration.summary), so the report's bootstrap reproduces them."""
    for f in frames:
        if "correct" not in f:
            continue
        ok = f.correct.to_numpy(bool)
        conf = np.where(ok, rng.beta(6, 1.5, len(f)), rng.beta(3, 2, len(f))).clip(0.11, 1.0)
        f["confidence"] = conf
        f["nll"] = -np.log(np.where(ok, conf, (1 - conf) / 9).clip(1e-7))
        f["brier"] = np.where(ok, (1 - conf) ** 2, conf ** 2 + 1) + (1 - conf) ** 2 / 9
        task, cond = f.task.iloc[0], f.condition.iloc[0]
        sev, eps = int(f.severity.iloc[0]), float(f.eps_255.iloc[0])
        for metric, value in summary({k: f[k].to_numpy() for k in ("correct", "confidence", "nll", "brier")}).items():
            rows.append([label, "robustness", task, cond, sev if task == "corruptions" else None,
                         eps if task == "fgsm" else None, eps / 255 if task == "fgsm" else None, metric, value,
                         len(f), None])


def _write(out: Path, label: str, rows: list, per: list, meta: dict, mr) -> None:
    out.mkdir(parents=True)
    df = pd.DataFrame(rows, columns=mr.COLS)
    df.to_csv(out / "results.csv", index=False, float_format="%.6g")
    pd.concat(per, ignore_index=True).to_parquet(out / "per_image.parquet", index=False)
    meta["results"] = {"rows": len(df), "sha256": hashlib.sha256((out / "results.csv").read_bytes()).hexdigest()}
    (out / "meta.json").write_text(json.dumps(meta, indent=2))


def fashion_like(root: Path) -> Path:
    """Three iterations on Fashion-MNIST, every set built (-C, -P, -A) and the first the normaliser, with calibration
    on clean, -C, -A and FGSM at eps 0 / 2 / 8."""
    mr = _make_results()
    mr.NA = NA
    rng = np.random.default_rng(33)
    skills = [0.80, 0.84, 0.86]
    outs = [mr.outcomes(s, rng) for s in skills]
    for k, o in enumerate(outs):  # -A outcomes nested in the first model's: few discordant images, a powered test
        o["a"] = outs[0]["a"] | (rng.random(NA) < 0.03 * k)
    norm_sha = "00" * 32
    for k, (label, o) in enumerate(zip(FASHION, outs)):
        rows, per = mr.rows_for(label, o, outs[0], f"{FASHION[0]} ({norm_sha[:12]})")
        _calibrated(per, rows, label, rng)
        meta = {"model": {"label": label, "sha256": f"{k:02d}" * 32, "arch": "test_efficientnet", "iteration": k,
                          "parent_sha256": None if k == 0 else f"{k - 1:02d}" * 32, "n_params": 100000 + k},
                "suite": {"name": "robustness"},
                "dataset": {"source": "fashion-mnist", "split": "test", "fingerprint": "f00dfeed"},
                "normaliser": {"kind": "model", "name": f"{FASHION[0]} ({norm_sha[:12]})", "sha256": norm_sha},
                "preprocessing": {"image_size": 32},
                "sets": {"corruptions": {"folder": "C-x", "source": "C-x", "n": mr.N, "seed": 0},
                         "perturbations": {"folder": "P-x", "source": "P-x", "n": mr.NSEQ},
                         "natural_adversarial": {"folder": "A-x", "n": NA, "n_pool": 10000, "pool": "fashion-mnist[test]",
                                                 "rule": "kept: pool images that every reference model misclassifies",
                                                 "references": [{"arch": "test_resnet", "seed": 0, "pool_top1": 90.0}],
                                                 "ref_epochs": 2, "ref_train_limit": 20000}},
                "versions": {"torch": "x"}, "created": "2026-12-01T00:00:00+00:00", "limit": None}
        _write(root / label, label, rows, per, meta, mr)
    return root


BYO = "my-resnet50"


def byo_imagenet(root: Path) -> Path:
    """One timm model (published numbers exist for it) scored on ImageNet and the official ImageNet-C files, with
    no normaliser: -C is a mean error, no CE, no -P, no -A."""
    mr = _make_results()
    o = mr.outcomes(0.76, np.random.default_rng(5))
    rows, per = mr.rows_for(BYO, o, o, None)
    keep = {"clean": {"top1_acc", "top5_acc"}, "corruptions": {"top1_err", "mean_err"}, "fgsm": {"top1_acc"}}
    rows = [r for r in rows if r[7] in keep.get(r[2], set())]
    per = [f for f in per if f.task.iloc[0] in keep]
    meta = {"model": {"label": BYO, "sha256": "ab" * 32, "arch": "timm:resnet50.tv_in1k", "iteration": None,
                      "parent_sha256": None, "n_params": 25_557_032},
            "suite": {"name": "imagenet"},
            "dataset": {"source": "imagenet:/data/imagenet", "split": "val", "fingerprint": "beef"},
            "normaliser": {"kind": "none", "name": None, "sha256": None},
            "preprocessing": {"image_size": 224, "crop_pct": 0.875, "interpolation": "bilinear"},
            "sets": {"corruptions": {"source": "official:/data/imagenet-c", "calibration": "imagenet-c (official files)"}},
            "versions": {"torch": "x"}, "created": "2026-12-01T00:00:00+00:00", "limit": None}
    _write(root / BYO, BYO, rows, per, meta, mr)
    return root / BYO


@pytest.fixture(scope="module")
def fashion(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("fashion")
    return render_report([fashion_like(tmp / "results")], tmp / "report", baseline=FASHION[0], title="Fashion-MNIST")


@pytest.fixture(scope="module")
def byo(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("byo")
    return render_report([byo_imagenet(tmp / "results")], tmp / "report", title="my model")


def _visible(html: str) -> str:
    """The page without its inline images and tooltips (attributes a reader does not see)."""
    return re.sub(r'\s(?:src|title|alt)="[^"]*"', "", html)


def _headings(html: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", h).strip() for h in re.findall(r"<h[23][^>]*>(.*?)</h[23]>", html, re.S)]


def test_shifted_sets_are_headed_by_what_was_scored(fashion, byo):
    """Every set built (Fashion-MNIST): no "Official" heading, nor ImageNet-C-bar's note; the official ImageNet-C
    files of a BYO ImageNet report: "Official"."""
    html = fashion.read_text()
    heads = _headings(html)
    assert "Built shifted sets" in heads and not any("Official" in h for h in heads), heads
    assert not any("ImageNet" in h for h in heads)
    assert "ImageNet-C-bar" not in _visible(html)  # a note on sets this page does not hold
    byo_heads = _headings(byo.read_text())
    assert "Official shifted sets" in byo_heads and "Built shifted sets" not in byo_heads


def test_a_mixed_page_says_which_shifted_set_is_which():
    from nsbench.report import shifts
    from nsbench.report.load import EvalResult

    def ev(sets, source="imagenet:/x"):
        return EvalResult("m", Path("."), pd.DataFrame(), {"sets": sets, "dataset": {"source": source}}, None)

    official_c = ev({"corruptions": {"source": "official:/data/imagenet-c"}})
    built_c = ev({"corruptions": {"folder": "C-1", "source": "C-1"}})
    assert shifts.origin(official_c, "imagenet_c") == "official" and shifts.origin(built_c, "imagenet_c") == "built"
    assert shifts.origin(ev({}), "imagenet_v2:matched-frequency") == "official"
    assert shifts.origin(ev({"natural_adversarial": {"references": [], "folder": "A-1"}}), "built_a") == "built"
    assert shifts.origin(ev({"natural_adversarial": {"source": "official imagenet-a: /d"}}), "imagenet_a") == "official"
    assert shifts.origin(ev({}, source="fashion-mnist"), "imagenet_c") == "built"  # official sets are ImageNet's
    assert shifts.origin(ev({}), "imagenet_c") == ""  # ImageNet, and nothing recorded: unknown
    assert shifts.heading({"built"}) == "Built shifted sets" and shifts.heading({"official"}) == "Official shifted sets"
    assert shifts.heading({"built", "official"}) == "Shifted sets (built and official)"


def test_one_built_a_notice_per_page(fashion):
    """The built -A line sits on every verdict card (3,000 images: it is evidence), its notice once on the page and
    each card's line pointing at it."""
    html = fashion.read_text()
    warns = re.findall(r'<div class="warn"[^>]*>(.*?)</div>', html, re.S)
    assert sum(A_NOTICE in w for w in warns) == 1, warns
    cards = re.findall(r'<div class="card verdict".*?</ul>', html, re.S)
    assert len(cards) == len(FASHION) - 1 and all("built -A top-1" in c for c in cards)  # a line on each card
    notice = re.search(r'<div class="warn" id="([^"]+)">[^<]*' + re.escape(A_NOTICE), html)
    assert notice and all(f'href="#{notice.group(1)}"' in c for c in cards)


def test_captions_mention_only_what_is_drawn(fashion, byo):
    """The dashed normaliser line is named where a CE / FR dot plot draws it, never on a page without a normaliser;
    a -C plot of mean errors is captioned as one."""
    f = _visible(fashion.read_text())
    assert "dashed line: the normaliser" in f
    b = _visible(byo.read_text())
    assert "dashed" not in b and "corruption error per corruption" not in b
    assert "mean top-1 error per corruption" in b
    assert not any("perturbation" in h.lower() for h in _headings(b))  # no -P scored: none drawn, none named


def test_calibration_after_the_figures_folded_per_task_every_row_with_its_eps(fashion):
    html = fashion.read_text()
    heads = _headings(html)
    figures = max(heads.index(h) for h in heads if h.startswith(("Accuracy by severity", "Adversarial accuracy")))
    assert heads.index("Calibration") > figures, heads
    start = html.index('id="calibration"')
    section = html[start: html.find("<h2", start) if "<h2" in html[start:] else len(html)]
    tasks = re.findall(r"<details[^>]*>\s*<summary>(.*?)</summary>", section, re.S)
    assert len(tasks) == 4, tasks  # clean, -C (mean over cells), -A, FGSM: one fold each, not 36 loose rows
    rows = re.findall(r'<tr[^>]*data-model="[^"]*"[^>]*>.*?</tr>', section, re.S)
    fgsm = [r for r in rows if "FGSM" in r]
    assert len(fgsm) == 3 * len(FASHION) and all(re.search(r"\d+/255", r) for r in fgsm)  # eps 0 included
    assert sum("at 0/255" in r for r in fgsm) == len(FASHION)
    cal = pd.read_csv(fashion.parent / "calibration.csv")
    attacked = cal[(cal.task == "fgsm") & (cal.eps_255 > 0) & (cal.model != FASHION[0])]
    assert len(attacked) == 2 * 3 * (len(FASHION) - 1) and np.isfinite(attacked["diff"]).all()  # paired at its eps


LINES = """Array.from(document.querySelectorAll('.v, .ci, .d, .nw, td.n')).filter(e => e.offsetParent !== null).map(e => {
  const r = document.createRange(); r.selectNodeContents(e);
  const tops = new Set(Array.from(r.getClientRects()).filter(x => x.width > 0).map(x => Math.round(x.top)));
  return [e.textContent, tops.size]; }).filter(x => x[1] > 1)"""


@pytest.mark.browser
def test_adapted_reports_in_headless_chromium(fashion, byo):
    """At 1400 and 400 px, with every fold opened: no number cell spans two lines; the Fashion-MNIST report has no
    "Official" heading and one built -A notice; the BYO report's published numbers stay whole."""
    from browser import pages

    for name, index in (("fashion", fashion), ("byo", byo)):
        for b, width in pages(index):
            b.eval("document.querySelectorAll('details').forEach(d => d.open = true)")
            cells = b.eval("document.querySelectorAll('.v, .ci, .d, td.n').length")
            assert cells > 20, cells
            assert b.eval(LINES) == [], (name, width)
            heads = b.eval("Array.from(document.querySelectorAll('h2, h3')).map(h => h.textContent)")
            if name == "fashion":
                assert not any("Official" in h or "ImageNet" in h for h in heads), heads
                notices = b.eval("Array.from(document.querySelectorAll('.warn')).filter("
                                 f"w => w.textContent.includes({json.dumps(A_NOTICE)})).length")
                assert notices == 1
            else:
                assert b.eval("document.querySelectorAll('#published-measured td.n, #published td.n').length") >= 4
            b.screenshot(ARTIFACTS / f"report-adapts-{name}-{width}.png")
