"""The study runner (nsbench/study/runner.py) without training: run folders and eval folders fabricated in tmp_path
for a two-variant, two-seed study of the default recipe, the training and scoring calls replaced by recorders.

Pinned, against the module's docstrings and docs/studies.md: which run is finished (every iteration recorded in
summary.json with its checkpoint) and which is complete (also every checkpoint the study reports scored, by the
checkpoint's sha256 and the suite's config); a leftover folder of another config is refused naming the first
difference (the runtime section aside); the shared teacher is placed as a hard link or a copy, and a missing one is
refused; a job trains, then scores each checkpoint the study reports, and times both; run_records' per-run entry
(seed, the labeled subset's count and hash, threads, iterations sorted, the doubling runs marked) and the
final-quarter gains of the study's own runs; run_study's record of what it did (jobs, threads per job, the
per-job slots) in study.json; the ladder check names the variant and its run."""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import pytest
import yaml

from nsbench import runs
from nsbench.study import runner
from nsbench.study.spec import load_study
from nsbench.utils import NsbenchError, read_json

VARIANTS = {"noisy_student": {"overrides": []}, "no_noise": {"overrides": ["noise.randaugment=false"]},
            "bigger": {"overrides": ["teacher.drop_rate=0.5"]}}  # bigger: its own teacher (teacher.* differ)


@pytest.fixture
def study(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"recipe": "default", "seeds": [0, 1], "suite": "study", "iterations": 2,
                                    "variants": VARIANTS, "tables": [{"rows": ["noisy_student", "no_noise"]}]}))
    return load_study(path)


def plan_of(study, name):
    return next(p for p in study.runs if p.name == name)


def fake_run(out: Path, plan, iterations=None, sha="s", config=None) -> Path:
    """A run folder as `nsbench train` leaves it: config.yaml, summary.json with `iterations`, their checkpoints."""
    run = out / "runs" / plan.name
    run.mkdir(parents=True, exist_ok=True)
    (run / runs.CONFIG).write_text(yaml.safe_dump(config or plan.cfg.to_dict(), sort_keys=False))
    its = range(plan.cfg.ns.iterations + 1) if iterations is None else iterations
    (run / runs.SUMMARY).write_text(json.dumps({"iterations": [{"iteration": k, "sha256": f"{sha}{k}"} for k in its]}))
    for k in its:
        runs.checkpoint(run, k).write_bytes(b"ckpt")
    return run


def fake_eval(out: Path, label: str, sha: str, suite: dict, results=True):
    dest = out / "eval" / label
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "meta.json").write_text(json.dumps({"model": {"sha256": sha}, "suite": {"config": suite}}))
    if results:
        (dest / "results.csv").write_text("task\n")


def test_a_run_is_finished_when_every_iteration_is_recorded_with_its_checkpoint(study, tmp_path):
    p = plan_of(study, "no_noise-seed0")  # iterations 0..2
    run = fake_run(tmp_path, p)
    assert runner._finished(run, 2)
    assert not runner._finished(run, 3)
    runs.checkpoint(run, 1).unlink()
    assert not runner._finished(run, 2)
    run = fake_run(tmp_path / "b", p, iterations=[0, 2])
    assert not runner._finished(run, 2) and runner._finished(run, 0)
    (run / runs.SUMMARY).write_text("[]")  # not a summary: not finished, no error
    assert not runner._finished(run, 0)
    (run / runs.CONFIG).unlink()
    assert not runner._finished(run, 0)


def test_a_run_is_complete_when_every_reported_checkpoint_is_scored_on_this_suite(study, tmp_path):
    p = plan_of(study, "no_noise-seed0")  # shares the teacher: its iterations 1 and 2 are reported
    suite = runner._suite_record(study)
    assert not runner._complete(study, p, tmp_path)  # not even trained
    assert [label for _, label in study.checkpoints(p)] == ["no_noise-seed0-iter1", "no_noise-seed0-iter2"]
    fake_run(tmp_path, p, sha="s")
    assert not runner._complete(study, p, tmp_path)
    fake_eval(tmp_path, "no_noise-seed0-iter1", "s1", suite)
    assert not runner._complete(study, p, tmp_path)
    fake_eval(tmp_path, "no_noise-seed0-iter2", "s2", suite)
    assert runner._complete(study, p, tmp_path)
    fake_eval(tmp_path, "no_noise-seed0-iter2", "retrained", suite)  # scored before the run was trained again
    assert not runner._complete(study, p, tmp_path)
    fake_eval(tmp_path, "no_noise-seed0-iter2", "s2", {**suite, "seed": 7})  # another suite
    assert not runner._complete(study, p, tmp_path)
    fake_eval(tmp_path, "no_noise-seed0-iter2", "s2", suite, results=False)
    (tmp_path / "eval" / "no_noise-seed0-iter2" / "results.csv").unlink()
    assert not runner._complete(study, p, tmp_path)


