"""The study file (nsbench/study/spec.py) by value, without training: small study files in tmp_path resolved by
`load_study`, every number and name against the module docstring, the dataclass defaults it declares and
docs/studies.md, the shipped training/studies/paper_ablations.yaml, and hand computations.

Pinned: the defaults of a study file that names only its variants and tables (recipe `default`, seeds [0],
iterations 1, suite `study`, metric clean_top1, the `full` scale, the doubling test of `noisy_student` at x2 with
tolerance 0.3: "twice the scale's budgets", "less than 0.3 points" in docs/studies.md); scale resolution (the first
named scale is the default, `full` always exists, an unknown one is refused) and the order in which overrides apply
(scale, study, command line, device, variant); seeds from the file or the caller, distinct and >= 0; the runs
(one shared teacher per seed before its variants, named `<variant>-seed<N>`); teacher sharing by `teacher_key`
(the unlabeled pool aside); labels `<variant>-seed<N>-iter<K>` and the teacher's `teacher-seed<N>-iter0`; the
checkpoints a run's folder contributes; `report_spec` as plain data; the doubling test's runs and `stretched`'s
overrides (epochs, warm-up and validation interval times the factor); and every refusal as its one line, the file's
path first.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from nsbench.study.spec import load_study, stretched, teacher_key
from nsbench.utils import NsbenchError

ROOT = Path(__file__).resolve().parent.parent.parent
SMALL = ["teacher_optim.epochs=4", "teacher_optim.warmup_epochs=1", "teacher_optim.eval_every=2",
         "student_optim.epochs=5", "student_optim.warmup_epochs=2", "student_optim.eval_every=5"]
TABLES = [{"title": "Noise", "source": "section 4.1", "rows": ["teacher", "noisy_student", "no_noise"],
           "claims": [{"claim": "noise helps", "better": "noisy_student", "than": "no_noise"}]}]
VARIANTS = {"noisy_student": {"about": "the recipe", "overrides": []},
            "no_noise": {"about": "no student noise", "overrides": ["noise.randaugment=false"]}}


def _file(tmp_path: Path, stem: str = "my_study", **changes) -> Path:
    """A two-variant, two-seed study of the default recipe; `changes` replace top-level keys (None drops one)."""
    spec = {"recipe": "default", "seeds": [0, 1], "suite": "study", "scales": {"small": SMALL, "full": []},
            "variants": VARIANTS, "tables": TABLES}
    spec.update(changes)
    path = tmp_path / f"{stem}.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in spec.items() if v is not None}, sort_keys=False))
    return path


def _refused(path: Path, **kw) -> str:
    """The one-line refusal of `path`, the file's path stripped from its front."""
    with pytest.raises(NsbenchError) as e:
        load_study(path, **kw)
    text = str(e.value)
    assert "\n" not in text and text.startswith(f"{path}: "), text
    return text[len(f"{path}: "):]


# ---- defaults, names, scales, seeds


def test_a_study_naming_only_variants_and_tables_takes_the_documented_defaults(tmp_path):
    path = tmp_path / "bare.yaml"
    path.write_text(yaml.safe_dump({"variants": {"noisy_student": {}}, "tables": [{"rows": ["noisy_student"]}]}))
    s = load_study(path)
    assert s.name == "bare"  # no name: the file's stem
    assert (s.spec.recipe, s.spec.suite, s.spec.metric) == ("default", "study", "clean_top1")
    assert s.seeds == [0] and s.spec.seeds == [0]
    assert s.iterations == {"noisy_student": 1} and s.runs[1].cfg.ns.iterations == 1
    assert s.scale == "full"  # no scales: the recipe's own budgets
    assert s.runs[0].cfg.teacher_optim.epochs == 48 and s.runs[0].cfg.student_optim.epochs == 30  # default.yaml
    conv = s.spec.convergence
    assert (conv.variant, conv.factor, conv.tolerance, conv.measured) == ("noisy_student", 2, 0.3, {})
    assert s.doubled == []  # the doubling test's runs only with check_convergence
    d = load_study(path, check_convergence=True).doubled
    assert [p.name for p in d] == ["teacher-x2-seed0", "noisy_student-x2-seed0"]
    assert d[0].cfg.teacher_optim.epochs == 96 and d[1].cfg.student_optim.epochs == 60  # x2 the budgets


