"""A study file: a base recipe, named variants (sets of dotted overrides), seeds, one suite, and the paper's tables
and claims. `load_study` resolves every variant x seed into a TrainConfig up front, so a bad key, an unknown
variant in a claim or an empty seed list is refused in one line before anything trains.

```yaml
# nsbench study my_study   (headline)
recipe: default                        # name or path, as `nsbench train --recipe`
seeds: [0, 1, 2]
iterations: 1                          # ns.iterations of every variant unless it overrides it
suite: study                           # name or path, as `nsbench eval --suite`
scales: {small: [teacher_optim.epochs=20], full: []}   # named size overrides; the first is the default
overrides: []                          # applied to every variant
variants:
  noisy_student: {about: the recipe as it is, overrides: []}
  no_noise: {about: no student noise, overrides: [noise.randaugment=false, students.0.drop_rate=0.0]}
tables:
  - title: Noise
    rows: [noisy_student, no_noise]    # VARIANT or VARIANT@ITERATION (default: its last); `teacher`
    claims:
      - {claim: noise helps, better: noisy_student, than: no_noise}   # metric: clean_top1 by default
```

Teacher sharing: iteration 0 is trained on the labeled images only, so variants whose resolved config agrees on
seed, data (the unlabeled pool aside), teacher and teacher_optim start from one teacher per seed, trained once in
`runs/teacher-seed<N>` from the base config. `noise.*` overrides then change the students only, as in the paper's
ablations (its noise study removes noise from the student; the teacher is the same). A variant that changes the
teacher's keys trains its own.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..config import TrainConfig, build_config, check_choices, from_dict, load_train_config, load_yaml
from ..schema import ATTACK_MEASURE, CLEAN_TOP1, measure
from ..utils import NsbenchError, check_name

TEACHER = "teacher"  # the shared teacher's run-folder stem, and a row / claim reference
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
REF = re.compile(r"^(?P<variant>[A-Za-z][A-Za-z0-9_]*)(?:@(?P<iteration>\d+))?$")
# keys of iteration 0's training: variants that agree on them share a teacher (the unlabeled pool is not used by it)
TEACHER_DATA_FREE = ("unlabeled", "unlabeled_limit", "num_workers")


@dataclass
class VariantSpec:
    about: str = ""
    overrides: list[str] = field(default_factory=list)


@dataclass
class ClaimSpec:
    claim: str = ""
    better: str = ""  # expected to be better on `metric` (higher, or lower for error-like measures)
    than: str = ""
    metric: str | None = None  # None: the study's metric
    source: str = ""  # where the paper says so


@dataclass
class TableSpec:
    title: str = ""
    source: str = ""
    rows: list[str] = field(default_factory=list)
    claims: list[ClaimSpec] = field(default_factory=list)


@dataclass
class ConvergenceSpec:
    """The doubling test of a scale (nsbench/study/convergence.py): `variant`'s iteration-1 student and the teacher
    retrained at `factor` x the scale's budgets (the same schedule stretched: epochs, warm-up and validation points
    scaled) must move clean top-1 by less than `tolerance` points, mean over seeds. `measured` records the result of
    `nsbench study NAME --check-convergence` per scale, so that a study run without the check still says whether
    its scale passed."""
    variant: str = "noisy_student"
    factor: int = 2
    tolerance: float = 0.3
    measured: dict = field(default_factory=dict)  # scale -> {teacher, student, seeds, passed, commit, date, ...}


@dataclass
class StudySpec:
    name: str = ""
    description: str = ""
    recipe: str = "default"
    seeds: list[int] = field(default_factory=lambda: [0])
    iterations: int = 1
    suite: str = "study"
    suite_overrides: list[str] = field(default_factory=list)
    metric: str = CLEAN_TOP1
    scales: dict = field(default_factory=dict)  # name -> list of overrides; the first is the default
    overrides: list[str] = field(default_factory=list)
    variants: dict = field(default_factory=dict)  # name -> VariantSpec
    tables: list[TableSpec] = field(default_factory=list)
    convergence: ConvergenceSpec = field(default_factory=ConvergenceSpec)


@dataclass
class RunPlan:
    """One training run of the study: a run folder `runs/<name>` trained from `cfg`."""
    name: str  # teacher-seed0, no_noise-seed0
    variant: str | None  # None: the shared teacher
    seed: int
    cfg: TrainConfig
    teacher: str | None = None  # the shared teacher's run name this run starts from (its iter0.pt)


@dataclass
class Study:
    path: Path
    spec: StudySpec
    scale: str
    seeds: list[int]
    suite: object  # SuiteConfig
    variants: dict[str, VariantSpec]
    runs: list[RunPlan]
    iterations: dict[str, int]  # variant -> its last iteration
    shares_teacher: dict[str, bool]
    doubled: list[RunPlan] = field(default_factory=list)  # the doubling test's runs (--check-convergence), else []

    @property
    def name(self) -> str:
        return self.spec.name or self.path.stem

    def label(self, ref: str, seed: int) -> str:
        """The evaluated label of a row / claim reference for one seed: `<variant>-seed<N>-iter<K>`; iteration 0 of
        a variant that shares the teacher is the teacher's `teacher-seed<N>-iter0`."""
        variant, k = self.parse_ref(ref)
        if variant == TEACHER or (k == 0 and self.shares_teacher[variant]):
            return f"{TEACHER}-seed{seed}-iter0"
        return f"{variant}-seed{seed}-iter{k}"

    def parse_ref(self, ref: str) -> tuple[str, int]:
        m = REF.match(ref)
        variant, k = m["variant"], m["iteration"]
        if variant == TEACHER:
            return TEACHER, 0
        return variant, self.iterations[variant] if k is None else int(k)

    def checkpoints(self, plan: RunPlan) -> list[tuple[int, str]]:
        """(iteration, label) of the checkpoints of a run that the study evaluates (a shared teacher's copy in a
        variant's folder is evaluated once, as the teacher)."""
        first = 1 if plan.teacher else 0
        return [(k, f"{plan.name}-iter{k}") for k in range(first, plan.cfg.ns.iterations + 1)]

    def report_spec(self) -> dict:
        """The tables and claims as plain data (labels per seed), for nsbench.report.claims."""
        def ref(r: str) -> dict:
            return {"ref": r, "labels": {s: self.label(r, s) for s in self.seeds}}

        tables = []
        for i, t in enumerate(self.spec.tables):
            rows = [{**ref(r), "about": self._about(r)} for r in t.rows]
            claims = [{"claim": c.claim, "source": c.source, "metric": c.metric or self.spec.metric,
                       "better": ref(c.better), "than": ref(c.than)} for c in t.claims]
            tables.append({"id": f"study-table-{i}", "title": t.title, "source": t.source, "rows": rows, "claims": claims})
        return {"name": self.name, "description": self.spec.description, "scale": self.scale, "seeds": self.seeds,
                "tables": tables}

    def _about(self, ref: str) -> str:
        variant, k = self.parse_ref(ref)
        if variant == TEACHER:
            return "the supervised teacher (iteration 0), shared by the variants"
        about = self.variants[variant].about
        return f"{about}, iteration {k}" if self.iterations[variant] != 1 else about