def test_an_eval_folder_with_a_damaged_meta_json_is_not_scored(tmp_path):
    dest = tmp_path / "e"
    dest.mkdir()
    (dest / "results.csv").write_text("x\n")
    (dest / "meta.json").write_text("{not json")
    assert not runner._evaluated(dest, "s", {})
    (dest / "meta.json").write_text(json.dumps({"model": {"sha256": "s"}, "suite": {"config": {}}}))
    assert runner._evaluated(dest, "s", {})
    (dest / "meta.json").write_text(json.dumps({}))
    assert not runner._evaluated(dest, "s", {})


def test_a_summary_without_iterations_is_not_complete(study, tmp_path):
    p = plan_of(study, "no_noise-seed0")
    run = fake_run(tmp_path, p)
    assert runner._finished(run, 2)
    (run / runs.SUMMARY).write_text(json.dumps({"iterations": [{"iteration": 0}, {"iteration": 1},
                                                               {"iteration": 2}]}))  # no sha256
    assert not runner._complete(study, p, tmp_path)


def test_a_leftover_folder_of_another_config_is_refused_naming_the_first_difference(study, tmp_path):
    p = plan_of(study, "no_noise-seed0")
    cfg = p.cfg.to_dict()
    run = fake_run(tmp_path, p, config={**cfg, "runtime": {**cfg["runtime"], "threads": 7}})
    runner._check_same_config(run, p)  # the runtime section is not part of the experiment
    changed = {**cfg, "noise": {**cfg["noise"], "randaugment": True, "ra_magnitude": 3}}
    run = fake_run(tmp_path / "b", p, config=changed)
    with pytest.raises(NsbenchError) as e:
        runner._check_same_config(run, p)
    was = cfg["noise"]["ra_magnitude"]
    assert str(e.value) == (f"{run}: holds a run whose config differs from the study's no_noise-seed0 "
                            f"(noise.ra_magnitude: 3 there, {was!r} now); use another --out or remove the folder")


def test_the_first_difference_walks_mappings_by_key_and_lists_by_index():
    first = runner._first_difference
    assert first({"a": 1, "b": {"c": [1, 2]}}, {"a": 1, "b": {"c": [1, 2]}}) is None
    assert first({"b": {"c": [1, 2]}, "a": 2}, {"a": 1, "b": {"c": [1, 3]}}) == "a: 2 there, 1 now"  # sorted keys
    assert first({"b": {"c": [1, 2]}}, {"b": {"c": [1, 3]}}) == "b.c.1: 2 there, 3 now"
    assert first({"b": [1, 2]}, {"b": [1, 2, 3]}) == "b: [1, 2] there, [1, 2, 3] now"  # lengths differ: whole
    assert first({"x": 1}, {}) == "x: 1 there, None now"
    assert first({"x": {"y": 1}}, {}) == "x: {'y': 1} there, None now"  # a section against nothing: whole
    assert first([{"k": 1}], [{"k": 2}], "s") == "s.0.k: 1 there, 2 now"


def test_the_shared_teacher_is_linked_else_copied_and_a_missing_one_is_refused(study, tmp_path, monkeypatch):
    teacher = fake_run(tmp_path, plan_of(study, "teacher-seed0"), iterations=[0])
    run = tmp_path / "runs" / "no_noise-seed0"
    run.mkdir()
    runner._place_teacher(teacher, run)
    assert os.path.samefile(runs.checkpoint(run, 0), runs.checkpoint(teacher, 0))
    other = tmp_path / "runs" / "other"
    other.mkdir()

    def no_links(src, dst):
        raise OSError("cross-device link")

    monkeypatch.setattr(runner.os, "link", no_links)
    runner._place_teacher(teacher, other)
    assert runs.checkpoint(other, 0).read_bytes() == b"ckpt"
    assert not os.path.samefile(runs.checkpoint(other, 0), runs.checkpoint(teacher, 0))
    with pytest.raises(NsbenchError, match="iter0.pt: the shared teacher is missing"):
        runner._place_teacher(tmp_path / "runs" / "nobody", run)