def test_the_name_field_names_the_study_else_the_file_stem(tmp_path):
    assert load_study(_file(tmp_path, stem="from_file")).name == "from_file"
    assert load_study(_file(tmp_path, stem="stem", name="given")).name == "given"


def test_the_first_scale_is_the_default_and_full_always_exists(tmp_path):
    path = _file(tmp_path, scales={"small": SMALL, "tiny": ["teacher_optim.epochs=2"]})
    s = load_study(path)
    assert s.scale == "small" and s.runs[0].cfg.teacher_optim.epochs == 4
    t = load_study(path, scale="tiny")
    assert t.scale == "tiny" and t.runs[0].cfg.teacher_optim.epochs == 2
    full = load_study(path, scale="full")  # not listed, still there: the recipe's budgets
    assert full.scale == "full" and full.runs[0].cfg.teacher_optim.epochs == 48
    assert _refused(path, scale="huge") == "scale 'huge': not one of small, tiny, full"
    assert _refused(_file(tmp_path), scale="huge") == "scale 'huge': not one of small, full"  # `full` listed once


def test_overrides_apply_scale_then_study_then_command_line_then_variant(tmp_path):
    path = _file(tmp_path, overrides=["teacher_optim.epochs=6", "student_optim.epochs=7", "pseudo.threshold=0.5"],
                 variants={"noisy_student": {"overrides": ["pseudo.threshold=0.6"]}},
                 tables=[{"rows": ["noisy_student"]}])
    s = load_study(path, overrides=["student_optim.epochs=8"], device="cpu")
    teacher, student = s.runs[0].cfg, s.runs[1].cfg
    assert teacher.teacher_optim.epochs == 6 and teacher.teacher_optim.warmup_epochs == 1  # study over scale
    assert student.student_optim.epochs == 8  # the command line over the study
    assert teacher.pseudo.threshold == 0.5 and student.pseudo.threshold == 0.6  # the variant last
    assert teacher.runtime.device == student.runtime.device == "cpu"
    assert load_study(path).runs[0].cfg.runtime.device == "auto"  # no device: the recipe's


def test_seeds_come_from_the_file_or_the_caller_distinct_and_not_negative(tmp_path):
    path = _file(tmp_path)
    assert load_study(path).seeds == [0, 1]
    s = load_study(path, seeds=[3, 0])
    assert s.seeds == [3, 0] and [p.name for p in s.runs if p.variant is None] == ["teacher-seed3", "teacher-seed0"]
    assert s.runs[0].cfg.seed == 3
    assert _refused(path, seeds=[]) == "seeds: must list at least one seed"
    assert _refused(_file(tmp_path, seeds=[])) == "seeds: must list at least one seed"
    assert _refused(path, seeds=[0, 0]) == "seeds: must be distinct and >= 0, got [0, 0]"
    assert _refused(path, seeds=[2, -1]) == "seeds: must be distinct and >= 0, got [2, -1]"


def test_iterations_zero_is_allowed_and_negative_refused(tmp_path):
    s = load_study(_file(tmp_path, iterations=0, tables=[{"rows": ["noisy_student", "no_noise"]}]))
    assert s.iterations == {"noisy_student": 0, "no_noise": 0}
    assert s.label("no_noise", 1) == "teacher-seed1-iter0"  # its last iteration is the shared teacher
    assert _refused(_file(tmp_path, iterations=-1)) == "iterations: must be >= 0, got -1"
    s = load_study(_file(tmp_path, iterations=2))
    assert s.iterations == {"noisy_student": 2, "no_noise": 2} and s.runs[1].cfg.ns.iterations == 2


