"""The results schema, in one place: the columns of `results.csv`, the task and metric names, one record per
measure (the headline numbers every output reads), how a row is made, and how a results folder is written.

A results folder holds `results.csv` and `results.parquet` (one row per measurement), `per_image.parquet`
(per-image / per-sequence outcomes that reports bootstrap and pair on) and `meta.json`, written last, which records
the row count and the sha256 of `results.csv` so that a truncated or edited file is refused, never reported
(nsbench/report/load.py checks it).

Three vocabularies, each defined once here:
- tasks: the `task` column (one per suite task; attacks write their attack's name);
- metrics: the `metric` column (`METRICS`: what each is, its label, unit and direction);
- measures: named numbers of a results folder (`Measure`: the row that holds it, its label, unit, direction, and
  whether it is a headline). The CLI's log line and `--json`, `nsbench.evaluate`'s headline, the report's tables,
  verdict cards, figures and headline.csv/summary.csv, and a study's claims all find their numbers through it, so
  a name means one number everywhere (as lm-evaluation-harness's `register_metric(higher_is_better=...)`).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .utils import NsbenchError, atomic_path, file_sha256, make_dir, write_json

COLUMNS = ["model", "suite", "task", "condition", "severity", "eps_255", "eps", "metric", "value", "n", "normaliser",
           "note"]
SORT = ["task", "condition", "severity", "eps_255", "metric"]

# ---------------------------------------------------------------------------------------------------------- tasks
# The `task` column. Every suite task writes rows under its registry name, except the attack task (registered as
# FGSM, its `attack` setting picks FGSM or PGD): its rows carry the attack's name as their task and condition, so
# PGD results are never labelled FGSM. A task that fails writes its `failed` row under its registry name.
CLEAN = "clean"
CORRUPTIONS = "corruptions"
PERTURBATIONS = "perturbations"
NATURAL_ADVERSARIAL = "natural_adversarial"
FGSM = "fgsm"
PGD = "pgd"
ATTACKS = (FGSM, PGD)  # the attacks, and the task names their rows carry
ATTACKS_BY_NAME = "attacks"  # any torchattacks attack by name (bench/tasks/attacks_by_name.py)
IMAGENET_V2 = "imagenet_v2"
IMAGENET_SKETCH = "imagenet_sketch"
IMAGENET_C_BAR = "imagenet_c_bar"
IMAGENET_3DCC = "imagenet_3dcc"
OFFICIAL_SET_TASKS = (IMAGENET_V2, IMAGENET_SKETCH, IMAGENET_C_BAR, IMAGENET_3DCC)  # official shifted sets, read
# from their released layouts (bench/tasks/<name>.py)
CORRUPTION_TREE_TASKS = (CORRUPTIONS, IMAGENET_C_BAR, IMAGENET_3DCC)  # cells are corruption x severity, one row each
TASK_LABELS = {CLEAN: "clean", CORRUPTIONS: "-C (corruptions)", PERTURBATIONS: "-P (perturbations)",
               NATURAL_ADVERSARIAL: "-A (natural adversarial)",
               FGSM: "adversarial attacks",  # also the failed row of either attack (the registry's name)
               PGD: "adversarial attacks (PGD)"}

# Conditions with a fixed meaning: a task's summary over its cells, and the clean images of a corruption tree.
ALL = "all"
CLEAN_CONDITION = "clean"
SKETCH = "sketch"  # ImageNet-Sketch's one condition

# -------------------------------------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class Metric:
    """One value of the `metric` column: what it is, its name on a page, its unit ("%" for percentages, "" for a
    raw number), its direction (None where it orders nothing: a failed or skipped task) and, for a metric a verdict
    compares, its usual effect: the smallest difference between two models that a reader of this metric looks for,
    in its own unit. A verdict whose minimum detectable effect is wider says "underpowered", never "no significant
    difference" (report/compare.py). These are nsbench's choices, not published constants: about what separates
    neighbouring rows of the field's tables (top-1: the 1-2 points between EfficientNet sizes and Noisy Student's
    gain at one size; mCE / mFR / mT5D: the several points between ImageNet-C/P papers' rows)."""
    name: str
    about: str
    label: str
    unit: str = "%"
    higher_is_better: bool | None = False
    digits: int = 1  # decimals on a page
    usual_effect: float | None = None


