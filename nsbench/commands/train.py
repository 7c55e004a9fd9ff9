"""`nsbench train`: run Noisy Student iterations from a recipe, or resume a run folder."""
from __future__ import annotations

import argparse
import json
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
  nsbench train --iterations 1 --json runtime.tensorboard=true   # curves in RUN/tensorboard; summary as JSON
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
    p.add_argument("--json", action="store_true", help="print the run's summary (summary.json) on stdout at the end")
    p.set_defaults(handler=run, overrides_dest="overrides")


def run(args) -> int:
    from .. import distributed
    from ..api import train
    from ..utils import setup_logging

    if args.resume and (args.overrides or args.seed is not None or args.out):
        raise NsbenchError("--resume takes the run's own config; only --iterations and --device may change")
    setup_logging()
    summary = train(args.recipe, args.resume or args.out, overrides=args.overrides, iterations=args.iterations,
                    device=args.device, seed=args.seed, resume=bool(args.resume))
    if distributed.is_main():
        log = logging.getLogger("nsbench")
        out = Path(summary["run_dir"])
        for e in sorted(summary["iterations"], key=lambda e: e["iteration"]):
            log.info("iter%d %-20s val top-1 %6.2f%%  %s", e["iteration"], e["arch"], e["val_top1"], out / e["checkpoint"])
        for w in summary.get("warnings", []):  # repeated at the end so that they are not lost in the log
            log.warning("%s", w)
        if args.json:
            print(json.dumps(summary, indent=2, default=str))
    return 0