# ---- variants


@pytest.mark.parametrize("name", ["teacher", "seed1", "mySEED2x", "1st", "no-noise", "_x", 7])
def test_bad_variant_names_are_refused(tmp_path, name):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"variants": {name: {}}, "tables": [{"rows": ["teacher"]}]}))
    assert _refused(path) == (f"variants: bad name {name!r} (letters, digits and _, starting with a letter; not "
                              f"'teacher', no 'seed<N>')")


def test_a_variant_is_a_mapping_a_list_of_overrides_or_nothing(tmp_path):
    path = _file(tmp_path, variants={"listed": ["noise.randaugment=false"], "bare": None,
                                     "mapped": {"about": "said", "overrides": ["pseudo.threshold=0.4"]}},
                 tables=[{"rows": ["listed", "bare", "mapped"]}])
    s = load_study(path)
    assert s.variants["listed"].overrides == ["noise.randaugment=false"] and s.variants["listed"].about == ""
    assert s.variants["bare"].overrides == [] and s.variants["bare"].about == ""
    assert s.variants["mapped"].about == "said" and s.variants["mapped"].overrides == ["pseudo.threshold=0.4"]
    cfg = {p.variant: p.cfg for p in s.runs if p.seed == 0}
    assert cfg["listed"].noise.randaugment is False and cfg["bare"].noise.randaugment is True
    assert cfg["mapped"].pseudo.threshold == 0.4 and cfg["bare"].pseudo.threshold == 0.3
    assert _refused(_file(tmp_path, variants={"x": "a=b"})) == (
        "variants.x: expected a mapping (about, overrides) or a list of KEY=VALUE overrides, got str 'a=b'")
    assert _refused(_file(tmp_path, variants={})) == "variants: must name at least one variant"


@pytest.mark.parametrize("override", ["seed=3", " seed = 3"])
def test_a_variant_that_sets_the_seed_is_refused(tmp_path, override):
    path = _file(tmp_path, variants={"a": {"overrides": ["ns.iterations=1", override]}}, tables=[{"rows": ["a"]}])
    assert _refused(path) == "variant a: sets the seed; seeds are the study's (seeds: [...])"


def test_a_seed_set_by_the_scale_the_study_or_the_command_line_is_refused_too(tmp_path):
    """Seeds are the study's: a `seed=` anywhere else would be silently replaced by each run's own seed."""
    base = {"variants": {"a": {"overrides": ["ns.iterations=1"]}}, "tables": [{"rows": ["a"]}]}
    message = "{}: sets the seed; seeds are the study's (seeds: [...])"
    assert _refused(_file(tmp_path, overrides=["seed=4"], **base)) == message.format("overrides")
    assert _refused(_file(tmp_path, scales={"small": ["seed=4"]}, **base)) == message.format("scales.small")
    assert _refused(_file(tmp_path, **base), overrides=["seed = 4"]) == message.format("the command line's overrides")


def test_bad_scales_are_refused(tmp_path):
    assert _refused(_file(tmp_path, scales={"small": "teacher_optim.epochs=1"})) == (
        "scales.small: expected a list of KEY=VALUE overrides")
    assert _refused(_file(tmp_path, scales={"small": ["teacher_optim.epochs=1", 3]})) == (
        "scales.small: expected a list of KEY=VALUE overrides")


# ---- runs, teacher sharing, labels