_M = Metric
METRICS: dict[str, Metric] = {m.name: m for m in (
    _M("top1_acc", "top-1 accuracy", "top-1 accuracy", higher_is_better=True, usual_effect=2.0),
    _M("top5_acc", "top-5 accuracy", "top-5 accuracy", higher_is_better=True, usual_effect=2.0),
    _M("top1_err", "top-1 error", "top-1 error", usual_effect=2.0),
    _M("top5_err", "top-5 error", "top-5 error", usual_effect=2.0),
    _M("class_acc", "top-1 accuracy of one class", "class accuracy", higher_is_better=True),
    _M("mean_err", "top-1 error averaged over severities (or corruptions)", "mean error", usual_effect=2.0),
    _M("mean_err_partial", "mean error over an incomplete set of corruptions or severities (not the set's mean error)",
       "mean error (partial)", usual_effect=2.0),
    _M("ce", "corruption error, normalised (Hendrycks & Dietterich 2019)", "CE", "", digits=0),
    _M("relative_ce", "relative corruption error", "relative CE", "", digits=0),
    _M("mce", "mean corruption error over the 15 benchmark corruptions", "mCE", "", usual_effect=5.0),
    _M("relative_mce", "relative mCE", "relative mCE", "", usual_effect=5.0),
    _M("mce_partial", "mean CE over an incomplete set of corruptions (not mCE)", "mCE (partial)", ""),
    _M("relative_mce_partial", "relative mean CE over an incomplete set of corruptions (not relative mCE)",
       "relative mCE (partial)", ""),
    _M("fp", "flip probability", "flip probability"),
    _M("t5d", "top-5 distance (not a percentage)", "top-5 distance", ""),
    _M("fr", "flip rate, normalised", "FR", "", digits=0),
    _M("t5d_rel", "top-5 distance, normalised", "T5D", ""),
    _M("mean_fp", "mean flip probability", "mean flip probability", usual_effect=0.5),
    _M("mean_t5d", "mean top-5 distance (not a percentage)", "mean top-5 distance", "", digits=3),
    _M("mfr", "mean flip rate over the 10 test perturbations", "mFR", "", usual_effect=5.0),
    _M("mt5d", "mean top-5 distance over the 10 test perturbations, normalised", "mT5D", "", usual_effect=5.0),
    _M("mfr_partial", "mean flip rate over an incomplete set of perturbations (not mFR)", "mFR (partial)", ""),
    _M("mt5d_partial", "mean normalised top-5 distance over an incomplete set of perturbations (not mT5D)",
       "mT5D (partial)", ""),
    _M("ece", "expected calibration error, 15 equal-width confidence bins (robustness_metrics), x100", "ECE", "%",
       digits=2, usual_effect=1.0),
    _M("nll", "negative log-likelihood of the true class, nats (not a percentage)", "NLL", "", digits=3, usual_effect=0.05),
    _M("brier", "Brier score, sum over classes of the squared error of the probabilities (0-2, not a percentage)",
       "Brier", "", digits=3, usual_effect=0.01),
    _M("temperature", "the temperature T of temperature scaling, fitted on held-out images (not a percentage)",
       "temperature", "", None, digits=3),
    _M("failed", "the task could not run; the note says why", "failed", "", None),
    _M("skipped", "the task's data is absent (its root is not set) or empty (a built set no image passed); the note "
       "says why", "skipped", "", None),
)}
del _M
TOP1_ACC, TOP1_ERR, MEAN_ERR, FAILED, SKIPPED = "top1_acc", "top1_err", "mean_err", "failed", "skipped"
CE, RELATIVE_CE, FP, T5D, FR, T5D_REL = "ce", "relative_ce", "fp", "t5d", "fr", "t5d_rel"  # per condition
MCE, RELATIVE_MCE, MFR, MT5D, MEAN_FP, MEAN_T5D = "mce", "relative_mce", "mfr", "mt5d", "mean_fp", "mean_t5d"  # means
CALIBRATION = ("ece", "nll", "brier")  # per-cell calibration metrics, in the report's column order
# the clean set's calibration after temperature scaling: the CALIBRATION metrics and T under this condition
TEMPERATURE, TEMPERATURE_SCALED = "temperature", "temperature_scaled"
PARTIAL = "_partial"  # suffix of a mean over an incomplete benchmark set (a different number: never the full one)


