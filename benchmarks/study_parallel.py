"""A study's throughput, one run at a time against runs in parallel, on this machine's cores.

The same small study (the default recipe on Fashion-MNIST at a few hundred steps a run; per seed one shared teacher
and STUDENTS one-iteration students; SEEDS seeds) is run twice into fresh folders, back to back:

    serial    --jobs 1, every run with all the cores' threads (what one `nsbench train` after another does)
    parallel  --jobs CORES, each run pinned to one core and one thread (the study's default on a CPU)

and the script prints each wall time (training + scoring + report) and the ratio serial / parallel: how much more
work the parallel study does per unit of time. Run it with nothing else running:

    .venv/bin/python benchmarks/study_parallel.py [--seeds 2] [--students 3] [--teacher-epochs 24] [--student-epochs 24]

Each job is a fresh process (importing torch and loading the data costs seconds), and a seed's students wait for
its teacher, so runs of a few seconds, or a single seed, understate what parallel jobs gain on a real study.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


def study_file(folder: Path, seeds: int, students: int, teacher_epochs: int, student_epochs: int) -> Path:
    variants = {"noisy_student": {"about": "the recipe", "overrides": []}}
    for i in range(1, students):
        variants[f"lr_{i}"] = {"about": f"student lr x{1 + i / 10:g}", "overrides": [f"student_optim.lr={0.004 * (1 + i / 10):g}"]}
    spec = {"name": "parallel_bench", "recipe": "default", "seeds": list(range(seeds)), "iterations": 1, "suite": "study",
            "suite_overrides": ["fgsm.limit=200"],
            "scales": {"bench": [f"teacher_optim.epochs={teacher_epochs}", "teacher_optim.warmup_epochs=1",
                                 f"teacher_optim.eval_every={teacher_epochs}", f"student_optim.epochs={student_epochs}",
                                 "student_optim.warmup_epochs=1", f"student_optim.eval_every={student_epochs}",
                                 "data.unlabeled_limit=8000", "data.val_limit=2000"]},
            "variants": variants,
            "tables": [{"title": "t", "rows": ["teacher", "noisy_student"],
                        "claims": [{"claim": "c", "better": "noisy_student", "than": "teacher"}]}]}
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def timed(args: list[str]) -> float:
    t = time.time()
    res = subprocess.run([sys.executable, "-m", "nsbench", *args], capture_output=True, text=True)
    if res.returncode:
        sys.exit(f"nsbench {' '.join(args)} failed:\n{res.stderr[-3000:]}")
    return time.time() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=2, help="seeds: each trains one teacher and its students")
    ap.add_argument("--students", type=int, default=3, help="one-iteration students per seed")
    ap.add_argument("--teacher-epochs", type=int, default=24)
    ap.add_argument("--student-epochs", type=int, default=24)
    a = ap.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = study_file(tmp, a.seeds, a.students, a.teacher_epochs, a.student_epochs)
        serial = timed(["study", str(path), "--out", str(tmp / "serial"), "--jobs", "1", "--threads", str(cores)])
        parallel = timed(["study", str(path), "--out", str(tmp / "parallel"), "--jobs", str(cores), "--threads", "1"])
        slots = json.loads((tmp / "parallel" / "study.json").read_text())["last_invocation"].get("slots", {})
    print(f"{a.seeds * (a.students + 1)} runs ({a.seeds} teachers, {a.seeds * a.students} students), {cores} cores")
    print(f"serial   --jobs 1 --threads {cores}: {serial:7.1f} s")
    print(f"parallel --jobs {cores} --threads 1: {parallel:7.1f} s  ({len(slots)} jobs)")
    print(f"throughput parallel / serial: {serial / parallel:.2f}x")


if __name__ == "__main__":
    main()