def test_a_job_trains_then_scores_each_reported_checkpoint_and_times_both(study, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(runner, "_train", lambda plan, out: calls.append(("train", plan.name)) or True)
    monkeypatch.setattr(runner, "_evaluate", lambda study, run, k, label, out, device, workers:
                        calls.append(("eval", run.name, k, label, device, workers)) or k != 2)
    res = runner.run_job(plan_of(study, "no_noise-seed1"), study, tmp_path, "cpu", 3, child=False)
    assert calls == [("train", "no_noise-seed1"), ("eval", "no_noise-seed1", 1, "no_noise-seed1-iter1", "cpu", 3),
                     ("eval", "no_noise-seed1", 2, "no_noise-seed1-iter2", "cpu", 3)]
    assert res["trained"] == ["no_noise-seed1"] and res["evaluated"] == ["no_noise-seed1-iter1"]
    assert set(res["timings_s"]) == {"train no_noise-seed1", "eval no_noise-seed1-iter1"}
    # a run finished already: nothing trained or timed; a job pinned to a GPU scores there
    monkeypatch.setattr(runner, "_train", lambda plan, out: False)
    import dataclasses

    p = plan_of(study, "bigger-seed0")  # its own teacher: iterations 0..2 reported
    p = dataclasses.replace(p, cfg=dataclasses.replace(p.cfg, runtime=dataclasses.replace(p.cfg.runtime,
                                                                                          device="cuda:1")))
    calls.clear()
    res = runner.run_job(p, study, tmp_path, "auto", None, child=True)
    assert res["trained"] == [] and [c[2] for c in calls] == [0, 1, 2] and {c[4] for c in calls} == {"cuda:1"}
    assert (tmp_path / "study.log").exists()  # a job's own process logs to the study's log too


def test_run_records_hold_each_runs_seed_subset_threads_and_iterations(study, tmp_path):
    p = plan_of(study, "no_noise-seed1")
    run = fake_run(tmp_path, p)
    cfg = p.cfg.to_dict()
    (run / runs.CONFIG).write_text(yaml.safe_dump({**cfg, "runtime": {**cfg["runtime"], "threads": 2}}))
    (run / runs.SPLIT).write_text(json.dumps({"n_labeled": 3, "labeled_indices": [5, 1, 9]}))
    (run / runs.SUMMARY).write_text(json.dumps({"iterations": [
        {"iteration": 1, "val_top1": 61.5, "steps": 10, "final_quarter_gain": 0.25, "quarter_epoch": 6,
         "train_seconds": 3.0, "sha256": "x"},
        {"iteration": 0, "val_top1": 60.0, "steps": 8, "train_seconds": 2.0}]}))
    teacher = fake_run(tmp_path, plan_of(study, "teacher-seed0"), iterations=[0])
    (teacher / runs.SPLIT).write_text("{broken")
    recs = runner.run_records(study, tmp_path)
    assert [r["name"] for r in recs] == ["teacher-seed0", "no_noise-seed1"]  # in the study's order; others unrun
    t, r = recs
    assert "labeled" not in t and t["seed"] == 0 and t["variant"] is None and t["doubling_test"] is False
    assert r["labeled"] == {"n": 3, "sha256": hashlib.sha256(b"[5, 1, 9]").hexdigest()[:16]}
    assert (r["seed"], r["variant"], r["threads"]) == (1, "no_noise", 2)
    assert r["iterations"] == [
        {"iteration": 0, "val_top1": 60.0, "steps": 8, "final_quarter_gain": None, "quarter_epoch": None,
         "train_seconds": 2.0},
        {"iteration": 1, "val_top1": 61.5, "steps": 10, "final_quarter_gain": 0.25, "quarter_epoch": 6,
         "train_seconds": 3.0}]
    assert runner._final_quarter(recs) == {"no_noise-seed1-iter1": 0.25}
    assert runner._final_quarter([{**r, "doubling_test": True}]) == {}


def test_run_records_mark_the_doubling_runs(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"recipe": "default", "seeds": [0], "suite": "study", "iterations": 1,
                                    "variants": {"noisy_student": {"overrides": []}},
                                    "tables": [{"rows": ["noisy_student"]}]}))
    study = load_study(path, check_convergence=True)
    for p in study.doubled:
        fake_run(tmp_path, p, iterations=[0])
    recs = runner.run_records(study, tmp_path)
    assert [(r["name"], r["doubling_test"]) for r in recs] == [(p.name, True) for p in study.doubled]