def usual_effect(metric: str) -> float:
    """The usual effect of a metric (Metric.usual_effect), a partial mean's that of its full mean; NaN for none."""
    m = METRICS.get(metric.removesuffix(PARTIAL)) or METRICS.get(metric)
    return float(m.usual_effect) if m is not None and m.usual_effect is not None else float("nan")


def unit_metric(mean: str) -> str:
    """The per-condition metric a published mean averages: mce -> ce, mfr -> fr, mt5d -> t5d_rel, ..."""
    return {MCE: CE, RELATIVE_MCE: RELATIVE_CE, MEAN_ERR: MEAN_ERR, MFR: FR, MT5D: T5D_REL,
            MEAN_FP: FP}[mean.removesuffix(PARTIAL)]


# ------------------------------------------------------------------------------------------------------- measures


@dataclass(frozen=True)
class Measure:
    """A named number of a results folder: the row that holds it (task, metric, condition, eps), how it reads
    (label, unit, direction from its metric), which section shows it (`group`) and whether the report's headline
    (bench tables, verdict cards, headline.csv, study claims) carries it. `condition` None: the task's one row of
    that metric, whatever its condition (-A's is the set's name; a partial mean's lists its members)."""
    name: str
    group: str  # clean, -C, -P, -A, attack, shift
    task: str
    metric: str
    condition: str | None
    label: str
    eps_255: float | None = None
    headline: bool = True
    unless: str | None = None  # shown in the headline only when this measure is absent (a fallback)

    @property
    def higher_is_better(self) -> bool:
        return bool(METRICS[self.metric].higher_is_better)

    @property
    def unit(self) -> str:
        return METRICS[self.metric].unit

    @property
    def partial(self) -> bool:
        return self.metric.endswith(PARTIAL)

    def mask(self, rows: pd.DataFrame) -> pd.Series:
        return row_mask(rows, self.task, self.metric, self.condition, self.eps_255)

    def lookup(self, rows: pd.DataFrame) -> tuple[float, str]:
        """(value, note) of this measure's row in `rows` (the module's `lookup`)."""
        return lookup(rows, self.task, self.metric, self.condition, self.eps_255)

    def text(self, value: float) -> str:
        """The measure as one phrase: "clean top-1 82.52%", "mCE 101.3", "mCE undefined"."""
        name = self.label.removesuffix(" (%)")
        if value is None or not math.isfinite(value):
            return f"{name} undefined"
        digits = METRICS[self.metric].digits
        if self.metric == TOP1_ACC and self.group in ("clean", "-A", "shift"):
            digits = 2  # accuracies on whole sets: as the papers print them
        return f"{name} {value:.{digits}f}{'%' if self.unit == '%' else ''}"


def row_mask(rows: pd.DataFrame, task: str, metric: str, condition: str | None = None,
             eps_255: float | None = None) -> pd.Series:
    """The rows of `task` and `metric` (and `condition`, `eps_255` when given; rows without an eps_255 column match
    any eps)."""
    m = (rows.task == task) & (rows.metric == metric)
    if condition is not None:
        m &= rows.condition == condition
    if eps_255 is not None and "eps_255" in rows:
        m &= rows.eps_255 == eps_255
    return m


def lookup(rows: pd.DataFrame, task: str, metric: str, condition: str | None = None,
           eps_255: float | None = None) -> tuple[float, str]:
    """(value, note) of the first such row; (nan, "") when absent, (nan, note) when its value is undefined."""
    m = row_mask(rows, task, metric, condition, eps_255)
    if not m.any():
        return math.nan, ""
    r = rows[m].iloc[0]
    value = r.value if r.value is not None and r.value == r.value else math.nan
    return float(value), str(r.get("note", "") or "")