def test_runs_are_one_shared_teacher_per_seed_then_its_variants(tmp_path):
    s = load_study(_file(tmp_path))
    assert [(p.name, p.variant, p.seed, p.teacher, p.cfg.ns.iterations) for p in s.runs] == [
        ("teacher-seed0", None, 0, None, 0),
        ("noisy_student-seed0", "noisy_student", 0, "teacher-seed0", 1),
        ("no_noise-seed0", "no_noise", 0, "teacher-seed0", 1),
        ("teacher-seed1", None, 1, None, 0),
        ("noisy_student-seed1", "noisy_student", 1, "teacher-seed1", 1),
        ("no_noise-seed1", "no_noise", 1, "teacher-seed1", 1)]
    assert [p.cfg.seed for p in s.runs] == [0, 0, 0, 1, 1, 1]
    assert s.shares_teacher == {"noisy_student": True, "no_noise": True}
    assert s.runs[2].cfg.noise.randaugment is False and s.runs[0].cfg.noise.randaugment is True


def test_variants_share_the_teacher_unless_they_change_what_iteration_0_trains_on(tmp_path):
    variants = {"pool": ["data.unlabeled_limit=100"], "noise": ["noise.randaugment=false", "pseudo.threshold=0.5"],
                "lr": ["teacher_optim.lr=0.001"], "labels": ["data.labels_per_class=50"],
                "arch": ["teacher.drop_rate=0.5"]}
    s = load_study(_file(tmp_path, variants=variants, tables=[{"rows": ["pool"]}], seeds=[0]))
    assert s.shares_teacher == {"pool": True, "noise": True, "lr": False, "labels": False, "arch": False}
    assert [(p.name, p.teacher) for p in s.runs] == [
        ("teacher-seed0", None), ("pool-seed0", "teacher-seed0"), ("noise-seed0", "teacher-seed0"),
        ("lr-seed0", None), ("labels-seed0", None), ("arch-seed0", None)]
    key = teacher_key(s.runs[1].cfg)  # the unlabeled pool's keys are not part of it
    assert set(key) == {"seed", "data", "teacher", "teacher_optim"}
    assert not {"unlabeled", "unlabeled_limit", "num_workers"} & set(key["data"])
    assert {"source", "labels_per_class"} <= set(key["data"])
    assert key == teacher_key(s.runs[0].cfg)


def test_no_shared_teacher_means_no_teacher_run_and_no_teacher_row(tmp_path):
    path = _file(tmp_path, variants={"own": ["teacher_optim.lr=0.001"]}, tables=[{"rows": ["own", "own@0"]}])
    s = load_study(path)
    assert [(p.name, p.teacher) for p in s.runs] == [("own-seed0", None), ("own-seed1", None)]
    assert s.label("own@0", 1) == "own-seed1-iter0" and s.label("own", 1) == "own-seed1-iter1"
    assert [k for k, _ in s.checkpoints(s.runs[0])] == [0, 1]
    assert _refused(_file(tmp_path, variants={"own": ["teacher_optim.lr=0.001"]}, tables=[{"rows": ["teacher"]}])) == (
        "tables.0.rows.0: no variant shares a teacher, so there is no 'teacher'")


def test_labels_and_references(tmp_path):
    variants = {"noisy_student": {"about": "the recipe", "overrides": ["ns.iterations=3"]},
                "no_noise": {"about": "no student noise", "overrides": ["noise.randaugment=false"]}}
    s = load_study(_file(tmp_path, variants=variants))
    assert s.iterations == {"noisy_student": 3, "no_noise": 1}
    assert s.parse_ref("teacher") == ("teacher", 0)
    assert s.parse_ref("noisy_student") == ("noisy_student", 3)
    assert s.parse_ref("noisy_student@2") == ("noisy_student", 2)
    assert s.parse_ref("no_noise") == ("no_noise", 1)
    assert s.label("teacher", 1) == "teacher-seed1-iter0"
    assert s.label("noisy_student", 0) == "noisy_student-seed0-iter3"
    assert s.label("noisy_student@1", 1) == "noisy_student-seed1-iter1"
    assert s.label("noisy_student@0", 1) == "teacher-seed1-iter0"  # iteration 0 of a sharing variant: the teacher
    assert s.label("no_noise", 0) == "no_noise-seed0-iter1"
    plans = {p.name: p for p in s.runs}
    assert s.checkpoints(plans["noisy_student-seed1"]) == [
        (1, "noisy_student-seed1-iter1"), (2, "noisy_student-seed1-iter2"), (3, "noisy_student-seed1-iter3")]
    assert s.checkpoints(plans["no_noise-seed0"]) == [(1, "no_noise-seed0-iter1")]
    assert s.checkpoints(plans["teacher-seed0"]) == [(0, "teacher-seed0-iter0")]