def test_run_study_records_what_it_did(study, tmp_path, monkeypatch):
    results = [{"name": "teacher-seed0", "trained": ["teacher-seed0"], "evaluated": ["teacher-seed0-iter0"],
                "timings_s": {"train teacher-seed0": 1.0}, "threads": 1, "device": "cpu", "cores": [0],
                "seconds": 2.5, "slot": 0},
               {"name": "no_noise-seed0", "trained": [], "evaluated": ["no_noise-seed0-iter1"],
                "timings_s": {"eval no_noise-seed0-iter1": 0.5}}]
    monkeypatch.setattr(runner, "preflight", lambda study, out: None)
    monkeypatch.setattr(runner, "_run_all", lambda *a: results)
    monkeypatch.setattr(runner, "_report", lambda study, out, done: (out / "report" / "index.html", [{"c": 1}]))
    monkeypatch.setattr(runner, "machine_cores", lambda: [0, 1, 2, 3], raising=False)
    monkeypatch.setattr("nsbench.study.jobs.machine_cores", lambda: [0, 1, 2, 3])
    done = runner.run_study(study, tmp_path / "out", device="cpu", jobs=2)
    assert done["trained"] == ["teacher-seed0"]
    assert done["evaluated"] == ["teacher-seed0-iter0", "no_noise-seed0-iter1"]
    assert done["timings_s"] == {"train teacher-seed0": 1.0, "eval no_noise-seed0-iter1": 0.5}
    assert (done["jobs"], done["threads_per_job"]) == (2, 2)  # 4 cores shared by 2 jobs
    assert done["slots"] == {"teacher-seed0": {"device": "cpu", "threads": 1, "cores": [0], "seconds": 2.5}}
    assert done["claims"] == [{"c": 1}] and done["report"].endswith("index.html")
    saved = read_json(tmp_path / "out" / "study.json")
    assert saved["last_invocation"]["trained"] == ["teacher-seed0"] and saved["name"] == "s"
    done = runner.run_study(study, tmp_path / "out", device="cpu", jobs=1, threads=3)
    assert (done["jobs"], done["threads_per_job"]) == (1, 3)


def test_one_slot_runs_every_job_here_in_order_and_pins_threads_only_when_asked(study, tmp_path, monkeypatch):
    import torch

    seen = []
    monkeypatch.setattr(runner, "run_job", lambda p, study, out, device, workers, child:
                        seen.append((p.name, p.cfg.runtime.threads, child)) or {"name": p.name})
    monkeypatch.setattr(torch, "set_num_threads", lambda n: seen.append(("threads", n)))
    slot = runner.Slot(0, "cpu", (0, 1), 2)
    plans = study.runs[:2]
    assert runner._run_all(study, tmp_path, plans, [slot], None, "cpu", None) == [{"name": p.name} for p in plans]
    assert seen == [(p.name, p.cfg.runtime.threads, False) for p in plans]
    seen.clear()
    runner._run_all(study, tmp_path, plans, [slot], 2, "cpu", None)
    assert seen == [("threads", 2)] + [(p.name, 2, False) for p in plans]


def test_several_slots_skip_the_complete_runs_and_hand_the_rest_to_the_scheduler(study, tmp_path, monkeypatch,
                                                                                  caplog):
    got = {}
    monkeypatch.setattr(runner, "_complete", lambda study, p, out: p.name.endswith("seed0"))
    monkeypatch.setattr(runner, "run_parallel", lambda todo, slots_, work, args:
                        got.update(todo=[j.plan.name for j in todo], work=work, args=args) or [])
    slots_ = [runner.Slot(i, "cpu", (i,), 1) for i in range(2)]
    with caplog.at_level(logging.INFO, logger="nsbench"):
        assert runner._run_all(study, tmp_path, study.runs, slots_, None, "cpu", 4) == []
    assert caplog.text.count("trained and evaluated already, skipping") == len(study.runs) // 2
    assert "teacher-seed0: trained and evaluated already" in caplog.text and "seed1: trained" not in caplog.text
    assert got["todo"] == [p.name for p in study.runs if p.name.endswith("seed1")]
    assert got["work"] is runner.run_job and got["args"] == (study, tmp_path, "cpu", 4, True)