def _mean(name: str, group: str, task: str, metric: str, label: str, **kw) -> tuple[Measure, Measure]:
    """A published mean and its partial twin (over an incomplete benchmark set: its note lists the members)."""
    return (Measure(name, group, task, metric, ALL, label, **kw),
            Measure(name + PARTIAL, group, task, metric + PARTIAL, None, f"{label} (partial)", **kw))


def _tree_mean(name: str, task: str, label: str) -> tuple[Measure, Measure]:
    """An official corruption tree's mean error over all its corruptions and severities, and its partial twin over
    the cells a partial download holds (both the `all` row; per-corruption rows are not headline numbers)."""
    return (Measure(name, "shift", task, MEAN_ERR, ALL, f"{label} mean error (%)", headline=False),
            Measure(name + PARTIAL, "shift", task, MEAN_ERR + PARTIAL, ALL, f"{label} mean error (partial, %)",
                    headline=False))


CLEAN_TOP1 = "clean_top1"
A_TOP1 = "a_top1"
C_MEAN_ERR = "c_mean_err"
A_TOP1_BUILT_LABEL = "built -A top-1 (%)"  # a_top1's label when the -A set was built for the dataset
MEASURES: dict[str, Measure] = {m.name: m for m in (
    Measure(CLEAN_TOP1, "clean", CLEAN, TOP1_ACC, CLEAN_CONDITION, "clean top-1 (%)"),
    Measure(A_TOP1, "-A", NATURAL_ADVERSARIAL, TOP1_ACC, None, "-A top-1 (%)"),
    *_mean(MCE, "-C", CORRUPTIONS, MCE, "mCE"),
    *_mean(RELATIVE_MCE, "-C", CORRUPTIONS, RELATIVE_MCE, "relative mCE"),
    Measure(C_MEAN_ERR, "-C", CORRUPTIONS, MEAN_ERR, ALL, "-C mean error (%)"),
    *_mean(MFR, "-P", PERTURBATIONS, MFR, "mFR"),
    *_mean(MT5D, "-P", PERTURBATIONS, MT5D, "mT5D"),
    Measure(MEAN_FP, "-P", PERTURBATIONS, MEAN_FP, ALL, "-P mean flip probability (%)", unless=MFR),
    Measure(MEAN_T5D, "-P", PERTURBATIONS, MEAN_T5D, ALL, "-P mean top-5 distance", headline=False),
    Measure("sketch_top1", "shift", IMAGENET_SKETCH, TOP1_ACC, SKETCH, "ImageNet-Sketch top-1 (%)", headline=False),
    *_tree_mean("c_bar_mean_err", IMAGENET_C_BAR, "ImageNet-C-bar"),
    *_tree_mean("3dcc_mean_err", IMAGENET_3DCC, "ImageNet-3DCC"),
)}
# headline measures in the report's order; a measure named in `unless` comes before its fallback
HEADLINE = [m for m in MEASURES.values() if m.headline]
ATTACK_MEASURE = re.compile(r"^(?P<attack>" + "|".join(ATTACKS) + r")@(?P<eps>\d+(?:\.\d+)?)$")
V2_MEASURE = re.compile(r"^v2_top1:(?P<variant>.+)$")


def attack_measure(attack: str, eps_255: float) -> Measure:
    """An attack's top-1 accuracy at eps (in grey levels): `fgsm@8`, `pgd@4`, `fgsm@0.5`."""
    eps = float(eps_255)
    return Measure(f"{attack}@{eps:g}", "attack", attack, TOP1_ACC, attack, f"{attack.upper()} {eps:g}/255 top-1 (%)",
                   eps_255=eps)


def v2_measure(variant: str) -> Measure:
    """Top-1 accuracy on one ImageNet-V2 variant: `v2_top1:matched-frequency`."""
    return Measure(f"v2_top1:{variant}", "shift", IMAGENET_V2, TOP1_ACC, variant,
                   f"ImageNet-V2 {variant} top-1 (%)", headline=False)


