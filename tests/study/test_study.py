"""`nsbench study`: variants x seeds trained from one shared teacher per seed, scored with one suite and cache,
reported as claims with intervals; resumed without redoing anything; bad study files, bad variants and a changed
finished study refused before training; a log that cannot be opened is one line."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from helpers import error_lines, tiny_study
from nsbench.cli import main
from nsbench.utils import NsbenchError


def _mtimes(folder: Path) -> dict[str, int]:
    """Checkpoints, run summaries and eval results (the report is rendered again by design)."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in [*folder.glob("runs/**/*"), *folder.glob("eval/**/*")]
            if p.is_file() and (p.suffix in (".pt", ".npz") or p.name in ("results.csv", "meta.json", "summary.json"))}


def test_two_variants_two_seeds_end_to_end_then_resume_redoes_nothing(tiny_folder, tmp_path, caplog):
    path = tiny_study(tmp_path, f"folder:{tiny_folder}")
    out = tmp_path / "out"
    assert main(["study", str(path), "--out", str(out), "--workers", "0", "--jobs", "1"]) == 0
    first = json.loads((out / "study.json").read_text())["last_invocation"]
    # one teacher per seed, trained once; every variant starts from its seed's teacher
    assert sorted(first["trained"]) == sorted(["teacher-seed0", "noisy_student-seed0", "no_noise-seed0",
                                               "teacher-seed1", "noisy_student-seed1", "no_noise-seed1"])
    for seed in (0, 1):
        teacher = (out / "runs" / f"teacher-seed{seed}" / "iter0.pt").read_bytes()
        for v in ("noisy_student", "no_noise"):
            run = out / "runs" / f"{v}-seed{seed}"
            assert (run / "iter0.pt").read_bytes() == teacher
            summary = json.loads((run / "summary.json").read_text())
            its = {e["iteration"]: e for e in summary["iterations"]}
            assert its[1]["parent_sha256"] == its[0]["sha256"]
        assert yaml.safe_load((out / "runs" / f"no_noise-seed{seed}" / "config.yaml").read_text())["noise"]["randaugment"] is False
    # every checkpoint scored once, under its variant's name (the shared teacher as `teacher`)
    labels = {"teacher-seed0-iter0", "noisy_student-seed0-iter1", "noisy_student-seed0-iter2", "no_noise-seed0-iter1",
              "teacher-seed1-iter0", "noisy_student-seed1-iter1", "noisy_student-seed1-iter2", "no_noise-seed1-iter1"}
    assert set(first["evaluated"]) == labels
    assert {p.name for p in (out / "eval").iterdir() if p.name != "cache"} == labels
    for lab in labels:
        assert set(pd.read_csv(out / "eval" / lab / "results.csv").model) == {lab}
    assert (out / "eval" / "cache" / "cells").is_dir()
    # the report: one table per claim group, cells over seeds, one verdict per claim from its interval
    html = (out / "report" / "index.html").read_text()
    assert 'id="claims"' in html and 'id="study-table-0"' in html and 'class="claim"' in html
    claims = pd.read_csv(out / "report" / "claims.csv")
    assert list(claims.claim) == ["noise helps", "the student beats the teacher"]
    for _, c in claims.iterrows():
        assert c.seeds == 2 and c.test == "paired t over 2 seeds"
        assert np.isfinite(c.diff_low) and c.diff_low <= c["diff"] <= c.diff_high
        significant = c.p_adjusted < 0.05  # Holm across the study's two claims
        expect = ("holds" if c.diff_low > 0 and significant else "reversed" if c.diff_high < 0 and significant
                  else f"underpowered (MDE {c.mde:.2f})" if c.mde > c.usual_effect else "not resolved at this scale")
        assert c.verdict == expect and c.p_adjusted >= c.p_value
    assert "| noise helps | noisy_student@1 | no_noise |" in (out / "report" / "claims.md").read_text()
    seeds = pd.read_csv(out / "report" / "seeds.csv")  # seed pooling groups by variant and iteration
    assert {"noisy_student-iter1", "noisy_student-iter2", "no_noise-iter1", "teacher-iter0"} <= set(seeds.group)

    before = _mtimes(out)
    caplog.clear()
    assert main(["study", str(path), "--out", str(out), "--workers", "0", "--jobs", "1"]) == 0
    second = json.loads((out / "study.json").read_text())["last_invocation"]
    assert second["trained"] == [] and second["evaluated"] == []
    assert len(before) > 20 and _mtimes(out) == before  # no checkpoint, summary, cached cell or result rewritten
    assert "finished already, skipping" in caplog.text and "evaluated already, skipping" in caplog.text
    assert pd.read_csv(out / "report" / "claims.csv").equals(claims)


