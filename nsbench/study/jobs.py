"""A study's runs in parallel: one job (train one run folder, then score its checkpoints) per slot, each slot a core
group (CPU) or a GPU, each job a fresh process pinned to its slot's cores and threads.

Why processes, not threads: torch's CPU kernels share one intra-op pool per process, and two multi-threaded torch
processes on the same cores slow each other many times over; pinned single-threaded processes share a machine
well (on 2 cores, a two-seed study of 8 short runs went 1.33x as fast as one run at a time with 2 threads;
benchmarks/study_parallel.py).

Results equal a serial study's run at the same threads per run: every run reseeds from its own seed at each
iteration and epoch (training/driver.py, stage.py), and a job's thread count is its run's `runtime.threads`, recorded
in its config.yaml. A job whose run needs a shared teacher waits for that teacher's job. A failed job stops new
ones from starting; the running ones finish (their work is kept), then the study fails naming the run and its log.
Ctrl-C stops every job; a rerun resumes each run from its last finished epoch.
"""
from __future__ import annotations

import dataclasses
import logging
import multiprocessing as mp
import os
import queue
import time
import traceback
from dataclasses import dataclass

from ..utils import NsbenchError

log = logging.getLogger("nsbench")

MAX_AUTO_JOBS = 8  # --jobs default on a CPU: one job per core, at most this many


@dataclass(frozen=True)
class Slot:
    """Where one job runs: a device and, on a CPU, the cores it is pinned to."""

    index: int
    device: str
    cores: tuple[int, ...]
    threads: int


def machine_cores() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


def auto_jobs(device: str) -> int:
    """--jobs by the machine: one per visible GPU when the study runs on CUDA, else one per core (at most 8)."""
    import torch

    if _uses_cuda(device):
        return max(1, torch.cuda.device_count())
    return max(1, min(MAX_AUTO_JOBS, len(machine_cores())))


def _uses_cuda(device: str) -> bool:
    import torch

    return device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())


