"""`nsbench train`: run Noisy Student iterations from a recipe, or resume a run folder."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..utils import NsbenchError

EXAMPLES = """examples:
  nsbench train --iterations 3
  nsbench train --recipe default --out runs/fmnist teacher_optim.epochs=10 pseudo.soft=false
  nsbench train --recipe imagenet_b0 --out runs/in1k data.source=imagenet:/data/imagenet \\
      data.unlabeled=folder:/data/unlabeled
  torchrun --nproc_per_node=8 -m nsbench train --recipe imagenet_b0 --out runs/in1k
  nsbench train --resume runs/fmnist                  # continue after a crash or kill
"""


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a teacher and noised students", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides, e.g. ns.iterations=3")
    p.add_argument("--recipe", default="default", help="recipe name (see `nsbench ls`) or YAML path")
    p.add_argument("--iterations", type=int, help="Noisy Student iterations after the teacher (ns.iterations)")
    p.add_argument("--out", help="run folder (default: runs/RECIPE)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last finished epoch")
    p.add_argument("--device", help="cpu, cuda, cuda:1 or auto (runtime.device)")
    p.add_argument("--seed", type=int, help="seed for the split, initialisation and noise")
    p.set_defaults(handler=run, overrides_dest="overrides")


def run(args) -> int:
    from .. import distributed as D
    from ..config import load_train_config
    from ..resources import resolve
    from ..training.driver import resume_config, train
    from ..utils import clean_stale_temps, setup_logging

    if args.resume:
        if args.overrides or args.seed is not None or args.out:
            raise NsbenchError("--resume takes the run's own config; only --iterations and --device may change")
        out = Path(args.resume)
        cfg = resume_config(out, args.iterations)
        if args.device:
            cfg.runtime.device = args.device
    else:
        recipe = resolve("recipe", args.recipe)
        extra = list(args.overrides)
        if args.iterations is not None:
            extra.append(f"ns.iterations={args.iterations}")
        if args.device:
            extra.append(f"runtime.device={args.device}")
        if args.seed is not None:
            extra.append(f"seed={args.seed}")
        cfg = load_train_config(recipe, extra)
        out = Path(args.out or f"runs/{recipe.stem}")
        if out.exists() and not out.is_dir():
            raise NsbenchError(f"--out {out}: exists and is not a folder")
        if (out / "config.yaml").exists():
            raise NsbenchError(f"{out}: already holds a run; use --resume {out} or choose another --out")
    if cfg.ns.iterations < 0:
        raise NsbenchError(f"iterations must be >= 0, got {cfg.ns.iterations}")
    with _run_folder_lock(out, "resume" if args.resume else "train"):
        setup_logging(out / "train.log" if D.env_rank() == 0 else None)
        if D.env_rank() == 0:
            for p in clean_stale_temps(out):
                logging.getLogger("nsbench").info("removed %s, left by a killed run", p)
        summary = train(cfg, out, resume=bool(args.resume))
    if D.is_main():
        log = logging.getLogger("nsbench")
        for e in sorted(summary["iterations"], key=lambda e: e["iteration"]):
            log.info("iter%d %-20s val top-1 %6.2f%%  %s", e["iteration"], e["arch"], e["val_top1"], out / e["checkpoint"])
        for w in summary.get("warnings", []):  # repeated at the end so that they are not lost in the log
            log.warning("%s", w)
    return 0


def _run_folder_lock(out: Path, verb: str):
    """Rank 0 holds the run folder's lock, so a second `nsbench train` into it is refused in one line; the other
    ranks of a torchrun job run under rank 0's lock."""
    import contextlib

    from .. import distributed as D
    from ..lock import run_lock

    if D.env_rank() != 0:
        return contextlib.nullcontext()
    return run_lock(out, what=f"nsbench train ({verb})")
