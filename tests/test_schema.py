"""One name, one number (nsbench/schema.py): every number the CLI logs and prints with --json is the results.csv row
the schema names for it; no module outside nsbench/schema.py spells a measure, metric or task name by hand; the names
the harness writes are the names the report and the study match (the round trip that once lost PGD: eval with a PGD
task -> the report shows it -> a study claim on `pgd@EPS` resolves)."""
from __future__ import annotations

import ast
import json
import logging
import math
import re
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from helpers import TINY_SUITE, PixelOracle, ctx_for, encoded_image, save, synsets
from nsbench import ModelInfo, ScoreSettings, evaluate, schema
from nsbench.bench.registry import task_kinds
from nsbench.cli import main
from nsbench.report.render import render_report

PACKAGE = Path(__file__).resolve().parents[1] / "nsbench"

# The row each measure name stands for, written out by hand (not read from the schema, which the test checks):
# name -> (task, metric, condition or None for "the task's one row", eps_255 or None)
FIXED = {
    "clean_top1": ("clean", "top1_acc", "clean", None),
    "a_top1": ("natural_adversarial", "top1_acc", None, None),
    "mce": ("corruptions", "mce", "all", None), "mce_partial": ("corruptions", "mce_partial", None, None),
    "relative_mce": ("corruptions", "relative_mce", "all", None),
    "relative_mce_partial": ("corruptions", "relative_mce_partial", None, None),
    "c_mean_err": ("corruptions", "mean_err", "all", None),
    "mfr": ("perturbations", "mfr", "all", None), "mfr_partial": ("perturbations", "mfr_partial", None, None),
    "mt5d": ("perturbations", "mt5d", "all", None), "mt5d_partial": ("perturbations", "mt5d_partial", None, None),
    "mean_fp": ("perturbations", "mean_fp", "all", None), "mean_t5d": ("perturbations", "mean_t5d", "all", None),
    "sketch_top1": ("imagenet_sketch", "top1_acc", "sketch", None),
    "c_bar_mean_err": ("imagenet_c_bar", "mean_err", "all", None),
    "c_bar_mean_err_partial": ("imagenet_c_bar", "mean_err_partial", "all", None),
    "3dcc_mean_err": ("imagenet_3dcc", "mean_err", "all", None),
    "3dcc_mean_err_partial": ("imagenet_3dcc", "mean_err_partial", "all", None),
}


def expected_row(name: str) -> tuple[str, str, str | None, float | None]:
    if name in FIXED:
        return FIXED[name]
    if m := re.fullmatch(r"(fgsm|pgd)@([\d.]+)", name):
        return m[1], "top1_acc", m[1], float(m[2])
    if m := re.fullmatch(r"v2_top1:(.+)", name):
        return "imagenet_v2", "top1_acc", m[1], None
    raise AssertionError(f"--json carries {name!r}, which this test does not know")


def row_value(rows: pd.DataFrame, name: str) -> float | None:
    task, metric, condition, eps = expected_row(name)
    m = (rows.task == task) & (rows.metric == metric)
    m &= (rows.condition == condition) if condition is not None else True
    m &= (rows.eps_255 == eps) if eps is not None else True
    (v,) = rows[m].value.tolist()  # exactly one row holds it
    return None if v is None or v != v else float(v)


def check_numbers(numbers: dict, line: str, rows: pd.DataFrame) -> None:
    """Every number equals its row; the log line carries each as the schema phrases it."""
    assert numbers
    for name, v in numbers.items():
        want = row_value(rows, name)
        assert v == pytest.approx(want, rel=1e-5) if want is not None else v is None, name  # %.6g in results.csv
        assert schema.measure(name).text(math.nan if want is None else want) in line, name