def slots(jobs: int, device: str, threads: int | None) -> list[Slot]:
    """`jobs` slots: GPUs round-robin on CUDA (unless a device index was given), disjoint core groups on a CPU;
    `threads` per job, by default the slot's share of the cores."""
    import torch

    if jobs < 1:
        raise NsbenchError(f"--jobs must be >= 1, got {jobs}")
    if threads is not None and threads < 1:
        raise NsbenchError(f"--threads must be >= 1, got {threads}")
    cores = machine_cores()
    share = max(1, len(cores) // jobs)
    out = []
    for i in range(jobs):
        # more jobs than cores: every job may use every core, one thread each
        group = tuple(cores[i * share:(i + 1) * share]) if len(cores) >= jobs else tuple(cores)
        if _uses_cuda(device) and device in ("auto", "cuda"):
            dev = f"cuda:{i % max(1, torch.cuda.device_count())}"
        else:
            dev = device
        out.append(Slot(i, dev, group, threads or (len(group) if len(cores) >= jobs else 1)))
    return out


@dataclass
class Job:
    plan: object  # RunPlan
    after: str | None  # the run whose training must finish first (the shared teacher)
    cost: float  # for the order: longer jobs first, so the last job to finish is a short one


def job(plan) -> Job:
    cfg = plan.cfg
    cost = cfg.teacher_optim.epochs if plan.variant is None else cfg.student_optim.epochs * max(cfg.ns.iterations, 1)
    return Job(plan, plan.teacher, float(cost))


def pinned(plan, slot: Slot):
    """`plan` with its run's device and threads set to the slot's (runtime.*: recorded in config.yaml, never part of
    what a resumed run is compared on)."""
    rt = dataclasses.replace(plan.cfg.runtime, threads=slot.threads,
                             device=slot.device if slot.device.startswith("cuda:") else plan.cfg.runtime.device)
    return dataclasses.replace(plan, cfg=dataclasses.replace(plan.cfg, runtime=rt))


def run_parallel(jobs: list[Job], slots_: list[Slot], work, args: tuple) -> list[dict]:
    """Run `work(plan, *args)` for every job in its own process, at most one per slot, a job only after the job
    of its `after` run; return each job's result (a dict) in completion order."""
    ctx = mp.get_context("spawn")
    results: "mp.Queue" = ctx.Queue()
    pending = sorted(jobs, key=lambda j: (j.after is not None, -j.cost))
    names = {j.plan.name for j in jobs}
    done: set[str] = set()
    running: dict[int, tuple[Job, mp.Process]] = {}
    out, failed = [], []
    level = logging.getLogger("nsbench").getEffectiveLevel()
    try:
        while pending or running:
            for slot in slots_:
                if slot.index in running or failed:
                    continue
                ready = next((j for j in pending if j.after is None or j.after in done or j.after not in names), None)
                if ready is None:
                    break
                pending.remove(ready)
                plan = pinned(ready.plan, slot)
                p = ctx.Process(target=_child, args=(work, plan, args, slot, level, results), name=plan.name,
                                daemon=False)
                p.start()
                running[slot.index] = (ready, p)
                where = slot.device if slot.device.startswith("cuda") else f"cores {','.join(map(str, slot.cores))}"
                log.info("job %s: started on %s, %d thread(s)", plan.name, where, slot.threads)
            if not running:
                if pending:  # a dependency that never runs: not with a valid study (a failure empties pending)
                    raise NsbenchError(f"jobs waiting on runs that never finish: {', '.join(j.plan.name for j in pending)}")
                break
            try:
                msg = results.get(timeout=1.0)
            except queue.Empty:
                msg = None
            if msg is not None:
                _finish(msg, running, done, out, failed)
            for index, (j, p) in list(running.items()):
                if not p.is_alive() and p.exitcode is not None:
                    p.join()
                    # the child's own report may still be in the queue; wait for it briefly
                    while True:
                        try:
                            _finish(results.get(timeout=2.0), running, done, out, failed)
                        except queue.Empty:
                            break
                    if index in running and running[index][1] is p:
                        del running[index]
                        failed.append((j.plan.name, f"its process exited with status {p.exitcode}"))
            if failed and pending:
                log.error("job %s failed; starting no new jobs, waiting for %d running one(s) (Ctrl-C stops them; "
                          "a rerun resumes every run)", failed[0][0], len(running))
                pending.clear()
    except BaseException:
        for _, p in running.values():
            p.terminate()
        for _, p in running.values():
            p.join()
        raise
    if failed:
        name, why = failed[0]
        raise NsbenchError(f"study run {name} failed: {why}" + (f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""))
    return out


def _finish(msg: dict, running: dict, done: set, out: list, failed: list) -> None:
    index = msg["slot"]
    entry = running.pop(index, None)
    if entry is not None:
        entry[1].join()
    if msg.get("error"):
        failed.append((msg["name"], msg["error"]))
        log.error("job %s failed: %s", msg["name"], msg["error"])
        return
    done.add(msg["name"])
    out.append(msg["result"])
    log.info("job %s: finished in %.0f s", msg["name"], msg["result"].get("seconds", 0.0))


def _child(work, plan, args: tuple, slot: Slot, level: int, results) -> None:
    """One job's process: pin it to its cores and threads, log with its run's name, run, report."""
    if hasattr(os, "sched_setaffinity") and not slot.device.startswith("cuda"):
        os.sched_setaffinity(0, slot.cores)
    os.environ["OMP_NUM_THREADS"] = str(slot.threads)
    import torch

    torch.set_num_threads(slot.threads)
    root = logging.getLogger("nsbench")
    root.setLevel(level)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(f"[{plan.name}] %(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    root.addHandler(handler)
    t0 = time.time()
    try:
        result = work(plan, *args)
        results.put({"slot": slot.index, "name": plan.name,
                     "result": {**result, "seconds": round(time.time() - t0, 1), "slot": slot.index,
                                "device": slot.device, "threads": slot.threads, "cores": list(slot.cores)}})
    except KeyboardInterrupt:
        raise SystemExit(130)
    except NsbenchError as e:
        results.put({"slot": slot.index, "name": plan.name, "error": str(e)})
        raise SystemExit(1)
    except Exception as e:  # noqa: BLE001 - reported to the parent with its traceback in the run's log
        log.error("%s", traceback.format_exc())
        results.put({"slot": slot.index, "name": plan.name, "error": f"{type(e).__name__}: {e} (traceback above)"})
        raise SystemExit(1)
