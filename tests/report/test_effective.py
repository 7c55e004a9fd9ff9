"""report/effective.py by value: the logit with its clip at 0.1 and 99.9 %, the published (clean, shifted) top-1
pairs of the shipped table (none for ImageNet-C, published as mCE), each model's distance from the line through two
baselines or, failing two distinct clean accuracies, through the published rows (two suffice); and what the figure
draws: the published points and each model at (clean, shifted) / 100 (a model at 0 % at 0.1 %), the fitted line and
y = x, axes from 5 points below the lowest accuracy drawn to 2 above the highest (within [0.1, 99.9] %), the percent
ticks inside that range (its ends included), each model's own marker and its effective robustness in the legend,
baselines outlined, no published points beside a line through baselines, the panels in the table's order of sets.
Inputs are fabricated results rows and, where a test says so, published rows; numbers by hand."""
from __future__ import annotations

import csv
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.markers import MarkerStyle

from nsbench import schema
from nsbench.report import effective
from nsbench.report.load import EvalResult

SETS = {"imagenet_sketch": ("imagenet_sketch", "sketch"), "imagenet_a": ("natural_adversarial", "imagenet-a")}


def result(label: str, clean: float, **shifted: float) -> EvalResult:
    """A model's clean top-1 and its top-1 on the shifted sets named (keys of SETS), as results rows."""
    rows = [schema.row(model=label, suite="t", n=10, task="clean", condition="clean", metric="top1_acc", value=clean)]
    rows += [schema.row(model=label, suite="t", n=10, task=SETS[k][0], condition=SETS[k][1], metric="top1_acc",
                        value=v) for k, v in shifted.items()]
    df = schema.frame(rows).astype({"value": float})
    return EvalResult(label, Path(label), df, {"model": {"label": label}}, None)


def published(monkeypatch, **models: tuple[float, dict[str, float]]) -> None:
    """Replace the shipped published rows by `model=(clean top-1, {set: top-1})` (and one mCE row each)."""
    rows = []
    for m, (clean, sets) in models.items():
        rows.append({"model": m, "set": "clean", "metric": "top1_acc", "value": clean})
        rows += [{"model": m, "set": k, "metric": "top1_acc", "value": v} for k, v in sets.items()]
        rows.append({"model": m, "set": "imagenet_c", "metric": "mce", "value": 70.0})
    monkeypatch.setattr(effective, "published_scorecard", lambda: rows)


def lg(p: float) -> float:
    """logit of an accuracy in percent."""
    return math.log(p / (100 - p))


def line(x1, y1, x2, y2) -> tuple[float, float]:
    """(slope, intercept) of the line through two (clean, shifted) points in logit space."""
    slope = (lg(y2) - lg(y1)) / (lg(x2) - lg(x1))
    return slope, lg(y1) - slope * lg(x1)


def on_line(slope: float, icpt: float, clean: float) -> float:
    return 100 / (1 + math.exp(-(slope * lg(clean) + icpt)))


@pytest.fixture
def drawn(monkeypatch):
    """figure(er, baselines) -> (captions, the matplotlib figures themselves, drawn, before they become PNGs)."""
    figs = []

    def keep(fig):
        fig.canvas.draw()
        figs.append(fig)
        return f"png {len(figs)}"

    monkeypatch.setattr(effective.figures, "png", keep)

    def draw(er, baselines=None):
        figs.clear()
        panels = effective.figure(er, baselines)
        assert [p for _, p in panels] == [f"png {i + 1}" for i in range(len(figs))]
        return [c for c, _ in panels], list(figs)

    yield draw
    for f in figs:
        plt.close(f)


def points(ax) -> dict:
    """label -> the points of the scatter so labelled."""
    return {c.get_label(): c for c in ax.collections}


def ticks(ax) -> tuple[list[str], list[str]]:
    return [t.get_text() for t in ax.get_xticklabels()], [t.get_text() for t in ax.get_yticklabels()]


# ---- the numbers

def test_logit_clips_accuracies_to_a_tenth_of_a_percent_from_either_end():
    assert effective.logit(62.5) == pytest.approx(math.log(0.625 / 0.375), rel=1e-12)
    assert effective.logit(0.5) == pytest.approx(math.log(0.005 / 0.995), rel=1e-12)  # above 0.1: not clipped
    assert effective.logit(0.0) == pytest.approx(math.log(0.001 / 0.999), rel=1e-12)
    assert effective.logit(100.0) == pytest.approx(math.log(0.999 / 0.001), rel=1e-12)
    assert effective.inv_logit(math.log(3)) == pytest.approx(75.0, rel=1e-12)