def test_cli_json_and_log_line_are_the_rows_the_schema_names(tiny_run, tmp_path, capsys, caplog):
    """The robustness suite end to end: clean, -A, -C, -P and FGSM at 4 and 8/255, whose calibration rows (ECE,
    NLL, Brier) share the attack's eps: `--json` once printed the Brier score as FGSM@8/255. Every warning is an
    error (`-v` after the subcommand): torch's "NumPy array is not writable" (read-only memory-mapped sets) must not
    come back; a task failing on it would show as a failed row."""
    import warnings

    out = tmp_path / "o"
    with caplog.at_level(logging.INFO, logger="nsbench"), warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["eval", str(tiny_run / "iter1.pt"), "--suite", "robustness", "--out", str(out), "--cache",
                     str(tmp_path / "cache"), "--device", "cpu", "--json", "-v",
                     *[x for x in TINY_SUITE if not x.startswith("fgsm.eps_255")], "fgsm.eps_255=[0,4,8]"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (entry,) = doc["models"]
    label = f"{tiny_run.name}-iter1"
    assert entry["label"] == label and entry["folder"] == str(out / label) and entry["failed"] == {}
    rows = pd.read_csv(Path(entry["folder"]) / "results.csv")
    at8 = rows[(rows.task == "fgsm") & (rows.eps_255 == 8)]
    assert {"top1_acc", "brier"} <= set(at8.metric)  # the trap is there
    assert entry["headline"]["fgsm@8"] == pytest.approx(float(at8[at8.metric == "top1_acc"].value.iloc[0]))
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"{entry['label']}: clean top-1")]
    check_numbers(entry["headline"], line, rows)
    # every measure the rows hold is reported: clean, -A, each -C/-P mean written, each attack eps
    assert {"clean_top1", "a_top1", "c_mean_err", "mean_fp", "mean_t5d", "fgsm@4", "fgsm@8"} <= set(entry["headline"])
    assert any(k.startswith("mce") for k in entry["headline"]) and any(k.startswith("mfr") for k in entry["headline"])
    for name, info in doc["measures"].items():  # what each name is, for a script building a leaderboard
        task, metric, condition, eps = expected_row(name)
        assert (info["task"], info["metric"], info["eps_255"]) == (task, metric, eps), name
        assert info["higher_is_better"] == (metric in ("top1_acc",)), name


def test_official_sets_give_the_log_line_and_json_their_numbers(tmp_path, caplog):
    """The imagenet suite's other tasks (ImageNet-V2 per variant, -Sketch, -C-bar, 3DCC), from fabricated trees in
    their released layouts, scored by their real tasks, then read as the CLI reads any results."""
    from nsbench.bench.tasks import imagenet_3dcc, imagenet_c_bar, imagenet_sketch, imagenet_v2
    from nsbench.commands.eval import _headline

    names = synsets()
    for k, c in enumerate((3, 7)):
        save(tmp_path / "v2" / "imagenetv2-matched-frequency-format-val" / str(c) / "a.jpeg", encoded_image(k, 80))
        save(tmp_path / "v2" / "imagenetv2-threshold0.7-format-val" / str(c) / "a.jpeg", encoded_image(0, 80))
        save(tmp_path / "sketch" / "sketch" / names[c] / "a.JPEG", encoded_image(k, 100))
    for sev in range(1, 6):
        save(tmp_path / "cbar" / "sparkles" / str(sev) / names[3] / "a.JPEG", encoded_image(0 if sev < 4 else 1))
        save(tmp_path / "3dcc" / "fog_3d" / str(sev) / names[7] / "a.JPEG", encoded_image(1 if sev < 3 else 0))
    ctx = ctx_for(tmp_path, PixelOracle([3, 7], decoy=None))
    rows = []
    for mod, task in ((imagenet_v2, imagenet_v2.ImageNetV2Task(enabled=True, root=str(tmp_path / "v2"),
                                                               variants=["matched-frequency", "threshold0.7"])),
                      (imagenet_sketch, imagenet_sketch.ImageNetSketchTask(enabled=True, root=str(tmp_path / "sketch"))),
                      (imagenet_c_bar, imagenet_c_bar.ImageNetCBarTask(enabled=True, root=str(tmp_path / "cbar"))),
                      (imagenet_3dcc, imagenet_3dcc.ImageNet3DCCTask(enabled=True, root=str(tmp_path / "3dcc")))):
        rows += mod.run(ctx, task, None).rows
    df = schema.frame(rows)
    numbers = _headline("m", df, tmp_path)["headline"]
    with caplog.at_level(logging.INFO, logger="nsbench"):
        logging.getLogger("nsbench").info("m: %s", schema.headline_text(numbers))  # as nsbench.evaluate logs it
    # one corruption of each tree: their means are partial, named so (issue 33)
    assert set(numbers) == {"v2_top1:matched-frequency", "v2_top1:threshold0.7", "sketch_top1",
                            "c_bar_mean_err_partial", "3dcc_mean_err_partial"}
    (line,) = [r.getMessage() for r in caplog.records if "ImageNet-V2" in r.getMessage()]
    check_numbers(numbers, line, df)


