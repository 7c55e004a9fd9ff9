"""`nsbench report`: render an HTML comparison from saved results (never re-runs a model)."""
from __future__ import annotations

import argparse

EXAMPLES = """examples:
  nsbench report reports/fmnist/fmnist-iter0 reports/fmnist/fmnist-iter3 --baseline fmnist-iter0 --out reports/fmnist/report
  nsbench report reports/fmnist runs/fmnist --baseline fmnist-iter0 --out reports/fmnist/report   # a folder + a run
"""


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="render an HTML report from saved results", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="RESULTS", help="eval result folders, folders of them, or run folders")
    p.add_argument("--baseline", help="model label to compare against (default: the first model)")
    p.add_argument("--out", default="reports/report", help="output folder (index.html + data)")
    p.add_argument("--title", default="nsbench robustness report")
    p.add_argument("--er-baseline", action="append", default=[], metavar="MODEL",
                   help="a model the effective-robustness line is fitted through (repeat; two or more; default: "
                        "the shipped published rows)")
    p.set_defaults(handler=run)


def run(args) -> int:
    from ..report.render import render_report

    print(render_report(args.inputs, args.out, baseline=args.baseline, title=args.title,
                        er_baselines=args.er_baseline))
    return 0
