"""The `nsbench` command line: a thin shim over the Python API. `main(argv)` returns an exit code."""
from __future__ import annotations

import argparse
import logging
import sys

from . import __version__
from .utils import NsbenchError

EPILOG = """examples:
  nsbench train --iterations 3                       # default recipe on the embedded Fashion-MNIST
  nsbench train --recipe imagenet_b0 --out runs/in1k data.source=imagenet:/data/imagenet
  nsbench train --resume runs/default                # continue a killed run
  nsbench eval --suite robustness runs/default/iter0.pt runs/default/iter3.pt --out reports/fmnist
  nsbench report reports/fmnist runs/default --baseline default-iter0 --out reports/compare
  nsbench export runs/default/iter3.pt --to timm     # model.safetensors + config.json for plain timm
  nsbench study paper_ablations                      # the paper's ablations across seeds, one report
  nsbench ls                                         # shipped recipes, studies and suites
"""


class _Parser(argparse.ArgumentParser):
    """argparse's parser, keeping its last usage error so that a --json caller gets it as JSON too."""
    last_error = ""

    def error(self, message):
        _Parser.last_error = message
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    from .commands import eval as eval_cmd
    from .commands import export, ls, report, study, train

    parser = _Parser(prog="nsbench", description="Noisy Student training and robustness benchmarks.",
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"nsbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for mod in (train, eval_cmd, report, study, export, ls):
        mod.add_parser(sub)
    for p in sub.choices.values():  # -v after the subcommand too; SUPPRESS keeps a -v given before it
        p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, _ = _parse(parser, argv)
    except SystemExit as e:
        if e.code == 2 and "--json" in (sys.argv[1:] if argv is None else argv):
            _json_error(_Parser.last_error or "invalid arguments")
        raise
    rank = _env_rank()
    level = logging.DEBUG if args.verbose else logging.INFO
    logging.getLogger("nsbench").setLevel(level if rank == 0 else max(level, logging.ERROR))
    if rank != 0:  # library warnings too: rank 0 prints them once for the job
        import warnings

        warnings.simplefilter("ignore")
    try:
        return int(args.handler(args) or 0)
    except NsbenchError as e:
        if rank == 0:
            print(f"nsbench: error: {e}", file=sys.stderr)
            if getattr(args, "json", False):  # a --json caller always gets JSON on stdout, refusals included
                _json_error(str(e))
        elif _joined_group():  # a rank failing alone (its shard, its device): say which
            print(f"nsbench: error: [rank {rank}] {e}", file=sys.stderr)
        # else: an input error found before the ranks met; every rank finds the same one and rank 0 reports it
        return 2
    except KeyboardInterrupt:
        if rank == 0:
            how = "the same command" if args.command == "study" else "with --resume"
            print(f"nsbench: interrupted; finished work is saved, rerun {how} to continue", file=sys.stderr)
        return 130
    except Exception:
        if rank != 0:  # an unexpected failure on one rank: mark its traceback with the rank
            print(f"nsbench: [rank {rank}] failed:", file=sys.stderr)
        raise


def _parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    args, extra = parser.parse_known_args(argv)
    # KEY=VALUE overrides may follow options (argparse does not intermix positionals), and so may more models of
    # `eval` (timm:a --checkpoint x timm:b --checkpoint y); anything else is an error
    loose = getattr(args, "positional_extras", False)
    stray = [a for a in extra if a.startswith("-") or ("=" not in a and not loose)]
    if stray or (extra and not hasattr(args, "overrides_dest")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        getattr(args, args.overrides_dest).extend(extra)
    return args, extra


def _json_error(message: str) -> None:
    """A refusal as one JSON object on stdout (the message is on stderr too), exit status 2."""
    import json

    print(json.dumps({"error": message, "exit": 2}))


def _env_rank() -> int:
    from .distributed import env_rank

    return env_rank()


def _joined_group() -> bool:
    from .distributed import is_dist

    return is_dist()


if __name__ == "__main__":
    sys.exit(main())