def test_a_killed_study_resumes_the_unfinished_run_only(tiny_folder, tmp_path, monkeypatch):
    """A study stopped during its second run: the rerun skips the finished teacher, resumes the rest."""
    import nsbench.training.driver as drv

    path = tiny_study(tmp_path, f"folder:{tiny_folder}", seeds=[0],
                      variants={"noisy_student": {"about": "the recipe", "overrides": []}},
                      tables=[{"title": "t", "rows": ["noisy_student"],
                               "claims": [{"claim": "student beats teacher", "better": "noisy_student", "than": "teacher"}]}])
    out = tmp_path / "out"
    real = drv.train_stage

    def killed(model, stage):
        if stage.name == "iter1":
            raise KeyboardInterrupt
        return real(model, stage)

    monkeypatch.setattr(drv, "train_stage", killed)
    assert main(["study", str(path), "--out", str(out), "--workers", "0", "--jobs", "1"]) == 130
    teacher = out / "runs" / "teacher-seed0" / "iter0.pt"
    t_mtime = teacher.stat().st_mtime_ns
    monkeypatch.setattr(drv, "train_stage", real)
    assert main(["study", str(path), "--out", str(out), "--workers", "0", "--jobs", "1"]) == 0
    done = json.loads((out / "study.json").read_text())["last_invocation"]
    assert done["trained"] == ["noisy_student-seed0"] and teacher.stat().st_mtime_ns == t_mtime
    assert "teacher-seed0-iter0" in done["evaluated"] or (out / "eval" / "teacher-seed0-iter0" / "meta.json").exists()
    claims = pd.read_csv(out / "report" / "claims.csv")
    assert claims.test.iloc[0].startswith("exact McNemar")  # one seed: the per-image paired test


def test_one_seed_claims_use_the_per_image_paired_test():
    from nsbench.report.claims import claim_verdict

    assert claim_verdict(0.5, 2.0, True) == "holds" and claim_verdict(-2.0, -0.5, True) == "reversed"
    assert claim_verdict(-0.5, 2.0, True) == "not resolved at this scale"
    assert claim_verdict(-2.0, -0.5, False) == "holds"  # an error measure: lower is the paper's direction
    assert claim_verdict(np.nan, np.nan, True) == "no result"