def test_published_points_are_the_top1_pairs_of_the_shipped_table():
    from nsbench.reference import _DIR

    with open(_DIR / "published_scorecard.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["metric"] == "top1_acc"]
    clean = {r["model"]: float(r["value"]) for r in rows if r["set"] == "clean"}
    for key in ("imagenet_v2:matched-frequency", "imagenet_sketch", "imagenet_a", "imagenet_r"):
        want = sorted((r["model"], clean[r["model"]], float(r["value"])) for r in rows
                      if r["set"] == key and r["model"] in clean)
        got = effective.published_points(key)
        assert len(want) >= 4 and sorted(map(tuple, got[["model", "clean", "shifted"]].to_numpy())) == want, key
    # ImageNet-C is published as mCE, an error relative to AlexNet: no accuracy to draw or fit
    assert effective.published_points("imagenet_c").empty


def test_effective_robustness_is_the_distance_from_the_line_through_two_baselines():
    evals = [result("m1", 70.0, imagenet_sketch=45.0), result("m2", 75.0, imagenet_sketch=35.0),
             result("m3", 90.0, imagenet_sketch=80.0)]
    er = effective.effective_robustness(evals, ["m1", "m2"]).set_index("model")
    slope, icpt = line(70, 45, 75, 35)
    assert list(er.index) == ["m1", "m2", "m3"] and set(er.set) == {"imagenet_sketch"}
    assert list(er.clean) == [70.0, 75.0, 90.0] and list(er.shifted) == [45.0, 35.0, 80.0]  # the set's, not clean
    assert (er.fit_from == "baselines: m1, m2").all()
    assert er.slope.iloc[0] == pytest.approx(slope, rel=1e-9) and er.intercept.iloc[0] == pytest.approx(icpt, rel=1e-9)
    assert er.predicted["m3"] == pytest.approx(on_line(slope, icpt, 90), rel=1e-9)
    assert er.effective_robustness["m3"] == pytest.approx(80 - on_line(slope, icpt, 90), rel=1e-9)
    assert er.effective_robustness[["m1", "m2"]].to_numpy() == pytest.approx([0, 0], abs=1e-9)


def test_baselines_of_one_clean_accuracy_give_no_line_and_two_published_models_do(monkeypatch):
    published(monkeypatch, p1=(60.0, {"imagenet_sketch": 30.0}), p2=(80.0, {"imagenet_sketch": 50.0}))
    evals = [result("m1", 70.0, imagenet_sketch=45.0), result("m2", 70.0, imagenet_sketch=35.0)]
    er = effective.effective_robustness(evals, ["m1", "m2"]).set_index("model")
    slope, icpt = line(60, 30, 80, 50)
    assert (er.fit_from == "published rows (2 models)").all()
    assert er.slope.iloc[0] == pytest.approx(slope, rel=1e-9) and er.intercept.iloc[0] == pytest.approx(icpt, rel=1e-9)
    assert er.effective_robustness.to_numpy() == pytest.approx([45 - on_line(slope, icpt, 70),
                                                               35 - on_line(slope, icpt, 70)], rel=1e-9)
    published(monkeypatch, p1=(60.0, {"imagenet_sketch": 30.0}), p2=(80.0, {}))  # one published pair: no line
    assert effective.effective_robustness(evals, ["m1", "m2"]).empty


# ---- the figure

def test_figure_draws_the_models_the_published_points_and_the_line_over_the_range_of_the_data(monkeypatch, drawn):
    published(monkeypatch, p1=(60.0, {"imagenet_sketch": 30.0}), p2=(80.0, {"imagenet_sketch": 50.0}))
    er = effective.effective_robustness([result("m1", 70.0, imagenet_sketch=45.0),
                                         result("m2", 75.0, imagenet_sketch=35.0)])
    captions, (fig,) = drawn(er)
    assert captions == ["ImageNet-Sketch: fit through published rows (2 models); legend: effective robustness (points)"]
    ax = fig.axes[0]
    assert (ax.get_xscale(), ax.get_yscale()) == ("logit", "logit")
    assert ax.get_xlabel() == "clean top-1 (%, logit axis)" and ax.get_ylabel() == "ImageNet-Sketch top-1 (%)"
    # every accuracy drawn: 70, 75, 45, 35 (models), 60, 80, 30, 50 (published): from 30 - 5 to 80 + 2 points
    assert ax.get_xlim() == pytest.approx((0.25, 0.82), rel=1e-12)
    assert ax.get_ylim() == pytest.approx((0.25, 0.82), rel=1e-12)
    assert ticks(ax) == (["30", "40", "50", "60", "70", "80"],) * 2
    pts = points(ax)
    slope, icpt = line(60, 30, 80, 50)
    er1, er2 = 45 - on_line(slope, icpt, 70), 35 - on_line(slope, icpt, 75)
    m1, m2 = f"m1 ({er1:+.1f})", f"m2 ({er2:+.1f})"
    assert (m1, m2) == ("m1 (+6.4)", "m2 (-8.8)")  # the line predicts 38.57 at 70 and 43.82 at 75
    assert set(pts) == {"published", m1, m2}
    np.testing.assert_allclose(pts["published"].get_offsets(), [[0.6, 0.3], [0.8, 0.5]], rtol=1e-12)
    np.testing.assert_allclose(pts[m1].get_offsets(), [[0.70, 0.45]], rtol=1e-12)
    np.testing.assert_allclose(pts[m2].get_offsets(), [[0.75, 0.35]], rtol=1e-12)
    for label, marker in ((m1, "o"), (m2, "s")):  # each model its own marker, in order
        m = MarkerStyle(marker)
        np.testing.assert_allclose(pts[label].get_paths()[0].vertices,
                                   m.get_path().transformed(m.get_transform()).vertices)
    lines = {x.get_label(): x for x in ax.get_lines()}
    assert set(lines) == {"fit", "y = x"}
    xs, ys = lines["fit"].get_xdata(), lines["fit"].get_ydata()
    assert (xs[0], xs[-1]) == pytest.approx((0.25, 0.82), rel=1e-12) and np.all(np.diff(xs) > 0)
    want = [on_line(slope, icpt, 100 * x) / 100 for x in xs]
    np.testing.assert_allclose(ys, want, rtol=1e-9)
    assert on_line(slope, icpt, 60) == pytest.approx(30) and on_line(slope, icpt, 80) == pytest.approx(50)
    np.testing.assert_array_equal(lines["y = x"].get_xdata(), lines["y = x"].get_ydata())
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["published", "fit", "y = x", m1, m2]


def test_figure_ticks_the_percentages_inside_the_axis_range_its_ends_included(monkeypatch, drawn):
    published(monkeypatch)  # none: the range is the models' own
    # 15 - 5 = 10 and 88 + 2 = 90: the range ends on the 10 % and 90 % ticks
    er = effective.effective_robustness([result("m1", 15.0, imagenet_sketch=40.0),
                                         result("m2", 88.0, imagenet_sketch=60.0)], ["m1", "m2"])
    _, (fig,) = drawn(er, ["m1", "m2"])
    ax = fig.axes[0]
    assert ax.get_xlim() == pytest.approx((0.1, 0.9), rel=1e-12)
    assert ticks(ax) == (["10", "20", "30", "40", "50", "60", "70", "80", "90"],) * 2
    # from 0 % to 99 %: the range is cut at 0.1 % and 99.9 %, every tick drawn, a model at 0 % drawn at 0.1 %
    er = effective.effective_robustness([result("m1", 0.0, imagenet_sketch=10.0),
                                         result("m2", 98.0, imagenet_sketch=99.0)], ["m1", "m2"])
    _, (fig,) = drawn(er, ["m1", "m2"])
    ax = fig.axes[0]
    assert ax.get_xlim() == pytest.approx((0.001, 0.999), rel=1e-12)
    assert ticks(ax) == (["1", "5", "10", "20", "30", "40", "50", "60", "70", "80", "90", "95", "99", "99.9"],) * 2
    np.testing.assert_allclose(next(c for c in ax.collections if c.get_label().startswith("m1 ")).get_offsets(),
                               [[0.001, 0.1]], rtol=1e-12)


def test_a_line_through_baselines_outlines_them_and_draws_no_published_points(monkeypatch, drawn):
    published(monkeypatch, p1=(60.0, {"imagenet_sketch": 30.0}), p2=(80.0, {"imagenet_sketch": 50.0}))
    er = effective.effective_robustness([result("m1", 70.0, imagenet_sketch=45.0),
                                         result("m2", 75.0, imagenet_sketch=35.0),
                                         result("m3", 90.0, imagenet_sketch=80.0)], ["m1", "m2"])
    captions, (fig,) = drawn(er, ["m1", "m2"])
    assert captions[0].startswith("ImageNet-Sketch: fit through baselines: m1, m2;")
    pts = {label.split(" ")[0]: c for label, c in points(fig.axes[0]).items()}
    assert set(pts) == {"m1", "m2", "m3"}  # the published rows are not what the line was fitted through
    for m in ("m1", "m2"):
        np.testing.assert_array_equal(pts[m].get_edgecolor(), [[0, 0, 0, 1]])  # black outline
    assert len(pts["m3"].get_edgecolor()) == 0  # none


def test_panels_follow_the_tables_order_of_sets(drawn):
    # the set keys in the results' order: ImageNet-Sketch before ImageNet-A (not alphabetical)
    evals = [result("m1", 70.0, imagenet_sketch=45.0, imagenet_a=10.0),
             result("m2", 75.0, imagenet_sketch=35.0, imagenet_a=20.0)]
    er = effective.effective_robustness(evals, ["m1", "m2"])
    order = list(dict.fromkeys(r["set"] for r in effective.table(er)))
    assert order == ["ImageNet-Sketch", "ImageNet-A"]
    captions, _ = drawn(er, ["m1", "m2"])
    assert [c.split(":")[0] for c in captions] == order