def test_every_measure_names_a_metric_a_registered_task_and_its_own_row():
    from nsbench.bench.registry import task_kinds

    tasks = task_kinds()
    for name, m in schema.MEASURES.items():
        assert m.name == name and m.metric in schema.METRICS and m.task in tasks, name
        assert (m.task, m.metric, m.condition) == FIXED[name][:3], name
        assert m.higher_is_better == (m.metric == "top1_acc"), name
    assert set(FIXED) == set(schema.MEASURES)
    assert schema.measure("fgsm@8").eps_255 == 8.0 and schema.measure("pgd@0.5").name == "pgd@0.5"
    assert schema.measure("v2_top1:top-images").condition == "top-images"
    with pytest.raises(KeyError, match="unknown measure 'clean'"):
        schema.measure("clean")


# Module-level constants whose word happens to equal a schema name but means something else: file -> names
WORDS = {"convergence.py": {"FAILED"}}  # the doubling test's outcome "failed", not the `failed` metric


def _words(tree: ast.Module, names) -> set[int]:
    """ids of the constants assigned to `names` at module level (`A, B = "x", "y"` included)."""
    out = set()
    for a in tree.body:
        if isinstance(a, ast.Assign):
            targets = a.targets[0].elts if isinstance(a.targets[0], ast.Tuple) else [a.targets[0]]
            values = a.value.elts if isinstance(a.value, ast.Tuple) else [a.value]
            out |= {id(v) for t, v in zip(targets, values) if getattr(t, "id", None) in names}
    return out


def _vocabulary() -> set[str]:
    tasks = {schema.CLEAN, schema.CORRUPTIONS, schema.PERTURBATIONS, schema.NATURAL_ADVERSARIAL, *schema.ATTACKS,
             schema.ATTACKS_BY_NAME, *schema.OFFICIAL_SET_TASKS}
    return set(schema.METRICS) | set(schema.MEASURES) | tasks | {schema.ALL, schema.CLEAN_CONDITION, schema.SKETCH}


def test_no_measure_metric_or_task_name_is_spelled_outside_the_schema():
    """nsbench/report, nsbench/commands and nsbench/study match rows only through schema names: a string literal
    equal to a metric, measure, task or fixed condition name there is a second definition waiting to drift."""
    vocabulary, found = _vocabulary(), []
    for folder in ("report", "commands", "study"):
        for path in sorted((PACKAGE / folder).rglob("*.py")):
            tree = ast.parse(path.read_text())
            skip = _words(tree, WORDS.get(path.name, ()))
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in vocabulary \
                        and id(node) not in skip:
                    found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.value!r}")
    assert not found, "\n".join(found)


def test_evaluate_returns_the_rows_with_their_measures_by_name(tiny_folder, tmp_path):
    import torch
    from torch import nn

    import nsbench

    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 4))
    rows = nsbench.evaluate(net, "quick", tmp_path, info=ModelInfo(label="lin", classes=4, input_size=32),
                            settings=ScoreSettings(cache_dir=tmp_path / "c", device="cpu", overrides=[f"data.source=folder:{tiny_folder}", "data.split=test",
                                                     "corruptions.enabled=false", "perturbations.enabled=false",
                                                     "natural_adversarial.enabled=false", "fgsm.eps_255=[0,8]",
                                                     "fgsm.limit=16", "clean.limit=16"]))
    saved = pd.read_csv(tmp_path / "lin" / "results.csv")
    assert set(rows.attrs["headline"]) == {"clean_top1", "fgsm@8"}
    for name, v in rows.attrs["headline"].items():
        assert v == pytest.approx(row_value(saved, name), rel=1e-5)


CLASSES = [f"class{i}" for i in range(4)]
PGD_SUITE = ["clean.limit=40", "corruptions.enabled=false", "perturbations.enabled=false",
             "natural_adversarial.enabled=false", "fgsm.attack=pgd", "fgsm.pgd_steps=2", "fgsm.eps_255=[0,4]",
             "fgsm.limit=40"]