def load_study(path: Path, *, scale: str | None = None, seeds: list[int] | None = None, overrides: list[str] = (),
               device: str | None = None, check_convergence: bool = False) -> Study:
    """Parse and check a study file and resolve every run (and, with `check_convergence`, the doubling test's runs);
    any problem is one NsbenchError naming the file."""
    try:
        return _load(path, scale, seeds, list(overrides), device, check_convergence)
    except NsbenchError as e:
        raise NsbenchError(f"{path}: {e}") from None


def _load(path: Path, scale, seeds, overrides, device, check_convergence) -> Study:
    from ..bench.suite import load_suite
    from ..resources import resolve

    spec = build_config(StudySpec, load_yaml(path))
    if spec.name:
        check_name(spec.name, "name")  # the default study folder is runs/NAME
    for scale_name in spec.scales:
        check_name(scale_name, "scales")  # runs/NAME-SCALE
    variants = {}
    for name, v in spec.variants.items():
        if not isinstance(name, str) or not NAME.match(name) or name == TEACHER or re.search(r"seed\d", name, re.I):
            raise NsbenchError(f"variants: bad name {name!r} (letters, digits and _, starting with a letter; not "
                               f"{TEACHER!r}, no 'seed<N>')")
        if isinstance(v, list):
            v = {"overrides": v}
        if v is not None and not isinstance(v, dict):
            raise NsbenchError(f"variants.{name}: expected a mapping (about, overrides) or a list of KEY=VALUE "
                               f"overrides, got {type(v).__name__} {v!r}")
        variants[name] = from_dict(VariantSpec, v or {}, f"variants.{name}")
    if not variants:
        raise NsbenchError("variants: must name at least one variant")
    seeds = list(spec.seeds if seeds is None else seeds)
    if not seeds:
        raise NsbenchError("seeds: must list at least one seed")
    if len(set(seeds)) != len(seeds) or any(s < 0 for s in seeds):
        raise NsbenchError(f"seeds: must be distinct and >= 0, got {seeds}")
    scales = {str(k): v for k, v in (spec.scales or {}).items()}
    for k, v in scales.items():
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise NsbenchError(f"scales.{k}: expected a list of KEY=VALUE overrides")
    if scale is None:
        scale = next(iter(scales), "full")
    if scale not in scales and scale != "full":
        raise NsbenchError(f"scale {scale!r}: not one of {', '.join(dict.fromkeys([*scales, 'full']))}")
    if spec.iterations < 0:
        raise NsbenchError(f"iterations: must be >= 0, got {spec.iterations}")

    recipe = resolve("recipe", spec.recipe)

    def no_seed(where: str, given: list[str]) -> None:
        if any(o.split("=", 1)[0].strip() == "seed" for o in given):
            raise NsbenchError(f"{where}: sets the seed; seeds are the study's (seeds: [...])")

    for where, given in ((f"scales.{scale}", scales.get(scale, [])), ("overrides", spec.overrides),
                         ("the command line's overrides", overrides)):
        no_seed(where, given)
    common = [*scales.get(scale, []), *spec.overrides, *overrides] + ([f"runtime.device={device}"] if device else [])

    def config(where: str, extra: list[str], seed: int) -> TrainConfig:
        no_seed(where, extra)
        try:
            cfg = load_train_config(recipe, [*common, *extra, f"seed={seed}"])
            check_choices(cfg)
        except NsbenchError as e:
            raise NsbenchError(f"{where}: {e}") from None
        return cfg

    runs, iterations, shares, bases = [], {}, {}, {}
    for seed in seeds:
        base = bases[seed] = config("overrides", ["ns.iterations=0"], seed)
        plans = []
        for name, v in variants.items():
            cfg = config(f"variant {name}", [f"ns.iterations={spec.iterations}", *v.overrides], seed)
            iterations[name] = cfg.ns.iterations
            shares[name] = teacher_key(cfg) == teacher_key(base)
            plans.append(RunPlan(f"{name}-seed{seed}", name, seed, cfg, f"{TEACHER}-seed{seed}" if shares[name] else None))
        if any(p.teacher for p in plans):
            runs.append(RunPlan(f"{TEACHER}-seed{seed}", None, seed, base))
        runs += plans
    try:
        suite = load_suite(resolve("suite", spec.suite), spec.suite_overrides)
    except NsbenchError as e:
        raise NsbenchError(f"suite: {e}") from None
    conv = spec.convergence
    if conv.factor < 2 or conv.tolerance <= 0:
        raise NsbenchError(f"convergence: factor must be >= 2 and tolerance > 0, got {conv.factor} and {conv.tolerance}")
    if check_convergence and (conv.variant not in variants or not shares[conv.variant]):
        raise NsbenchError(f"convergence.variant: {conv.variant!r} must be a variant that starts from the shared "
                           f"teacher; variants: {', '.join(variants)}")
    doubled = []
    if check_convergence:
        v = variants[conv.variant]
        for seed in seeds:
            longer = stretched(bases[seed], conv.factor)
            teacher = f"{TEACHER}-x{conv.factor}-seed{seed}"
            doubled += [
                RunPlan(teacher, None, seed, config("convergence", ["ns.iterations=0", *longer], seed)),
                RunPlan(f"{conv.variant}-x{conv.factor}-seed{seed}", conv.variant, seed,
                        config("convergence", [*v.overrides, "ns.iterations=1", *longer], seed), teacher)]
    study = Study(path, spec, scale, seeds, suite, variants, runs, iterations, shares, doubled)
    _check_tables(study)
    return study