def test_a_ladder_that_does_not_hold_is_refused_naming_the_variant(tmp_path, tiny_folder):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({
        "recipe": "default", "seeds": [0], "suite": "study", "iterations": 1,
        "overrides": [f"data.source=folder:{tiny_folder}", "teacher.arch=resnet50"],
        "variants": {"small": {"overrides": ["students=[{arch: resnet18}]"]}}, "tables": [{"rows": ["small"]}]}))
    study = load_study(path)
    with pytest.raises(NsbenchError, match=rf"^{path}: variant small \(small-seed0\): "):
        runner.preflight(study, tmp_path / "out")


class Clock:
    """runner's `time` module with time() reading the given instants in turn."""

    def __init__(self, *instants):
        self.instants = iter(instants)

    def time(self):
        return next(self.instants)


def test_a_jobs_timings_are_its_seconds_to_a_tenth(study, tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "_train", lambda plan, out: True)
    monkeypatch.setattr(runner, "_evaluate", lambda *a: True)
    monkeypatch.setattr(runner, "time", Clock(100.0, 101.26, 102.0, 102.57, 103.0, 104.04))
    res = runner.run_job(plan_of(study, "no_noise-seed0"), study, tmp_path, "cpu", None, child=False)
    assert res["timings_s"] == {"train no_noise-seed0": 1.3, "eval no_noise-seed0-iter1": 0.6,
                                "eval no_noise-seed0-iter2": 1.0}


@pytest.fixture
def quiet_study(monkeypatch):
    """run_study with preflight, the jobs and the report replaced: (recorded report calls)."""
    monkeypatch.setattr(runner, "preflight", lambda study, out: None)
    monkeypatch.setattr(runner, "_run_all", lambda *a: [])
    monkeypatch.setattr(runner, "_report", lambda study, out, done: (None, []))
    monkeypatch.setattr("nsbench.study.jobs.machine_cores", lambda: [0, 1, 2, 3])
    monkeypatch.setattr(runner.distributed, "init_from_env", lambda device: False)
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)


def test_run_study_times_itself_and_logs_to_the_study_log_on_rank_0_only(study, tmp_path, monkeypatch, quiet_study):
    monkeypatch.setattr(logging.getLogger("nsbench"), "level", logging.INFO)  # whatever an earlier test left
    monkeypatch.setattr(runner, "time", Clock(100.0, 112.34))
    done = runner.run_study(study, tmp_path / "a", device="cpu", jobs=2)
    assert done["wall_s"] == 12.3 and done["report"] is None and done["jobs"] == 2
    assert "study s (" in (tmp_path / "a" / "study.log").read_text()
    # under torchrun (WORLD_SIZE > 1) the ranks share each run: one job; a rank other than 0 writes no log
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setattr(runner, "time", Clock(0.0, 1.0))
    done = runner.run_study(study, tmp_path / "b", device="cpu", jobs=2)
    assert done["jobs"] == 1 and not (tmp_path / "b" / "study.log").exists()


def test_training_a_run_places_the_shared_teacher_first_and_resumes_a_started_one(study, tmp_path, monkeypatch,
                                                                                   caplog):
    import nsbench.training.driver as driver

    trained = []

    def train(cfg, run, resume):  # while it trains, the run folder is locked as nsbench study's
        lock = json.loads((Path(run) / ".nsbench.lock").read_text())
        assert lock["what"] == "nsbench study (train)" and lock["pid"] == os.getpid()
        trained.append((Path(run).name, resume, runs.checkpoint(run, 0).exists()))

    monkeypatch.setattr(driver, "train", train)
    teacher = fake_run(tmp_path, plan_of(study, "teacher-seed0"), iterations=[0])
    p = plan_of(study, "no_noise-seed0")
    assert runner._train(p, tmp_path) is True
    assert trained == [("no_noise-seed0", False, True)]  # a fresh run, its iter0.pt placed before training
    run = tmp_path / "runs" / p.name
    assert os.path.samefile(runs.checkpoint(run, 0), runs.checkpoint(teacher, 0))
    assert (run / runs.LOG).exists()  # the run's own log
    (run / runs.CONFIG).write_text(yaml.safe_dump(p.cfg.to_dict()))  # started: config.yaml written
    runs.checkpoint(run, 0).unlink()
    trained.clear()
    assert runner._train(p, tmp_path) is True
    assert trained == [("no_noise-seed0", True, True)]  # resumed; the teacher placed again where it was missing
    trained.clear()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="nsbench"):
        assert runner._train(p, tmp_path) is True  # resumed with iter0.pt in place: not placed again
    assert trained == [("no_noise-seed0", True, True)] and "resuming" in caplog.text
    assert "starts from the shared teacher" not in caplog.text
    fake_run(tmp_path, p)  # finished
    trained.clear()
    assert runner._train(p, tmp_path) is False and trained == []
    own = plan_of(study, "bigger-seed0")  # trains its own teacher: nothing placed
    assert runner._train(own, tmp_path) is True and trained == [("bigger-seed0", False, False)]