class QuadrantOracle(nn.Module):
    """The tiny dataset's rule (the class is the brightest quadrant), with gradients for the attack."""

    def forward(self, x):
        h = x.shape[-1] // 2
        q = [x[:, :, :h, :h], x[:, :, :h, h:], x[:, :, h:, :h], x[:, :, h:, h:]]
        return torch.stack([t.amax(1).mean((1, 2)) for t in q], 1) * 10


class Blind(nn.Module):
    """Always class 0 (a quarter of the balanced test split), whatever the attack does."""

    def forward(self, x):
        return torch.zeros(len(x), 4) + torch.tensor([1.0, 0, 0, 0]) + 0 * x.mean((1, 2, 3))[:, None]


def test_every_measure_names_a_registered_task_and_attack_measures_parse():
    tasks = task_kinds()
    assert {m.task for m in schema.MEASURES.values()} <= set(tasks)
    assert schema.FGSM in tasks  # the attack task's registry name (its failed rows carry it)
    for attack in schema.ATTACKS:
        m = schema.ATTACK_MEASURE.match(schema.attack_measure(attack, 4.0).name)
        assert m and m["attack"] == attack and float(m["eps"]) == 4.0
    assert schema.attack_measure(schema.FGSM, 0.5).name == "fgsm@0.5" and not schema.ATTACK_MEASURE.match("fgsm")


def test_pgd_round_trip_eval_report_and_study_claim(tiny_folder, tmp_path):
    over = [f"data.source=folder:{tiny_folder}", "data.split=test", "data.image_size=32", *PGD_SUITE]
    for label, model in (("oracle", QuadrantOracle()), ("blind", Blind())):
        df = evaluate(model, "quick", tmp_path / label, info=ModelInfo(label=label, classes=CLASSES, input_size=32),
                      settings=ScoreSettings(overrides=over, cache_dir=tmp_path / "cache", device="cpu"))
        assert schema.PGD in set(df.task) and schema.FGSM not in set(df.task)  # the harness writes PGD as pgd
    key = schema.attack_measure(schema.PGD, 4).name
    study = {"name": "pgd", "description": "PGD round trip", "scale": "test", "seeds": [0], "tables": [{
        "id": "t0", "title": "PGD", "source": "",
        "rows": [{"ref": r, "labels": {0: r}, "about": r} for r in ("oracle", "blind")],
        "claims": [{"claim": "the oracle resists PGD better", "source": "", "metric": key,
                    "better": {"ref": "oracle", "labels": {0: "oracle"}},
                    "than": {"ref": "blind", "labels": {0: "blind"}}}]}]}
    out = tmp_path / "report"
    html = render_report([tmp_path / "oracle", tmp_path / "blind"], out, baseline="blind", study=study).read_text()
    head = pd.read_csv(out / "headline.csv")
    pgd = head[head.measure == key].set_index("model")
    assert set(pgd.index) == {"oracle", "blind"} and "PGD 4/255" in html  # the report shows PGD
    assert pgd.value["blind"] == 25.0  # class 0 is a quarter of the balanced split; no attack moves a constant
    claims = pd.read_csv(out / "claims.csv")
    assert claims.metric.tolist() == [key]
    c = claims.iloc[0]
    assert c.verdict == "holds" and c["diff"] == pgd.value["oracle"] - 25.0 and c.diff_low > 0  # resolved, with an interval


def _rows(*specs) -> pd.DataFrame:
    """results rows from (task, condition, metric, value, extra columns)."""
    return schema.frame([schema.row(model="m", suite="t", task=t, condition=c, metric=k, value=v, n=10, **kw)
                         for t, c, k, v, kw in specs])


def test_usual_effects_are_the_metrics_and_a_partial_mean_takes_its_full_means():
    """nsbench's usual effects as schema.Metric documents them: 2 points of top-1, 5 of mCE / mFR; a partial mean
    has its full mean's (mce_partial has none of its own); a metric without one, or unknown, has none (NaN)."""
    assert schema.usual_effect("top1_acc") == 2.0 and schema.usual_effect("mce") == 5.0
    assert schema.usual_effect("mce_partial") == 5.0 and schema.usual_effect("mfr_partial") == 5.0
    assert schema.METRICS["mce_partial"].usual_effect is None  # so the 5.0 above is mCE's
    assert math.isnan(schema.usual_effect("ce")) and math.isnan(schema.usual_effect("failed"))
    assert math.isnan(schema.usual_effect("no_such_metric"))