def stretched(cfg: TrainConfig, factor: int) -> list[str]:
    """Overrides that run `cfg`'s teacher and student schedules over `factor` x their epochs: the same schedule
    stretched (warm-up and validation interval scaled with it), everything else unchanged."""
    out = []
    for key in ("teacher_optim", "student_optim"):
        o = getattr(cfg, key)
        out += [f"{key}.epochs={o.epochs * factor}", f"{key}.warmup_epochs={o.warmup_epochs * factor}",
                f"{key}.eval_every={o.eval_every * factor}"]
    return out


def teacher_key(cfg: TrainConfig) -> dict:
    """What iteration 0's training depends on: two configs with equal keys train the same teacher."""
    d = cfg.to_dict()
    data = {k: v for k, v in d["data"].items() if k not in TEACHER_DATA_FREE}
    return {"seed": d["seed"], "data": data, "teacher": d["teacher"], "teacher_optim": d["teacher_optim"]}


def _check_tables(study: Study) -> None:
    spec = study.spec
    if not spec.tables:
        raise NsbenchError("tables: must list at least one table")
    has_teacher = any(study.shares_teacher.values())
    for i, t in enumerate(spec.tables):
        if not t.rows:
            raise NsbenchError(f"tables.{i}.rows: must list at least one row")
        for j, r in enumerate(t.rows):
            _check_ref(study, r, f"tables.{i}.rows.{j}", has_teacher)
        for j, c in enumerate(t.claims):
            where = f"tables.{i}.claims.{j}"
            if not c.claim:
                raise NsbenchError(f"{where}.claim: say what the paper claims")
            for key in ("better", "than"):
                _check_ref(study, getattr(c, key), f"{where}.{key}", has_teacher)
            if study.label(c.better, 0) == study.label(c.than, 0):
                raise NsbenchError(f"{where}: compares {c.better} with itself")
            _check_metric(study, c.metric or spec.metric, f"{where}.metric" if c.metric else "metric")


