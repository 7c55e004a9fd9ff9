"""A study's jobs (study/jobs.py), in process: the slots (disjoint core groups of the machine's cores, one thread per
core of the group by default; GPUs round-robin), --jobs by the machine, a job's cost and its pinning, and the
scheduler's order (a teacher's job before the runs that start from it, longer jobs first, at most one per slot, no
new job after a failure), as jobs.py's docstrings state. The scheduler runs here with a context whose processes
run their job at start() in this process (the real one spawns; tests/study/test_study.py runs a parallel study)."""
from __future__ import annotations

import dataclasses
import queue

import pytest

from nsbench.config import TrainConfig
from nsbench.study import jobs
from nsbench.study.spec import RunPlan
from nsbench.utils import NsbenchError


@pytest.fixture
def cpu(monkeypatch):
    """A CPU machine with the given cores (8 by default)."""
    monkeypatch.setattr(jobs, "_uses_cuda", lambda device: False)

    def cores(n=8):
        monkeypatch.setattr(jobs, "machine_cores", lambda: list(range(n)))
    cores()
    return cores


def test_slots_split_the_cores_into_disjoint_groups_with_a_thread_per_core(cpu):
    s = jobs.slots(3, "cpu", None)  # 8 // 3 = 2 cores each; the last two cores are left out
    assert [(x.index, x.device, x.cores, x.threads) for x in s] == [(0, "cpu", (0, 1), 2), (1, "cpu", (2, 3), 2),
                                                                    (2, "cpu", (4, 5), 2)]
    assert [x.threads for x in jobs.slots(2, "cpu", 1)] == [1, 1]  # --threads: the same for every job
    assert [x.cores for x in jobs.slots(1, "cpu", None)] == [tuple(range(8))]


def test_more_jobs_than_cores_share_every_core_one_thread_each(cpu):
    cpu(2)
    s = jobs.slots(3, "cpu", None)
    assert [(x.cores, x.threads) for x in s] == [((0, 1), 1)] * 3
    assert [x.cores for x in jobs.slots(2, "cpu", None)] == [(0,), (1,)]  # as many jobs as cores: one core each


def test_gpus_are_dealt_round_robin_unless_the_study_names_one(monkeypatch):
    monkeypatch.setattr(jobs, "_uses_cuda", lambda device: True)
    monkeypatch.setattr(jobs, "machine_cores", lambda: list(range(4)))
    monkeypatch.setattr("torch.cuda.device_count", lambda: 2)
    assert [x.device for x in jobs.slots(3, "cuda", None)] == ["cuda:0", "cuda:1", "cuda:0"]
    assert [x.device for x in jobs.slots(3, "auto", None)] == ["cuda:0", "cuda:1", "cuda:0"]
    assert [x.device for x in jobs.slots(2, "cuda:1", None)] == ["cuda:1", "cuda:1"]


@pytest.mark.parametrize("n, threads, message", [(0, None, "--jobs must be >= 1, got 0"),
                                                 (1, 0, "--threads must be >= 1, got 0")])
def test_no_jobs_or_threads_is_refused(cpu, n, threads, message):
    with pytest.raises(NsbenchError, match=message):
        jobs.slots(n, "cpu", threads)


def test_jobs_by_the_machine_one_per_core_at_most_8_or_one_per_gpu(cpu, monkeypatch):
    cpu(16)
    assert jobs.auto_jobs("cpu") == 8
    cpu(3)
    assert jobs.auto_jobs("cpu") == 3
    cpu(1)
    assert jobs.auto_jobs("cpu") == 1
    monkeypatch.setattr(jobs, "_uses_cuda", lambda device: True)
    monkeypatch.setattr("torch.cuda.device_count", lambda: 4)
    assert jobs.auto_jobs("cuda") == 4
    monkeypatch.setattr("torch.cuda.device_count", lambda: 0)
    assert jobs.auto_jobs("cuda") == 1


