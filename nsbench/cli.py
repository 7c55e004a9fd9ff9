"""The `nsbench` command line: a thin shim over the Python API. `main(argv)` returns an exit code."""
from __future__ import annotations

import argparse
import logging
import sys

from .utils import NsbenchError

EPILOG = """examples:
  nsbench train --iterations 3                       # default recipe on the embedded Fashion-MNIST
  nsbench train --recipe imagenet_b0 --out runs/in1k data.source=imagenet:/data/imagenet
  nsbench train --resume runs/default                # continue a killed run
  nsbench eval --suite robustness runs/default/iter3.pt
  nsbench report reports/eval-iter0 reports/eval-iter3 --baseline iter0 --out reports/compare
  nsbench export runs/default/iter3.pt --to timm     # model.safetensors + config.json for plain timm
  nsbench ls                                         # shipped recipes and suites
"""


def build_parser() -> argparse.ArgumentParser:
    from .commands import eval as eval_cmd
    from .commands import export, ls, report, train

    parser = argparse.ArgumentParser(prog="nsbench", description="Noisy Student training and robustness benchmarks.",
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for mod in (train, eval_cmd, report, export, ls):
        mod.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # KEY=VALUE overrides may follow options (argparse does not intermix positionals); anything else is an error
    stray = [a for a in extra if a.startswith("-") or "=" not in a]
    if stray or (extra and not hasattr(args, "overrides_dest")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        getattr(args, args.overrides_dest).extend(extra)
    logging.getLogger("nsbench").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        return int(args.handler(args) or 0)
    except NsbenchError as e:
        print(f"nsbench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nsbench: interrupted; finished work is saved, rerun with --resume to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