def _check_ref(study: Study, ref, where: str, has_teacher: bool) -> None:
    m = REF.match(ref) if isinstance(ref, str) else None
    if m is None:
        raise NsbenchError(f"{where}: {ref!r} is not VARIANT or VARIANT@ITERATION")
    variant, k = m["variant"], m["iteration"]
    if variant == TEACHER:
        if not has_teacher:
            raise NsbenchError(f"{where}: no variant shares a teacher, so there is no {TEACHER!r}")
        return
    if variant not in study.variants:
        raise NsbenchError(f"{where}: unknown variant {variant!r}; variants: {', '.join(study.variants)}")
    if k is not None and int(k) > study.iterations[variant]:
        raise NsbenchError(f"{where}: {variant} runs {study.iterations[variant]} iteration(s), not {k}")


def _check_metric(study: Study, metric: str, where: str) -> None:
    """A claim's measure is a headline measure (schema.HEADLINE, or ATTACK@EPS) whose task the study's suite runs."""
    suite = study.suite
    try:
        m = measure(metric)
    except KeyError as e:
        raise NsbenchError(f"{where}: {e.args[0]}") from None
    if not m.headline:
        raise NsbenchError(f"{where}: {metric} is not a headline measure (the report compares only those)")
    if ATTACK_MEASURE.match(metric):
        t = suite.fgsm
        if not t.enabled or t.attack != m.task or m.eps_255 not in [float(e) for e in t.eps_255]:
            raise NsbenchError(f"{where}: {metric} needs the suite's fgsm task with attack {m.task} at eps_255 "
                               f"{m.eps_255:g}")
        return
    if not getattr(suite, m.task).enabled:
        raise NsbenchError(f"{where}: {metric} needs the suite's {m.task} task, which it disables")


def describe(study: Study) -> dict:
    """The resolved study as plain data (written to OUT/study.json)."""
    return {"name": study.name, "file": str(study.path), "scale": study.scale, "seeds": study.seeds,
            "spec": dataclasses.asdict(study.spec),
            "runs": [_describe_run(p) for p in study.runs],
            "convergence_runs": [_describe_run(p) for p in study.doubled]}


def _describe_run(p: RunPlan) -> dict:
    return {"name": p.name, "variant": p.variant, "seed": p.seed, "iterations": p.cfg.ns.iterations,
            "teacher": p.teacher, "threads": p.cfg.runtime.threads}