def test_a_device_uses_cuda_when_named_or_when_auto_finds_a_gpu(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    assert jobs._uses_cuda("auto") and jobs._uses_cuda("cuda:1") and not jobs._uses_cuda("cpu")
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert not jobs._uses_cuda("auto") and jobs._uses_cuda("cuda")


def plan(name: str, variant: str | None = None, teacher: str | None = None, epochs: int = 4,
         iterations: int = 3) -> RunPlan:
    cfg = TrainConfig()
    cfg = dataclasses.replace(cfg, teacher_optim=dataclasses.replace(cfg.teacher_optim, epochs=epochs),
                              student_optim=dataclasses.replace(cfg.student_optim, epochs=epochs),
                              ns=dataclasses.replace(cfg.ns, iterations=iterations))
    return RunPlan(name, variant, 0, cfg, teacher)


def test_a_jobs_cost_is_its_epochs_and_it_waits_for_its_teacher():
    t = jobs.job(plan("teacher-seed0", epochs=5))
    assert (t.after, t.cost) == (None, 5.0)  # a teacher: its epochs
    s = jobs.job(plan("no_noise-seed0", "no_noise", "teacher-seed0", epochs=5, iterations=3))
    assert (s.after, s.cost) == ("teacher-seed0", 15.0)  # a student: epochs x iterations
    assert jobs.job(plan("x-seed0", "x", None, epochs=5, iterations=0)).cost == 5.0  # at least one iteration


def test_a_pinned_plan_takes_its_slots_threads_and_gpu_and_keeps_its_device_on_a_cpu():
    p = plan("a")
    gpu = jobs.pinned(p, jobs.Slot(1, "cuda:1", (0, 1), 3)).cfg.runtime
    assert (gpu.threads, gpu.device) == (3, "cuda:1")
    cpu = jobs.pinned(p, jobs.Slot(0, "cpu", (0,), 1)).cfg.runtime
    assert (cpu.threads, cpu.device) == (1, p.cfg.runtime.device)
    assert p.cfg.runtime.threads != 3  # the plan itself is left as it was


class InlineContext:
    """multiprocessing's context for run_parallel, with each process running its job at start(), in this process,
    and putting its result (or failure) on the queue as _child does. A process is alive until joined, except one in
    `quick` (it exits as soon as it has reported, before the parent reads the report) and one in `silent` (it exits
    with status 3 without a report). start() fails the test if its slot still holds an unjoined job or if its run's
    teacher (one of the jobs) has not finished. `log` records (name, slot index, daemon)."""

    def __init__(self, names=(), fail=(), silent=(), quick=()):
        self.log, self.names, self.joined, self.busy = [], set(names), set(), set()
        ctx = self

        class Process:
            def __init__(self, target, args, name, daemon):
                assert target is jobs._child
                self.work, self.plan, self.args, self.slot, _, self.results = args
                self.name, self.daemon, self.dead, self.done, self.code = name, daemon, False, False, 0

            def start(self):
                assert self.slot.index not in ctx.busy, f"{self.name} started on busy slot {self.slot.index}"
                t = self.plan.teacher
                assert t is None or t not in ctx.names or t in ctx.joined, f"{self.name} started before {t} finished"
                ctx.busy.add(self.slot.index)
                ctx.log.append((self.name, self.slot.index, self.daemon))
                if self.name in silent:
                    self.dead, self.code = True, 3
                    return
                if self.name in fail:
                    self.results.put({"slot": self.slot.index, "name": self.name, "error": "boom"})
                    self.code = 1
                else:
                    self.results.put({"slot": self.slot.index, "name": self.name,
                                      "result": {**self.work(self.plan, *self.args), "slot": self.slot.index}})
                self.dead = self.name in quick

            @property
            def exitcode(self):
                return self.code if self.dead or self.done else None

            def is_alive(self):
                return not (self.dead or self.done)

            def join(self):
                self.done = True
                ctx.joined.add(self.name)
                ctx.busy.discard(self.slot.index)

            def terminate(self):
                pass

        self.Process = Process

    def Queue(self):
        return queue.Queue()


def work(plan, tag):
    return {"name": plan.name, "tag": tag, "threads": plan.cfg.runtime.threads}


def run(monkeypatch, plans, n_slots=1, args=("t",), **kw):
    ctx = InlineContext(names=[p.name for p in plans], **kw)
    monkeypatch.setattr(jobs.mp, "get_context", lambda method: ctx)
    slots_ = [jobs.Slot(i, "cpu", (i,), 1) for i in range(n_slots)]
    try:
        return jobs.run_parallel([jobs.job(p) for p in plans], slots_, work, args), ctx.log
    finally:
        run.ctx = ctx


def test_teachers_run_first_longest_first_and_every_result_comes_back(monkeypatch):
    plans = [plan("short-seed0", "short", "teacher-seed0", epochs=1), plan("teacher-seed0", epochs=2),
             plan("long-seed0", "long", "teacher-seed0", epochs=5), plan("teacher-seed1", epochs=3)]
    out, log = run(monkeypatch, plans)
    assert [e[0] for e in log] == ["teacher-seed1", "teacher-seed0", "long-seed0", "short-seed0"]
    assert [r["name"] for r in out] == [e[0] for e in log]
    assert all(r["tag"] == "t" and r["threads"] == 1 for r in out)  # work(plan, *args), the plan pinned
    # not daemonic: a job's process starts its own (DataLoader workers), which a daemonic process may not
    assert not any(e[2] for e in log) and run.ctx.joined == {p.name for p in plans}


def test_every_teacher_starts_before_any_student_even_one_that_is_ready(monkeypatch):
    """teacher-seed0 finishes first; its student is then ready, but teacher-seed1 (a shorter job) starts before it:
    the teachers free the most work."""
    plans = [plan("teacher-seed0", epochs=3), plan("teacher-seed1", epochs=2),
             plan("big-seed0", "big", "teacher-seed0", epochs=10)]
    _, log = run(monkeypatch, plans)
    assert [e[0] for e in log] == ["teacher-seed0", "teacher-seed1", "big-seed0"]


def test_a_run_waits_for_its_teacher_even_with_a_slot_free(monkeypatch):
    plans = [plan("teacher-seed0", epochs=1), plan("big-seed0", "big", "teacher-seed0", epochs=50),
             plan("solo-seed0", "solo", None, epochs=2)]  # a variant that trains its own teacher: no wait
    _, log = run(monkeypatch, plans, n_slots=3)  # start() fails if big starts before its teacher is done
    assert [e[0] for e in log] == ["solo-seed0", "teacher-seed0", "big-seed0"]
    # a job whose teacher is not among the jobs (trained earlier) does not wait
    _, log = run(monkeypatch, [plan("late-seed0", "late", "teacher-seed0")])
    assert [e[0] for e in log] == ["late-seed0"]


def test_at_most_one_job_per_slot_at_a_time(monkeypatch):
    plans = [plan(f"teacher-seed{i}", epochs=10 - i) for i in range(5)]
    _, log = run(monkeypatch, plans, n_slots=2)  # start() fails on a slot whose job is not yet joined
    assert [e[0] for e in log] == [f"teacher-seed{i}" for i in range(5)]


def test_a_report_that_arrives_after_its_process_exited_still_counts(monkeypatch):
    out, log = run(monkeypatch, [plan("teacher-seed0", epochs=2), plan("teacher-seed1", epochs=1)], n_slots=2,
                   quick={"teacher-seed0", "teacher-seed1"})
    assert sorted(r["name"] for r in out) == ["teacher-seed0", "teacher-seed1"]


def test_runs_waiting_on_each_other_are_refused_by_name(monkeypatch):
    with pytest.raises(NsbenchError, match="^jobs waiting on runs that never finish: a-seed0, b-seed0$"):
        run(monkeypatch, [plan("a-seed0", "a", "b-seed0"), plan("b-seed0", "b", "a-seed0")])


def test_a_failed_job_starts_no_new_ones_and_fails_the_study_naming_it(monkeypatch):
    plans = [plan("teacher-seed0", epochs=3), plan("teacher-seed1", epochs=2), plan("teacher-seed2", epochs=1)]
    with pytest.raises(NsbenchError, match="^study run teacher-seed0 failed: boom$"):
        run(monkeypatch, plans, fail={"teacher-seed0"})
    assert [e[0] for e in run.ctx.log] == ["teacher-seed0"]


def test_two_failures_are_counted_and_a_silent_exit_is_named_with_its_status(monkeypatch):
    plans = [plan("teacher-seed0", epochs=3), plan("teacher-seed1", epochs=2)]
    with pytest.raises(NsbenchError, match=r"^study run teacher-seed0 failed: boom \(and 1 more\)$"):
        run(monkeypatch, plans, n_slots=2, fail={"teacher-seed0", "teacher-seed1"})
    with pytest.raises(NsbenchError, match="^study run teacher-seed0 failed: its process exited with status 3$"):
        run(monkeypatch, [plan("teacher-seed0")], silent={"teacher-seed0"})


def test_a_slot_is_a_fixed_place():
    s = jobs.Slot(0, "cpu", (0, 1), 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.threads = 4
    assert {s: 1}[jobs.Slot(0, "cpu", (0, 1), 2)] == 1  # frozen: hashable by value


def test_the_machines_cores_are_its_affinity_else_its_count(monkeypatch):
    monkeypatch.setattr(jobs.os, "sched_getaffinity", lambda pid: {5, 1, 3} if pid == 0 else set(), raising=False)
    assert jobs.machine_cores() == [1, 3, 5]
    monkeypatch.delattr(jobs.os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(jobs.os, "cpu_count", lambda: 4)
    assert jobs.machine_cores() == [0, 1, 2, 3]
    monkeypatch.setattr(jobs.os, "cpu_count", lambda: None)
    assert jobs.machine_cores() == [0]


class Pins:
    """What a job's process did to itself: the cores it pinned to (pid 0: itself), its threads."""

    def __init__(self, monkeypatch):
        import torch

        self.cores, self.threads = [], []
        monkeypatch.setattr(jobs.os, "sched_setaffinity", lambda pid, cores: self.cores.append((pid, tuple(cores))),
                            raising=False)
        monkeypatch.setattr(torch, "set_num_threads", self.threads.append)
        monkeypatch.setenv("OMP_NUM_THREADS", "1")  # restored after the test


@pytest.fixture
def child(monkeypatch):
    """jobs._child run in this process: returns (exit code, the one message it put on the queue, Pins)."""
    import logging

    pins = Pins(monkeypatch)
    root = logging.getLogger("nsbench")
    handlers, level = list(root.handlers), root.level

    def call(fn, slot):
        q = queue.Queue()
        code = 0
        try:
            jobs._child(fn, plan("teacher-seed0"), ("t",), slot, logging.WARNING, q)
        except SystemExit as e:
            code = e.code
        finally:
            root.handlers[:], root.level = handlers, level
        return code, q.get_nowait(), pins
    return call


def test_a_jobs_process_pins_itself_reports_its_result_and_where_it_ran(child):
    code, msg, pins = child(lambda p, tag: {"name": p.name, "tag": tag}, jobs.Slot(1, "cpu", (2, 3), 2))
    assert code == 0 and pins.cores == [(0, (2, 3))] and pins.threads == [2]
    import os

    assert os.environ["OMP_NUM_THREADS"] == "2"
    r = msg["result"]
    assert (msg["slot"], msg["name"]) == (1, "teacher-seed0")
    assert (r["name"], r["tag"], r["slot"], r["device"], r["threads"], r["cores"]) == \
        ("teacher-seed0", "t", 1, "cpu", 2, [2, 3])
    assert 0 <= r["seconds"] < 5
    _, _, pins = child(lambda p, tag: {}, jobs.Slot(0, "cuda:0", (0, 1), 1))
    assert pins.cores == [(0, (2, 3))]  # a GPU job is not pinned to cores


def test_a_slow_job_reports_its_seconds(child, monkeypatch):
    clock = iter([100.0, 107.26])
    monkeypatch.setattr(jobs.time, "time", lambda: next(clock))
    _, msg, _ = child(lambda p, tag: {}, jobs.Slot(0, "cpu", (0,), 1))
    assert msg["result"]["seconds"] == 7.3


def test_a_jobs_failure_is_reported_with_its_kind_and_exit_status(child):
    def refused(p, tag):
        raise NsbenchError("no data")

    def crashed(p, tag):
        raise ValueError("bad")

    code, msg, _ = child(refused, jobs.Slot(0, "cpu", (0,), 1))
    assert (code, msg) == (1, {"slot": 0, "name": "teacher-seed0", "error": "no data"})
    code, msg, _ = child(crashed, jobs.Slot(0, "cpu", (0,), 1))
    assert (code, msg["error"]) == (1, "ValueError: bad (traceback above)")


def test_ctrl_c_in_a_job_exits_130_without_a_report(monkeypatch):
    import logging

    def interrupted(p):
        raise KeyboardInterrupt

    Pins(monkeypatch)
    root = logging.getLogger("nsbench")
    handlers = list(root.handlers)
    q = queue.Queue()
    try:
        with pytest.raises(SystemExit) as e:
            jobs._child(interrupted, plan("a"), (), jobs.Slot(0, "cpu", (0,), 1), logging.WARNING, q)
    finally:
        root.handlers[:] = handlers
    assert e.value.code == 130 and q.empty()
