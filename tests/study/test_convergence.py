"""The doubling test (nsbench/study/convergence.py) by value, without training: eval folders fabricated in tmp_path
(one results.csv each, the clean top-1 row among others) for a small study of the default recipe, the result
against the module docstring, docs/studies.md ("Converged, or flagged") and the records of the shipped
training/studies/paper_ablations.yaml.

Pinned: which folders are compared (`teacher-seed<N>-iter0` with `teacher-x<F>-seed<N>-iter0`, the reference
variant's `<variant>-seed<N>-iter1` with `<variant>-x<F>-seed<N>-iter1`); each seed's change and the mean change
(doubled - base, rounded to 4 decimals); the 95% t-interval over seeds about the rounded mean, written out with
scipy.stats.t (none with one seed); passed only when |mean change| < tolerance strictly, for the teacher and the
student alike; "incomplete: k of n seeds" when a seed lacks a pair; the fallback to the study file's record
(`convergence.measured.<scale>`) and its source string, or "not tested"; and `describe`'s one line, against the
numbers docs/studies.md prints for the shipped records.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.stats import t as student_t

from nsbench.study import load_study
from nsbench.study.convergence import clean_top1, describe, doubling_test

ROOT = Path(__file__).resolve().parent.parent.parent
HEAD = {"scale": "small", "factor": 2, "tolerance": 0.3, "variant": "noisy_student"}


def _study(tmp_path: Path, seeds=(0, 1, 2), check: bool = True, **convergence):
    spec = {"recipe": "default", "seeds": list(seeds), "scales": {"small": ["teacher_optim.epochs=4"], "full": []},
            "variants": {"noisy_student": [], "no_noise": ["noise.randaugment=false"]},
            "tables": [{"rows": ["teacher", "noisy_student", "no_noise"]}], "convergence": convergence}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return load_study(path, check_convergence=check)


def _score(out: Path, label: str, top1) -> None:
    """An eval folder whose results.csv holds `top1` as the clean top-1 (None: an empty value), after other rows."""
    folder = out / "eval" / label
    folder.mkdir(parents=True)
    value = "" if top1 is None else repr(top1)
    (folder / "results.csv").write_text(
        "model,suite,task,condition,severity,eps_255,eps,metric,value,n,normaliser\n"
        f"{label},study,clean,clean,,,,top5_acc,99.5,100,\n"
        f"{label},study,fgsm,fgsm,,2.0,0.00784,top1_acc,41.0,100,\n"
        f"{label},study,clean,clean,,,,top1_acc,{value},100,\n")


def _fill(out: Path, teacher: dict, student: dict, factor: int = 2) -> None:
    """seed -> (top-1 at the budget, top-1 at factor x the budget); None leaves that folder out."""
    for role, vals, k, stem in (("teacher", teacher, 0, "teacher"), ("student", student, 1, "noisy_student")):
        for s, (base, doubled) in vals.items():
            base_label = f"teacher-seed{s}-iter0" if role == "teacher" else f"noisy_student-seed{s}-iter1"
            if base is not None:
                _score(out, base_label, base)
            if doubled is not None:
                _score(out, f"{stem}-x{factor}-seed{s}-iter{k}", doubled)


def _role(vals: dict) -> dict:
    """The expected record of one role, written out: per-seed changes, their mean, the t-interval about it."""
    seeds = sorted(vals)
    d = np.array([vals[s][1] - vals[s][0] for s in seeds])
    out = {"base": {str(s): vals[s][0] for s in seeds}, "doubled": {str(s): vals[s][1] for s in seeds},
           "change": {str(s): round(float(x), 4) for s, x in zip(seeds, d)}, "seeds": len(seeds),
           "mean_change": round(float(np.mean(d)), 4)}
    if len(seeds) >= 2:
        half = student_t.ppf(0.975, len(d) - 1) * np.std(d, ddof=1) / math.sqrt(len(d))
        out["interval"] = [round(out["mean_change"] - half, 4), round(out["mean_change"] + half, 4)]
    return out


TEACHER = {0: (80.0, 80.123456), 1: (81.5, 81.687654), 2: (79.25, 79.101)}
STUDENT = {0: (82.0, 81.955535), 1: (81.0, 81.321113), 2: (80.5, 80.40002)}


def test_clean_top1_reads_the_clean_row_or_none(tmp_path):
    _score(tmp_path, "a", 81.25)
    _score(tmp_path, "b", None)
    assert clean_top1(tmp_path / "eval" / "a") == 81.25
    assert clean_top1(tmp_path / "eval" / "b") is None  # scored, undefined
    assert clean_top1(tmp_path / "eval" / "missing") is None  # not scored


def test_three_seeds_measured_here_give_each_change_the_mean_and_its_t_interval(tmp_path):
    study = _study(tmp_path)
    out = tmp_path / "out"
    _fill(out, TEACHER, STUDENT)
    test = doubling_test(study, out)
    teacher, student = _role(TEACHER), _role(STUDENT)
    # by hand: the teacher moves +0.123456, +0.187654, -0.149: mean +0.054037, sd 0.178741, t(0.975, 2) = 4.30265
    assert teacher["change"] == {"0": 0.1235, "1": 0.1877, "2": -0.149} and teacher["mean_change"] == 0.054
    assert teacher["interval"] == pytest.approx([0.054 - 4.30265 * 0.178741 / math.sqrt(3),
                                                 0.054 + 4.30265 * 0.178741 / math.sqrt(3)], abs=1e-4)
    assert student["change"] == {"0": -0.0445, "1": 0.3211, "2": -0.1} and student["mean_change"] == 0.0589
    assert test == {**HEAD, "teacher": teacher, "student": student, "seeds": [0, 1, 2], "passed": True,
                    "status": "passed", "source": "measured in this study folder"}
    assert describe(test) == (
        f"converged at scale small: x2 the budget moves clean top-1 by teacher +0.05 [{teacher['interval'][0]:+.2f}, "
        f"{teacher['interval'][1]:+.2f}], student {student['mean_change']:+.2f} [{student['interval'][0]:+.2f}, "
        f"{student['interval'][1]:+.2f}] points (mean over seeds; tolerance 0.3)")


def test_two_seeds_have_an_interval_one_seed_none(tmp_path):
    two = {0: (80.0, 80.5), 1: (81.0, 81.25)}  # changes 0.5 and 0.25: mean 0.375, sd 0.17678, t(0.975, 1) = 12.706
    out = tmp_path / "two"
    _fill(out, two, two)
    test = doubling_test(_study(tmp_path, seeds=(0, 1)), out)
    half = 12.7062 * 0.176777 / math.sqrt(2)
    assert test["teacher"]["interval"] == pytest.approx([0.375 - half, 0.375 + half], abs=1e-3)
    assert test["teacher"] == _role(two) and test["status"] == "failed"  # 0.375 >= 0.3
    one = {0: (80.0, 80.25)}
    out = tmp_path / "one"
    _fill(out, one, one)
    test = doubling_test(_study(tmp_path, seeds=(0,)), out)
    assert test["teacher"] == {"base": {"0": 80.0}, "doubled": {"0": 80.25}, "change": {"0": 0.25}, "seeds": 1,
                               "mean_change": 0.25}
    assert test["status"] == "passed"
    assert describe(test) == ("converged at scale small: x2 the budget moves clean top-1 by teacher +0.25, student "
                              "+0.25 points (mean over seeds; tolerance 0.3)")


@pytest.mark.parametrize("teacher, student, tolerance, status", [
    ((80.0, 80.3), (80.0, 80.0), 0.3, "failed"),  # 80.3 - 80.0 rounds to 0.3: not below the tolerance
    ((80.0, 79.7), (80.0, 80.0), 0.3, "failed"),  # -0.3: |mean| counts
    ((80.0, 80.2999), (80.0, 79.7001), 0.3, "passed"),
    ((80.0, 80.0), (80.0, 81.0), 0.3, "failed"),  # the student alone fails it
    ((80.0, 81.0), (80.0, 80.0), 1.5, "passed"),  # the study's tolerance
])
def test_passed_only_when_both_move_by_less_than_the_tolerance(tmp_path, teacher, student, tolerance, status):
    out = tmp_path / "out"
    _fill(out, {0: teacher}, {0: student})
    test = doubling_test(_study(tmp_path, seeds=(0,), tolerance=tolerance), out)
    assert test["status"] == status and test["passed"] is (status == "passed") and test["tolerance"] == tolerance
    assert describe(test).startswith("converged at" if status == "passed" else "NOT converged at")


def test_a_seed_without_both_folders_leaves_the_test_incomplete(tmp_path):
    out = tmp_path / "out"
    student = {0: STUDENT[0], 1: (STUDENT[1][0], None), 2: (None, STUDENT[2][1])}  # seeds 1 and 2: half a pair
    _fill(out, TEACHER, student)
    test = doubling_test(_study(tmp_path), out)
    assert test["teacher"] == _role(TEACHER) and test["student"] == _role({0: STUDENT[0]})
    assert test["status"] == "passed (incomplete: 1 of 3 seeds)" and test["passed"] is True
    teacher = {0: (80.0, 81.0), 1: (80.0, 81.0), 2: (80.0, None)}
    out = tmp_path / "out2"
    _fill(out, teacher, STUDENT)
    test = doubling_test(_study(tmp_path), out)
    assert test["status"] == "failed (incomplete: 2 of 3 seeds)" and test["passed"] is False
    assert test["teacher"]["seeds"] == 2 and test["student"]["seeds"] == 3


def test_a_role_without_any_pair_is_not_measured(tmp_path):
    out = tmp_path / "out"
    _fill(out, TEACHER, {})
    test = doubling_test(_study(tmp_path), out)
    assert test == {**HEAD, "status": "not tested", "source": "none: run the study with --check-convergence"}
    assert describe(test) == "convergence not tested at scale small (nsbench study ... --check-convergence)"


def test_doubled_runs_in_the_folder_are_measured_without_the_flag(tmp_path):
    """An earlier invocation with --check-convergence left its folders: a later one without it measures them."""
    out = tmp_path / "out"
    _fill(out, TEACHER, STUDENT, factor=3)
    rec = {"small": {"passed": False, "teacher": {"mean_change": 9.0}}}
    study = _study(tmp_path, check=False, factor=3, measured=rec)
    assert study.doubled == []
    test = doubling_test(study, out)
    assert test["source"] == "measured in this study folder" and test["factor"] == 3
    assert test["teacher"] == _role(TEACHER) and test["student"] == _role(STUDENT) and test["status"] == "passed"
    # no doubled teacher of the first seed: the record
    assert doubling_test(study, tmp_path / "empty")["source"] == "recorded in s.yaml (convergence.measured.small)"


def test_without_runs_the_study_files_record_for_the_scale_is_used(tmp_path):
    rec = {"passed": True, "date": "2026-12-01", "seeds": [0, 1],
           "teacher": {"mean_change": 0.1, "interval": [-0.25, 0.45]}, "student": {"mean_change": -0.2}}
    study = _study(tmp_path, check=False, measured={"small": rec, "other": {"passed": False}})
    test = doubling_test(study, tmp_path / "empty")
    assert test == {**HEAD, **rec, "status": "passed", "source": "recorded in s.yaml (convergence.measured.small)"}
    assert describe(test) == ("converged at scale small: x2 the budget moves clean top-1 by teacher +0.10 [-0.25, "
                              "+0.45], student -0.20 points (mean over seeds; tolerance 0.3)")
    # the study was run with the flag but nothing was scored yet: still the record
    assert doubling_test(_study(tmp_path, measured={"small": rec}), tmp_path / "empty")["status"] == "passed"
    for measured in ({"small": {"passed": False, "teacher": {"mean_change": 0.5}}},
                     {"small": {"teacher": {"mean_change": 0.5}}}):  # no verdict recorded: failed
        assert doubling_test(_study(tmp_path, check=False, measured=measured), tmp_path / "e")["status"] == "failed"
    for measured in ({}, {"other": rec}, {"small": {}}):
        test = doubling_test(_study(tmp_path, check=False, measured=measured), tmp_path / "empty")
        assert test == {**HEAD, "status": "not tested", "source": "none: run the study with --check-convergence"}


def test_the_shipped_records_read_as_docs_studies_md_prints_them():
    """docs/studies.md: `long` "+0.79 [-0.91, +2.48] for the teacher ... and +0.83 [+0.01, +1.64] for the student";
    `longer` "a 19,200-step teacher gains +0.77 [-0.31, +1.86]", its students not measured."""
    path = ROOT / "training" / "studies" / "paper_ablations.yaml"
    empty = Path("/nonexistent")
    longer = doubling_test(load_study(path), empty)
    assert longer["status"] == "failed"
    assert longer["source"] == "recorded in paper_ablations.yaml (convergence.measured.longer)"
    assert describe(longer) == ("NOT converged at scale longer: x2 the budget moves clean top-1 by teacher +0.77 "
                                "[-0.31, +1.86] points (mean over seeds; tolerance 0.3)")
    long = doubling_test(load_study(path, scale="long"), empty)
    assert describe(long) == ("NOT converged at scale long: x2 the budget moves clean top-1 by teacher +0.79 "
                              "[-0.91, +2.48], student +0.83 [+0.01, +1.64] points (mean over seeds; tolerance 0.3)")
    quick = doubling_test(load_study(path, scale="quick"), empty)
    assert quick["status"] == "not tested"
    # the recorded teacher of `long`: its interval is the t-interval of its per-seed changes about their mean
    ch = np.array([0.17, 0.67, 1.52])
    half = student_t.ppf(0.975, 2) * ch.std(ddof=1) / math.sqrt(3)
    assert long["teacher"]["mean_change"] == round(ch.mean(), 4)
    assert long["teacher"]["interval"] == pytest.approx([ch.mean() - half, ch.mean() + half], abs=1e-3)