def test_training_refuses_a_finished_run_of_another_config(study, tmp_path, monkeypatch):
    import nsbench.training.driver as driver

    monkeypatch.setattr(driver, "train", lambda *a, **k: pytest.fail("trained"))
    p = plan_of(study, "bigger-seed0")
    cfg = p.cfg.to_dict()
    fake_run(tmp_path, p, config={**cfg, "seed": 9})
    with pytest.raises(NsbenchError, match=r"holds a run whose config differs from the study's bigger-seed0 \(seed: 9"):
        runner._train(p, tmp_path)


def test_scoring_a_checkpoint_once_per_hash_and_suite_into_the_studys_eval_folder(study, tmp_path, monkeypatch):
    import nsbench.api as api

    calls = []
    monkeypatch.setattr(api, "evaluate", lambda ckpt, suite, out, info, settings: calls.append(
        (ckpt, suite, out, info.label, settings.device, settings.workers, settings.cache_dir, settings.overwrite)))
    run = fake_run(tmp_path, plan_of(study, "bigger-seed0"), sha="h")
    assert runner._evaluate(study, run, 1, "bigger-seed0-iter1", tmp_path, "cpu", 2) is True
    assert calls == [(str(run / "iter1.pt"), study.suite, tmp_path / "eval", "bigger-seed0-iter1", "cpu", 2,
                      tmp_path / "eval" / "cache", True)]
    fake_eval(tmp_path, "bigger-seed0-iter1", "h1", runner._suite_record(study))
    assert runner._evaluate(study, run, 1, "bigger-seed0-iter1", tmp_path, "cpu", 2) is False and len(calls) == 1
    fake_eval(tmp_path, "bigger-seed0-iter2", "h1", runner._suite_record(study))  # iteration 1's hash: rescored
    assert runner._evaluate(study, run, 2, "bigger-seed0-iter2", tmp_path, "cpu", 2) is True


def test_the_report_covers_the_scored_checkpoints_against_the_first_teacher(study, tmp_path, monkeypatch):
    import nsbench.report.render as render

    got = {}

    def fake(folders, out, baseline, study, title):
        got.update(folders=[f.name for f in folders], out=out, baseline=baseline, study=study, title=title)
        (out).mkdir(parents=True, exist_ok=True)
        (out / "claims.json").write_text(json.dumps([{"claim": "x"}]))
        return out / "index.html"

    monkeypatch.setattr(render, "render_report", fake)
    for label in ("teacher-seed0-iter0", "no_noise-seed1-iter2"):
        fake_eval(tmp_path, label, "s", {})
    (tmp_path / "eval" / "bigger-seed0-iter1").mkdir()  # no meta.json: not scored
    done = {"convergence": {"status": "not tested", "scale": "full"},
            "runs": [{"name": "no_noise-seed1", "doubling_test": False,
                      "iterations": [{"iteration": 2, "final_quarter_gain": 0.5}]}]}
    html, claims = runner._report(study, tmp_path, done)
    assert html == tmp_path / "report" / "index.html" and claims == [{"claim": "x"}]
    assert got["folders"] == ["teacher-seed0-iter0", "no_noise-seed1-iter2"] and got["out"] == tmp_path / "report"
    assert got["baseline"] == "teacher-seed0-iter0"
    assert got["study"]["final_quarter"] == {"no_noise-seed1-iter2": 0.5}
    assert got["study"]["convergence"]["line"].startswith("convergence not tested at scale full")
    assert got["title"] == "nsbench study s: s.yaml"