def test_report_spec_is_the_tables_and_claims_with_labels_per_seed(tmp_path):
    variants = {"noisy_student": {"about": "the recipe", "overrides": ["ns.iterations=2"]},
                "no_noise": {"about": "no student noise", "overrides": ["noise.randaugment=false"]}}
    tables = [{"title": "Noise", "source": "section 4.1", "rows": ["teacher", "noisy_student@1", "no_noise"],
               "claims": [{"claim": "noise helps", "better": "noisy_student@1", "than": "no_noise"},
                          {"claim": "robust", "better": "noisy_student", "than": "teacher", "metric": "fgsm@8",
                           "source": "table 3"}]},
              {"title": "Iterations", "rows": ["noisy_student"]}]
    s = load_study(_file(tmp_path, stem="rs", variants=variants, tables=tables, description="about it"))

    def ref(r, labels):
        return {"ref": r, "labels": dict(zip([0, 1], labels))}

    assert s.report_spec() == {
        "name": "rs", "description": "about it", "scale": "small", "seeds": [0, 1],
        "tables": [
            {"id": "study-table-0", "title": "Noise", "source": "section 4.1",
             "rows": [{**ref("teacher", ["teacher-seed0-iter0", "teacher-seed1-iter0"]),
                       "about": "the supervised teacher (iteration 0), shared by the variants"},
                      {**ref("noisy_student@1", ["noisy_student-seed0-iter1", "noisy_student-seed1-iter1"]),
                       "about": "the recipe, iteration 1"},
                      {**ref("no_noise", ["no_noise-seed0-iter1", "no_noise-seed1-iter1"]),
                       "about": "no student noise"}],
             "claims": [{"claim": "noise helps", "source": "", "metric": "clean_top1",
                         "better": ref("noisy_student@1", ["noisy_student-seed0-iter1", "noisy_student-seed1-iter1"]),
                         "than": ref("no_noise", ["no_noise-seed0-iter1", "no_noise-seed1-iter1"])},
                        {"claim": "robust", "source": "table 3", "metric": "fgsm@8",
                         "better": ref("noisy_student", ["noisy_student-seed0-iter2", "noisy_student-seed1-iter2"]),
                         "than": ref("teacher", ["teacher-seed0-iter0", "teacher-seed1-iter0"])}]},
            {"id": "study-table-1", "title": "Iterations", "source": "",
             "rows": [{**ref("noisy_student", ["noisy_student-seed0-iter2", "noisy_student-seed1-iter2"]),
                       "about": "the recipe, iteration 2"}],
             "claims": []}]}


# ---- tables, claims, measures