def measure(name: str) -> Measure:
    """The measure called `name` (a fixed one, ATTACK@EPS or v2_top1:VARIANT); KeyError naming the valid ones."""
    if name in MEASURES:
        return MEASURES[name]
    if m := ATTACK_MEASURE.match(name):
        return attack_measure(m["attack"], float(m["eps"]))
    if m := V2_MEASURE.match(name):
        return v2_measure(m["variant"])
    raise KeyError(f"unknown measure {name!r}; valid: {', '.join(MEASURES)}, fgsm@EPS, pgd@EPS, v2_top1:VARIANT")


def measures_in(rows: pd.DataFrame) -> list[Measure]:
    """Every measure `rows` holds a row of (defined or not), in the registry's order: the fixed ones, then the
    attacks by attack and eps, then the ImageNet-V2 variants."""
    if rows.empty:
        return []
    out = [m for m in MEASURES.values() if m.mask(rows).any()]
    att = rows[rows.task.isin(ATTACKS) & (rows.metric == TOP1_ACC)]
    out += [attack_measure(a, e) for a, e in sorted({(str(a), float(e)) for a, e in zip(att.task, att.eps_255)
                                                     if e == e and e > 0})]
    v2 = rows[(rows.task == IMAGENET_V2) & (rows.metric == TOP1_ACC)]
    out += [v2_measure(str(c)) for c in dict.fromkeys(v2.condition)]
    return out


def headline_numbers(rows: pd.DataFrame) -> dict[str, float | None]:
    """{measure name: value} of every measure `rows` holds (None where undefined): what the CLI logs and prints
    with --json, and what `nsbench.evaluate` returns beside the rows."""
    out = {}
    for m in measures_in(rows):
        v = m.lookup(rows)[0]
        out[m.name] = v if math.isfinite(v) else None
    return out


def headline_text(numbers: dict[str, float | None]) -> str:
    """One line of every headline number by its measure's label ("clean top-1 82.52%, mCE 90.8, ..."): what
    `nsbench eval` and `nsbench.evaluate` log."""
    return ", ".join(measure(k).text(v) for k, v in numbers.items()) or "no headline numbers"


# ------------------------------------------------------------------------------------------------------------ rows
CELL = ("severity", "eps_255", "normaliser", "note")  # a row's optional columns, by keyword


def row(*, model: str, suite: str, task: str, condition: str, metric: str, value: float | None, n: int,
        **cell) -> dict:
    """One measurement; `cell` gives its optional columns (severity, eps_255, normaliser, note). A value that
    cannot be defined (e.g. a zero denominator) is None with a note saying why; a non-finite value becomes None with
    the note "undefined" (never NaN in results)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}")
    unknown = set(cell) - set(CELL)
    if unknown:
        raise TypeError(f"row() got unknown column(s) {', '.join(sorted(unknown))}; optional: {', '.join(CELL)}")
    note, eps_255 = cell.get("note"), cell.get("eps_255")
    if value is not None and not math.isfinite(float(value)):
        value, note = None, note or "undefined"
    return {"model": model, "suite": suite, "task": task, "condition": condition, "severity": cell.get("severity"),
            "eps_255": eps_255, "eps": None if eps_255 is None else eps_255 / 255.0, "metric": metric,
            "value": None if value is None else float(value), "n": int(n), "normaliser": cell.get("normaliser"),
            "note": note}


def frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=COLUMNS)
    return df.sort_values(SORT, na_position="first", kind="stable").reset_index(drop=True)


def write_results(out: str | Path, df: pd.DataFrame, per_image: pd.DataFrame, meta: dict) -> Path:
    """Write a results folder; meta.json last, with the row count and the checksum of results.csv."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NsbenchError(f"{out}: exists and is not a folder")
    make_dir(out)
    df = frame(df.to_dict("records")) if list(df.columns) == COLUMNS else df
    with atomic_path(out / "results.csv") as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")
        sha = file_sha256(tmp)
    with atomic_path(out / "results.parquet") as tmp:
        df.to_parquet(tmp, index=False)
    if len(per_image):
        with atomic_path(out / "per_image.parquet") as tmp:
            per_image.to_parquet(tmp, index=False)
    else:
        (out / "per_image.parquet").unlink(missing_ok=True)
    write_json(out / "meta.json", {**meta, "results": {"rows": int(len(df)), "sha256": sha}})
    return out