@pytest.mark.parametrize("change, message", [
    ({"variants": {"noisy_student": {"overrides": ["students.0.drop_ratee=0.1"]}}}, "variant noisy_student: "),
    ({"seeds": []}, "seeds: must list at least one seed"),
    ({"tables": [{"title": "t", "rows": ["noisy_student"], "claims": [{"claim": "c", "better": "nosiy", "than": "teacher"}]}]},
     "tables.0.claims.0.better: unknown variant 'nosiy'"),
    ({"variants": {"a": {"overrides": ["seed=3"]}}}, "variant a: sets the seed"),
    ({"suite": "nope"}, "suite: suite 'nope'"),
    ({"metric": "top1"}, "metric: unknown measure 'top1'"),
    ({"colour": "red"}, "unknown key(s) colour"),
    ({"variants": {"noisy_student": {"overrides": ["pseudo.filter_on=sometimes"]}}}, "pseudo.filter_on"),
])
def test_bad_studies_are_refused_in_one_line_before_training(tiny_folder, tmp_path, capsys, monkeypatch, change, message):
    import nsbench.training.driver as drv

    monkeypatch.setattr(drv, "train", lambda *a, **k: pytest.fail("trained despite a bad study"))
    path = tiny_study(tmp_path, f"folder:{tiny_folder}", **change)
    assert main(["study", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and message in err, err
    assert not (tmp_path / "out" / "runs").exists()


def test_unknown_or_missing_study_lists_the_shipped_ones(capsys, tmp_path):
    assert main(["study", "paper_ablatoins"]) == 2
    err = capsys.readouterr().err
    assert "no shipped study of that name" in err and "paper_ablations" in err
    assert main(["study", str(tmp_path / "missing.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["study", "paper_ablations", "--seeds", "0,x"]) == 2
    assert main(["study", "paper_ablations", "--scale", "huge"]) == 2
    assert "not one of longer, longest, long, quick, full" in capsys.readouterr().err


def test_every_shipped_study_resolves_and_covers_the_papers_ablations():
    from nsbench.resources import list_shipped
    from nsbench.study import load_study

    shipped = list_shipped("study")
    assert [p.stem for p in shipped] == ["paper_ablations", "paper_ablations_extended"]
    refs = set()
    for p in shipped:
        for scale in ("longer", "longest", "long", "quick", "full"):
            s = load_study(p, scale=scale)
            assert len(s.seeds) >= 3 and all(s.shares_teacher.values())
            assert s.runs[0].name == "teacher-seed0" and s.runs[0].cfg.ns.iterations == 0
        s = load_study(p)
        assert s.scale == "longer" and s.runs[1].cfg.data.unlabeled_limit is None  # the default: the longest measured
        # longest doubles longer (the teachers of its doubling test are longer's doubled ones)
        assert load_study(p, scale="longest").runs[0].cfg.teacher_optim.epochs == 2 * s.runs[0].cfg.teacher_optim.epochs
        assert load_study(p, scale="quick").runs[1].cfg.data.unlabeled_limit == 8000
        # the doubling test retrains the reference variant's student and the teacher at twice the budgets
        d = load_study(p, check_convergence=True).doubled
        assert {x.name for x in d if x.seed == 0} == {"teacher-x2-seed0", "noisy_student-x2-seed0"}
        assert d[0].cfg.teacher_optim.epochs == 2 * s.runs[0].cfg.teacher_optim.epochs
        # the default scale's doubling test is recorded in the file, so every report says whether it converged
        from nsbench.study.convergence import doubling_test

        assert doubling_test(s, Path("/nonexistent"))["status"] in ("passed", "failed")
        spec = s.report_spec()
        refs |= {c[k]["ref"] for t in spec["tables"] for c in t["claims"] for k in ("better", "than")}
    for needed in ("no_noise", "no_augmentation", "no_dropout", "no_stochastic_depth", "hard_labels", "student_larger",
                   "noisy_student@2", "noisy_student@3", "no_filter", "no_balance", "ratio_1", "init_from_teacher",
                   "teacher"):
        assert needed in refs, needed
    s = load_study(shipped[1])
    cfg = {p.variant: p.cfg for p in s.runs if p.seed == 0 and p.variant}
    assert cfg["no_noise"].noise.randaugment is False and cfg["no_noise"].students[0].drop_rate == 0.0
    assert cfg["student_larger"].students[0].kwargs == {"depth_multiplier": 2.0, "channel_multiplier": 1.25}
    assert cfg["noisy_student"].ns.iterations == 3 and cfg["hard_labels"].ns.iterations == 1


def test_a_variant_that_changes_the_teacher_trains_its_own(tiny_folder, tmp_path):
    from nsbench.study import load_study

    path = tiny_study(tmp_path, f"folder:{tiny_folder}",
                      variants={"noisy_student": {"overrides": []},
                                "wide_teacher": {"overrides": ["teacher_optim.lr=0.001"]},
                                "fewer_unlabeled": {"overrides": ["data.unlabeled_limit=40"]}},
                      tables=[{"title": "t", "rows": ["noisy_student", "wide_teacher@0"]}])
    s = load_study(path)
    assert s.shares_teacher == {"noisy_student": True, "wide_teacher": False, "fewer_unlabeled": True}
    assert s.label("wide_teacher@0", 1) == "wide_teacher-seed1-iter0" and s.label("noisy_student@0", 1) == "teacher-seed1-iter0"
    plans = {p.name: p for p in s.runs}
    assert plans["wide_teacher-seed0"].teacher is None and plans["fewer_unlabeled-seed0"].teacher == "teacher-seed0"
    assert [k for k, _ in s.checkpoints(plans["wide_teacher-seed0"])] == [0, 1]
    with pytest.raises(NsbenchError, match="changes|differs|iteration"):
        load_study(tiny_study(tmp_path, f"folder:{tiny_folder}",
                              tables=[{"title": "t", "rows": ["no_noise@2"]}]))


def test_a_study_runs_unchanged_under_torchrun(tiny_folder, tmp_path):
    """Two gloo ranks on the CPU: every rank walks the same loop; rank 0 alone writes the study's files."""
    import os
    import subprocess
    import sys

    path = tiny_study(tmp_path, f"folder:{tiny_folder}", seeds=[0],
                      variants={"noisy_student": {"about": "the recipe", "overrides": []}},
                      tables=[{"title": "t", "rows": ["teacher", "noisy_student"],
                               "claims": [{"claim": "student beats teacher", "better": "noisy_student", "than": "teacher"}]}])
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "nsbench",
           "study", str(path), "--out", str(out), "--workers", "0"]
    root = Path(__file__).resolve().parents[2]
    res = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    done = json.loads((out / "study.json").read_text())["last_invocation"]
    assert done["trained"] == ["teacher-seed0", "noisy_student-seed0"]
    assert done["evaluated"] == ["teacher-seed0-iter0", "noisy_student-seed0-iter1"]
    assert sorted((out / "runs" / "noisy_student-seed0" / "iter1" / "pseudo").glob("labels-*"))[-1].name.endswith("of-00002.parquet")
    verdict = pd.read_csv(out / "report" / "claims.csv").verdict.iloc[0]
    assert verdict in ("holds", "reversed", "not resolved at this scale") or verdict.startswith("underpowered (MDE ")
    res = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0 and json.loads((out / "study.json").read_text())["last_invocation"]["trained"] == []


def _run_state(out: Path) -> dict:
    """Every run's training outcome and every checkpoint's scores: weights, validation history, results rows."""
    import torch

    from nsbench.checkpoint import load_checkpoint

    state = {}
    for run in sorted((out / "runs").iterdir()):
        summary = json.loads((run / "summary.json").read_text())
        state[run.name] = [(e["iteration"], e["val_top1"], e.get("final_quarter_gain")) for e in
                           sorted(summary["iterations"], key=lambda e: e["iteration"])]
        for ckpt in sorted(run.glob("iter*.pt")):
            model, _ = load_checkpoint(ckpt)
            state[f"{run.name}/{ckpt.name}"] = {k: v.clone() for k, v in model.state_dict().items()
                                                if isinstance(v, torch.Tensor)}
    for ev in sorted(p for p in (out / "eval").iterdir() if p.name != "cache"):
        df = pd.read_csv(ev / "results.csv")
        state[f"eval/{ev.name}"] = df[["task", "condition", "eps_255", "metric", "value", "n"]].to_csv(index=False)
    return state


def test_parallel_study_equals_serial_at_the_same_threads(tiny_folder, tmp_path):
    """--jobs 2 (two runs at a time, each its own process pinned to one thread) trains and scores exactly what
    --jobs 1 --threads 1 does; each run records its threads, and study.json where each job ran."""
    import torch

    path = tiny_study(tmp_path, f"folder:{tiny_folder}", seeds=[0],
                      scales={"small": ["teacher_optim.epochs=4", "student_optim.epochs=4"], "full": []},
                      variants={"noisy_student": {"about": "the recipe", "overrides": []},
                                "no_noise": {"about": "no noise", "overrides": ["noise.randaugment=false"]},
                                "hard_labels": {"about": "hard", "overrides": ["pseudo.soft=false"]}},
                      tables=[{"title": "t", "rows": ["teacher", "noisy_student", "no_noise", "hard_labels"],
                               "claims": [{"claim": "noise helps", "better": "noisy_student", "than": "no_noise"}]}])
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    assert main(["study", str(path), "--out", str(serial), "--workers", "0", "--jobs", "1", "--threads", "1"]) == 0
    assert main(["study", str(path), "--out", str(parallel), "--workers", "0", "--jobs", "2", "--threads", "1"]) == 0
    a, b = _run_state(serial), _run_state(parallel)
    assert a.keys() == b.keys() and len(a) >= 4 + 4 + 4
    for key in a:
        if isinstance(a[key], dict):
            assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key
        else:
            assert a[key] == b[key], key
    done = json.loads((parallel / "study.json").read_text())["last_invocation"]
    assert done["jobs"] == 2 and done["threads_per_job"] == 1
    assert set(done["slots"]) == {"teacher-seed0", "noisy_student-seed0", "no_noise-seed0", "hard_labels-seed0"}
    assert {tuple(s["cores"]) for s in done["slots"].values()} <= {(0,), (1,)} or len(os.sched_getaffinity(0)) < 2
    for run in (serial / "runs").iterdir():
        for out in (serial, parallel):
            assert yaml.safe_load((out / "runs" / run.name / "config.yaml").read_text())["runtime"]["threads"] == 1
    # the study records every run's seed, labeled draw and final-quarter gain (4 epochs: after epoch 3)
    runs = {r["name"]: r for r in done["runs"]}
    assert runs["no_noise-seed0"]["labeled"] == runs["teacher-seed0"]["labeled"]
    assert all(it["quarter_epoch"] == 3 and it["final_quarter_gain"] is not None
               for r in runs.values() for it in r["iterations"])
    assert pd.read_csv(parallel / "report" / "claims.csv").equals(pd.read_csv(serial / "report" / "claims.csv"))


def test_a_failed_job_stops_the_study_with_its_name(tiny_folder, tmp_path, capsys):
    """A run that fails in its own process: no new job starts, the study exits 1 naming the run and why."""
    path = tiny_study(tmp_path, f"folder:{tiny_folder}", seeds=[0],
                      variants={"noisy_student": {"about": "the recipe", "overrides": []},
                                "broken": {"about": "a student whose training diverges",
                                           "overrides": ["student_optim.lr=1e30", "student_optim.epochs=3"]}},
                      tables=[{"title": "t", "rows": ["teacher", "noisy_student"],
                               "claims": [{"claim": "c", "better": "noisy_student", "than": "teacher"}]}])
    rc = main(["study", str(path), "--out", str(tmp_path / "out"), "--workers", "0", "--jobs", "2", "--threads", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and "study run broken-seed0 failed" in err and "not finite" in err, err[-2000:]
    assert err.strip().splitlines()[-1].startswith("nsbench: error: study run broken-seed0 failed")


def test_the_doubling_test_is_recorded_and_flags_every_claim(tiny_folder, tmp_path):
    """--check-convergence retrains the teacher and the reference student at twice the budget per seed; study.json
    holds the per-seed changes and the verdict, and every claim carries the scale's convergence status."""
    from nsbench.study import load_study

    path = tiny_study(tmp_path, f"folder:{tiny_folder}", seeds=[0, 1],
                      scales={"small": ["teacher_optim.epochs=2", "teacher_optim.eval_every=2"], "full": []},
                      variants={"noisy_student": {"about": "the recipe", "overrides": []}},
                      tables=[{"title": "t", "rows": ["teacher", "noisy_student"],
                               "claims": [{"claim": "student beats teacher", "better": "noisy_student", "than": "teacher"}]}])
    s = load_study(path, check_convergence=True)
    doubled = {p.name: p.cfg for p in s.doubled}
    assert set(doubled) == {"teacher-x2-seed0", "noisy_student-x2-seed0", "teacher-x2-seed1", "noisy_student-x2-seed1"}
    base = {p.name: p.cfg for p in s.runs}
    assert doubled["teacher-x2-seed1"].teacher_optim.epochs == 2 * base["teacher-seed1"].teacher_optim.epochs
    assert doubled["noisy_student-x2-seed0"].student_optim.epochs == 2 * base["noisy_student-seed0"].student_optim.epochs
    assert doubled["noisy_student-x2-seed0"].ns.iterations == 1
    out = tmp_path / "out"
    # without the check: the scale is "not tested", and every claim says so
    assert main(["study", str(path), "--out", str(out), "--workers", "0", "--jobs", "1"]) == 0
    claims = pd.read_csv(out / "report" / "claims.csv")
    assert (claims.convergence == "not tested").all() and claims.note.str.contains("convergence not tested").all()
    assert main(["study", str(path), "--out", str(out), "--workers", "0", "--jobs", "2", "--threads", "1",
                 "--check-convergence"]) == 0
    done = json.loads((out / "study.json").read_text())["last_invocation"]
    assert sorted(done["trained"]) == sorted(doubled)  # the study's own runs were finished already
    conv = done["convergence"]
    for role, base_label, doubled_label in (("teacher", "teacher-seed{}-iter0", "teacher-x2-seed{}-iter0"),
                                            ("student", "noisy_student-seed{}-iter1", "noisy_student-x2-seed{}-iter1")):
        for seed in (0, 1):
            b = pd.read_csv(out / "eval" / base_label.format(seed) / "results.csv")
            d = pd.read_csv(out / "eval" / doubled_label.format(seed) / "results.csv")
            top1 = [float(f[(f.task == "clean") & (f.metric == "top1_acc")].value.iloc[0]) for f in (b, d)]
            assert conv[role]["change"][str(seed)] == pytest.approx(top1[1] - top1[0], abs=1e-4)
        assert conv[role]["mean_change"] == pytest.approx(np.mean(list(conv[role]["change"].values())), abs=1e-4)
        assert len(conv[role]["interval"]) == 2
    passed = all(abs(conv[r]["mean_change"]) < 0.3 for r in ("teacher", "student"))
    assert conv["passed"] == passed and conv["status"] == ("passed" if passed else "failed")
    claims = pd.read_csv(out / "report" / "claims.csv")
    assert (claims.convergence == conv["status"]).all()
    assert claims.note.fillna("").str.contains("not converged").all() != passed
    html = (out / "report" / "index.html").read_text()
    assert 'id="convergence"' in html and "final-quarter gain" in html
    assert "| converged (doubling test) |" in (out / "report" / "claims.md").read_text()
    # the doubled runs stay out of the study's tables: only teacher and noisy_student rows
    assert "x2" not in (out / "report" / "claims.md").read_text()


def test_a_recorded_doubling_test_is_read_from_the_study_file(tiny_folder, tmp_path):
    from nsbench.study.convergence import describe, doubling_test
    from nsbench.study import load_study

    path = tiny_study(tmp_path, f"folder:{tiny_folder}", convergence={
        "measured": {"small": {"passed": False, "teacher": {"mean_change": 0.9}, "student": {"mean_change": 0.1}}}})
    test = doubling_test(load_study(path), tmp_path / "empty")
    assert test["status"] == "failed" and "recorded in study.yaml" in test["source"]
    assert describe(test).startswith("NOT converged at scale small") and "teacher +0.90" in describe(test)
    assert doubling_test(load_study(path, scale="full"), tmp_path / "empty")["status"] == "not tested"
    with pytest.raises(NsbenchError, match="convergence.variant"):
        load_study(tiny_study(tmp_path, f"folder:{tiny_folder}", convergence={"variant": "nope"}),
                   check_convergence=True)


def test_each_seed_draws_its_own_labeled_subset(tiny_folder, tmp_path):
    from nsbench.study import load_study
    from nsbench.training.run_data import load_data

    s = load_study(tiny_study(tmp_path, f"folder:{tiny_folder}"))
    teachers = [p for p in s.runs if p.variant is None]
    drawn = [tuple(load_data(p.cfg).labeled_idx) for p in teachers]
    assert [p.seed for p in teachers] == [0, 1] and drawn[0] != drawn[1]


# a changed study is refused before anything is skipped as finished (issue 21, probe 2)

def _fake_finished_runs(study, out: Path) -> None:
    """What a finished study leaves in runs/: each run's resolved config, summary and checkpoints."""
    for plan in study.runs:
        run = out / "runs" / plan.name
        run.mkdir(parents=True)
        (run / "config.yaml").write_text(yaml.safe_dump(plan.cfg.to_dict(), sort_keys=False))
        its = range(plan.cfg.ns.iterations + 1)
        summary = {"iterations": [{"iteration": k, "sha256": "0" * 64} for k in its]}
        (run / "summary.json").write_text(json.dumps(summary))
        for k in its:
            (run / f"iter{k}.pt").write_bytes(b"a finished checkpoint")


@pytest.mark.usefixtures("fresh_log_handlers")
def test_a_changed_finished_study_is_refused_not_skipped(tiny_folder, tmp_path, capsys, monkeypatch):
    import nsbench.training.driver as drv
    from nsbench.study import load_study

    path = tiny_study(tmp_path, f"folder:{tiny_folder}", seeds=[0])
    out = tmp_path / "out"
    _fake_finished_runs(load_study(path, scale="small"), out)
    spec = yaml.safe_load(path.read_text())
    spec["variants"]["no_noise"]["overrides"] = ["noise.randaugment=false", "students.0.drop_rate=0.5",
                                                 "students.0.drop_path_rate=0.0"]
    path.write_text(yaml.safe_dump(spec, sort_keys=False))  # the study file changed since the runs finished
    monkeypatch.setattr(drv, "train", lambda *a, **k: pytest.fail("trained despite a changed study"))
    assert main(["study", str(path), "--out", str(out), "--workers", "0"]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert re.search(r"no_noise-seed0: holds a run whose config differs from the study's no_noise-seed0 "
                     r"\(students\.0\.drop_rate: 0\.0 there, 0\.5 now\)", line), line
    assert not (out / "eval").exists() and not (out / "report").exists()  # nothing scored, no stale claims


@pytest.mark.usefixtures("fresh_log_handlers")
def test_a_log_that_cannot_be_opened_is_one_line(tiny_folder, tmp_path, capsys, monkeypatch):
    import nsbench.training.driver as drv

    monkeypatch.setattr(drv, "train", lambda *a, **k: pytest.fail("trained without its log"))
    path = tiny_study(tmp_path, f"folder:{tiny_folder}", seeds=[0])
    (tmp_path / "out" / "study.log").mkdir(parents=True)  # stands for a log file that cannot be opened
    assert main(["study", str(path), "--out", str(tmp_path / "out")]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert line == f"nsbench: error: {tmp_path / 'out' / 'study.log'}: cannot write (Is a directory)", line


# every variant of a study is resolved and checked before anything trains (issue 21, probe 8)

@pytest.mark.usefixtures("fresh_log_handlers")
@pytest.mark.parametrize("variants, message", [
    ({"noisy_student": 3}, "variants.noisy_student: expected a mapping (about, overrides) or a list of KEY=VALUE "
                           "overrides, got int 3"),
    ({"noisy_student": "ns.iterations=2"}, "variants.noisy_student: expected a mapping"),
    ({"noisy_student": {"overrides": [3]}}, "variants.noisy_student.overrides.0"),
    ({"noisy_student": {"overrides": []}, "no_noise": {"overrides": ["students.0.kwargs.channel_multiplier=0.5"]}},
     "variant no_noise (no_noise-seed0): iteration 1: student test_efficientnet"),
])
def test_bad_variants_are_refused_naming_the_variant_before_anything_trains(variants, message, tiny_folder, tmp_path,
                                                                             capsys, monkeypatch):
    import nsbench.training.driver as drv

    monkeypatch.setattr(drv, "train", lambda *a, **k: pytest.fail("trained despite a bad study"))
    tables = [{"title": "t", "rows": ["noisy_student"],
               "claims": [{"claim": "c", "better": "noisy_student", "than": "teacher"}]}]
    path = tiny_study(tmp_path, f"folder:{tiny_folder}", seeds=[0], variants=variants, tables=tables)
    assert main(["study", str(path), "--out", str(tmp_path / "out")]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert str(path) in line and message in line, line
    assert not (tmp_path / "out" / "runs").exists()