@pytest.mark.parametrize("tables, message", [
    ([], "tables: must list at least one table"),
    ([{"title": "t", "rows": []}], "tables.0.rows: must list at least one row"),
    ([{"rows": ["noisy_student"]}, {"rows": ["noisy student"]}],
     "tables.1.rows.0: 'noisy student' is not VARIANT or VARIANT@ITERATION"),
    ([{"rows": ["nosiy"]}], "tables.0.rows.0: unknown variant 'nosiy'; variants: noisy_student, no_noise"),
    ([{"rows": ["noisy_student@2"]}], "tables.0.rows.0: noisy_student runs 1 iteration(s), not 2"),
    ([{"rows": ["teacher"], "claims": [{"claim": "", "better": "noisy_student", "than": "teacher"}]}],
     "tables.0.claims.0.claim: say what the paper claims"),
    ([{"rows": ["teacher"], "claims": [{"claim": "c", "better": "noisy_student", "than": "nope@1"}]}],
     "tables.0.claims.0.than: unknown variant 'nope'; variants: noisy_student, no_noise"),
    ([{"rows": ["teacher"], "claims": [{"claim": "c", "better": "no_noise", "than": "no_noise@1"}]}],
     "tables.0.claims.0: compares no_noise with itself"),
    ([{"rows": ["teacher"], "claims": [{"claim": "c", "better": "noisy_student@0", "than": "teacher"}]}],
     "tables.0.claims.0: compares noisy_student@0 with itself"),
    ([{"rows": ["teacher"], "claims": [{"claim": "c", "better": "noisy_student", "than": "teacher",
                                        "metric": "c_bar_mean_err"}]}],
     "tables.0.claims.0.metric: c_bar_mean_err is not a headline measure (the report compares only those)"),
    ([{"rows": ["teacher"], "claims": [{"claim": "c", "better": "noisy_student", "than": "teacher",
                                        "metric": "fgsm@4"}]}],
     "tables.0.claims.0.metric: fgsm@4 needs the suite's fgsm task with attack fgsm at eps_255 4"),
    ([{"rows": ["teacher"], "claims": [{"claim": "c", "better": "noisy_student", "than": "teacher",
                                        "metric": "pgd@8"}]}],
     "tables.0.claims.0.metric: pgd@8 needs the suite's fgsm task with attack pgd at eps_255 8"),
    ([{"rows": ["teacher"], "claims": [{"claim": "c", "better": "noisy_student", "than": "teacher", "metric": "mce"}]}],
     "tables.0.claims.0.metric: mce needs the suite's corruptions task, which it disables"),
])
def test_bad_tables_and_claims_are_refused(tmp_path, tables, message):
    assert _refused(_file(tmp_path, tables=tables)) == message


def test_a_claim_may_compare_any_measure_the_suite_produces(tmp_path):
    claims = [{"claim": "c", "better": "noisy_student@1", "than": "no_noise@0", "metric": m}
              for m in ("clean_top1", "fgsm@2", "fgsm@8")]
    s = load_study(_file(tmp_path, tables=[{"rows": ["noisy_student@0", "noisy_student@1"], "claims": claims}]))
    assert [c["metric"] for c in s.report_spec()["tables"][0]["claims"]] == ["clean_top1", "fgsm@2", "fgsm@8"]
    # the study's metric: named once, checked against the suite, used by every claim that names none
    claim = [{"claim": "c", "better": "noisy_student", "than": "no_noise"}]
    s = load_study(_file(tmp_path, metric="fgsm@2", tables=[{"rows": ["teacher"], "claims": claim}]))
    assert s.report_spec()["tables"][0]["claims"][0]["metric"] == "fgsm@2"
    assert _refused(_file(tmp_path, metric="top1", tables=[{"rows": ["teacher"], "claims": claim}])).startswith(
        "metric: unknown measure 'top1'; valid: clean_top1, ")
    assert _refused(_file(tmp_path, suite_overrides=["fgsm.enabled=false"], metric="fgsm@8",
                          tables=[{"rows": ["teacher"], "claims": claim}])) == (
        "metric: fgsm@8 needs the suite's fgsm task with attack fgsm at eps_255 8")
    assert _refused(_file(tmp_path, suite_overrides=["clean.enabled=false"],
                          tables=[{"rows": ["teacher"], "claims": claim}])) == (
        "metric: clean_top1 needs the suite's clean task, which it disables")


# ---- the doubling test's configuration