def test_measures_are_immutable_records():
    """A Measure is a value: it cannot be changed in place (headline.measures relabels -A with dataclasses.replace)
    and it can be a key."""
    import dataclasses

    m = schema.MEASURES["clean_top1"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.label = "relabelled"
    assert {m: 1}[schema.measure("clean_top1")] == 1 and m.label == "clean top-1 (%)"


def test_measure_text_digits_as_the_papers_print_them():
    """Whole-set accuracies (clean, -A, the shifted sets) with 2 decimals; an attack's accuracy, a mean error and
    mCE with their metric's 1; anything not finite (NaN, None) "undefined"."""
    m = schema.measure
    assert m("clean_top1").text(82.5234) == "clean top-1 82.52%"
    assert m("a_top1").text(5.1234) == "-A top-1 5.12%"
    assert m("v2_top1:matched-frequency").text(70.126) == "ImageNet-V2 matched-frequency top-1 70.13%"
    assert m("fgsm@8").text(43.54) == "FGSM 8/255 top-1 43.5%"
    assert m("c_bar_mean_err").text(12.34) == "ImageNet-C-bar mean error 12.3%"
    assert m("mce").text(101.26) == "mCE 101.3"
    assert m("clean_top1").text(math.nan) == "clean top-1 undefined"
    assert m("clean_top1").text(None) == "clean top-1 undefined"
    assert m("mce").text(math.inf) == "mCE undefined"


def test_lookup_gives_the_value_and_the_note_of_the_row():
    """A failed task's row (value None, as results hold it) gives (NaN, its reason); a row without a note gives
    "" (never "None"); no row gives (NaN, "")."""
    failed = _rows(("clean", "all", "failed", None, {"note": "CUDA out of memory"}))
    value, note = schema.lookup(failed, "clean", "failed")
    assert math.isnan(value) and note == "CUDA out of memory"
    ok = _rows(("clean", "clean", "top1_acc", 81.25, {}))
    assert schema.lookup(ok, "clean", "top1_acc", "clean") == (81.25, "")
    noted = _rows(("corruptions", "all", "mce_partial", 97.5, {"note": "partial: 2 of 15 benchmark corruptions"}))
    assert schema.lookup(noted, "corruptions", "mce_partial") == (97.5, "partial: 2 of 15 benchmark corruptions")
    value, note = schema.lookup(ok, "clean", "top5_acc")
    assert math.isnan(value) and note == ""


def test_measures_in_attacks_below_one_grey_level_and_only_scored_v2_variants():
    """FGSM at 0 (the clean images) is no measure, at 0.5/255 and 8/255 each is; an ImageNet-V2 variant whose
    folder was missing (its `skipped` row) is no measure, the scored one is; neither V2 nor -Sketch heads the
    report's table."""
    from nsbench.report.headline import measures
    from nsbench.report.load import EvalResult

    rows = _rows(("clean", "clean", "top1_acc", 80.0, {}),
                 ("fgsm", "fgsm", "top1_acc", 80.0, {"eps_255": 0.0}),
                 ("fgsm", "fgsm", "top1_acc", 61.5, {"eps_255": 0.5}),
                 ("fgsm", "fgsm", "top1_acc", 12.0, {"eps_255": 8.0}),
                 ("imagenet_v2", "matched-frequency", "top1_acc", 70.5, {}),
                 ("imagenet_v2", "matched-frequency", "ece", 3.25, {}),
                 ("imagenet_v2", "threshold0.7", "skipped", None, {"note": "no imagenetv2-threshold0.7-format-val"}),
                 ("imagenet_sketch", "sketch", "top1_acc", 30.0, {}))
    assert schema.headline_numbers(rows) == {"clean_top1": 80.0, "sketch_top1": 30.0, "fgsm@0.5": 61.5,
                                             "fgsm@8": 12.0, "v2_top1:matched-frequency": 70.5}
    head = measures([EvalResult("m", Path("m"), rows, {}, None)])
    assert [m.name for m in head] == ["clean_top1", "fgsm@0.5", "fgsm@8"]
