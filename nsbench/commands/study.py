"""`nsbench study`: a study's variants x seeds trained, every checkpoint scored with one suite, one report."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..utils import NsbenchError

EXAMPLES = """examples:
  nsbench study paper_ablations                       # the central claims, long-trained students, 3 seeds
  nsbench study paper_ablations_extended              # the rest of the paper's ablations at the same scale
  nsbench study paper_ablations --scale quick         # a quick look (not converged: every claim is flagged)
  nsbench study paper_ablations --seeds 0 data.source=folder:/data/mine  # one seed (per-image tests), your data
  nsbench study my_study.yaml --out runs/mine         # your own study; rerun the same command to resume
  nsbench study paper_ablations --check-convergence   # + the doubling test: does the scale train to convergence?
  nsbench study paper_ablations --jobs 1 --threads 2  # one run at a time (results equal --jobs 2 --threads 2)
  torchrun --nproc_per_node=4 -m nsbench study paper_ablations
"""


def add_parser(sub) -> None:
    p = sub.add_parser("study", help="a study: variants x seeds, trained, scored and reported as the paper's claims",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("study", help="study name (see `nsbench ls`) or YAML path")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="dotted recipe overrides applied to every variant (under each variant's own)")
    p.add_argument("--out", help="study folder (default: runs/STUDY, runs/STUDY-SCALE for a scale other than the "
                                 "first)")
    p.add_argument("--scale", help="a size the study names (the first is the default; `full`: the recipe's own size)")
    p.add_argument("--seeds", help="comma-separated seeds instead of the study's, e.g. 0,1,2")
    p.add_argument("--device", help="cpu, cuda, cuda:1 or auto (runtime.device, and the evaluation's)")
    p.add_argument("--workers", type=int, help="evaluation loader processes (default: by the machine's cores)")
    p.add_argument("--jobs", type=int, help="runs trained and scored at once, each in its own process pinned to a "
                                            "core group or a GPU (default: one per GPU, else one per core, at most 8; "
                                            "1 under torchrun)")
    p.add_argument("--threads", type=int, help="torch threads per job (default: the job's share of the cores); "
                                               "recorded as runtime.threads in each run's config.yaml")
    p.add_argument("--check-convergence", action="store_true",
                   help="also run the doubling test: the teacher and the reference variant's student retrained at "
                        "twice the scale's budgets, per seed, compared in the report")
    p.set_defaults(handler=run, overrides_dest="overrides")


def _seeds(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise NsbenchError(f"--seeds {text!r}: expected comma-separated integers, e.g. 0,1,2") from None


def run(args) -> int:
    from .. import distributed
    from ..resources import resolve
    from ..study import load_study, run_study
    from ..utils import check_name, setup_logging

    setup_logging()
    if args.workers is not None and args.workers < 0:
        raise NsbenchError(f"--workers must be >= 0, got {args.workers}")
    path = resolve("study", args.study)
    study = load_study(path, scale=args.scale, seeds=_seeds(args.seeds), overrides=args.overrides, device=args.device,
                       check_convergence=args.check_convergence)
    first = next(iter(study.spec.scales), "full")
    if not args.out:  # the default folder is made of names, never of paths
        check_name(study.name, f"{args.study}: name")
    out = Path(args.out or (f"runs/{study.name}" if study.scale == first else f"runs/{study.name}-{study.scale}"))
    if out.exists() and not out.is_dir():
        raise NsbenchError(f"--out {out}: exists and is not a folder")
    done = run_study(study, out, device=args.device or "auto", workers=args.workers, jobs=args.jobs,
                     threads=args.threads)
    if distributed.is_main():
        import logging

        log = logging.getLogger("nsbench")
        log.info("trained %d run(s), evaluated %d checkpoint(s) in %.0f s", len(done["trained"]), len(done["evaluated"]),
                 done["wall_s"])
        for c in done["claims"]:
            log.info("%s: %s", c["verdict"], c["claim"])
        from ..study.convergence import describe

        log.info("%s", describe(done["convergence"]))
        print(done["report"])
    return 0