@pytest.mark.parametrize("conv, message", [
    ({"factor": 1}, "convergence: factor must be >= 2 and tolerance > 0, got 1 and 0.3"),
    ({"tolerance": 0}, "convergence: factor must be >= 2 and tolerance > 0, got 2 and 0.0"),  # a float
    ({"tolerance": -0.5, "factor": 4}, "convergence: factor must be >= 2 and tolerance > 0, got 4 and -0.5"),
])
def test_a_bad_convergence_factor_or_tolerance_is_refused(tmp_path, conv, message):
    assert _refused(_file(tmp_path, convergence=conv)) == message


def test_the_smallest_factor_and_a_small_tolerance_are_allowed(tmp_path):
    s = load_study(_file(tmp_path, convergence={"factor": 2, "tolerance": 0.05}))
    assert (s.spec.convergence.factor, s.spec.convergence.tolerance) == (2, 0.05)


def test_the_convergence_variant_must_share_the_teacher_when_checked(tmp_path):
    variants = {**VARIANTS, "own": ["teacher_optim.lr=0.001"]}
    for v in ("nope", "own"):
        path = _file(tmp_path, variants=variants, convergence={"variant": v})
        assert load_study(path).doubled == []  # not checked: not needed
        assert _refused(path, check_convergence=True) == (
            f"convergence.variant: {v!r} must be a variant that starts from the shared teacher; variants: "
            f"noisy_student, no_noise, own")


def test_the_doubling_runs_stretch_the_scale_by_the_factor(tmp_path):
    path = _file(tmp_path, convergence={"variant": "no_noise", "factor": 3}, seeds=[2, 5])
    s = load_study(path, check_convergence=True)
    assert [(p.name, p.variant, p.seed, p.teacher, p.cfg.ns.iterations, p.cfg.seed) for p in s.doubled] == [
        ("teacher-x3-seed2", None, 2, None, 0, 2), ("no_noise-x3-seed2", "no_noise", 2, "teacher-x3-seed2", 1, 2),
        ("teacher-x3-seed5", None, 5, None, 0, 5), ("no_noise-x3-seed5", "no_noise", 5, "teacher-x3-seed5", 1, 5)]
    for p in s.doubled:  # SMALL's budgets x 3: epochs, warm-up and validation interval
        t, st = p.cfg.teacher_optim, p.cfg.student_optim
        assert (t.epochs, t.warmup_epochs, t.eval_every) == (12, 3.0, 6)
        assert (st.epochs, st.warmup_epochs, st.eval_every) == (15, 6.0, 15)
        assert p.cfg.noise.randaugment is (p.variant is None)  # the variant's overrides: its student only
    assert [p.name for p in s.runs] == [p.name for p in load_study(path).runs]  # the study's own runs unchanged
    assert stretched(s.runs[0].cfg, 3) == [
        "teacher_optim.epochs=12", "teacher_optim.warmup_epochs=3.0", "teacher_optim.eval_every=6",
        "student_optim.epochs=15", "student_optim.warmup_epochs=6.0", "student_optim.eval_every=15"]


def test_the_shipped_study_resolves_as_its_file_says():
    """training/studies/paper_ablations.yaml: scale `longer` first (480-epoch teacher, 384-epoch students), three
    seeds, both variants on the shared teacher, and its doubling test at x2 with tolerance 0.3."""
    s = load_study(ROOT / "training" / "studies" / "paper_ablations.yaml")
    assert (s.name, s.scale, s.seeds) == ("paper_ablations", "longer", [0, 1, 2])
    assert s.runs[0].cfg.teacher_optim.epochs == 480 and s.runs[1].cfg.student_optim.epochs == 384
    assert s.shares_teacher == {"noisy_student": True, "no_noise": True}
    c = s.spec.convergence
    assert (c.variant, c.factor, c.tolerance) == ("noisy_student", 2, 0.3)
    assert c.measured["longer"]["passed"] is False and c.measured["longer"]["student"] is None
    assert dataclasses.asdict(s.spec)["convergence"]["measured"]["long"]["teacher"]["mean_change"] == 0.7867
