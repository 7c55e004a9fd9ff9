"""`nsbench eval`: score checkpoints (or timm models) on a robustness suite; a thin shim over bench.evaluate."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

EXAMPLES = """examples:
  nsbench eval --suite robustness runs/default/iter3.pt
  nsbench eval --suite quick runs/default/iter0.pt runs/default/iter3.pt --out reports/fmnist --limit 200
  nsbench eval --suite imagenet timm:tf_efficientnet_b0.ns_jft_in1k corruptions.root=/data/ImageNet-C
  nsbench eval --suite robustness runs/default/iter*.pt --out reports/fmnist --report
"""


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="robustness suites: clean, -A, -C, -P, FGSM", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", metavar="MODEL", help="checkpoint path or timm:NAME; KEY=VALUE items override the suite")
    p.add_argument("--suite", default="robustness", help="suite name (see `nsbench ls`) or YAML path")
    p.add_argument("--out", help="output folder (default reports/eval-SUITE); one subfolder per model")
    p.add_argument("--limit", type=int, help="at most N images per task (quick runs)")
    p.add_argument("--device", default="auto")
    p.add_argument("--cache", help="cache folder for built sets and per-cell results (default $NSBENCH_CACHE or ~/.cache/nsbench)")
    p.add_argument("--normaliser", help="auto | alexnet | none | CHECKPOINT (overrides the suite's)")
    p.add_argument("--workers", type=int, help="processes for building -C / -P sets (default: all cores)")
    p.add_argument("--report", action="store_true", help="render an HTML report of the evaluated models")
    p.add_argument("--baseline", help="baseline model label for --report (default: the first model)")
    p.set_defaults(handler=run, overrides_dest="models")


def run(args) -> int:
    from .. import distributed as D
    from ..bench.models import load_eval_model
    from ..bench.runner import evaluate
    from ..utils import NsbenchError, setup_logging

    setup_logging()
    overrides = [m for m in args.models if "=" in m and not Path(m).exists()]
    models = [m for m in args.models if m not in overrides]
    if not models:
        raise NsbenchError("no model given: pass a checkpoint path or timm:NAME")
    if args.limit is not None and args.limit <= 0:
        raise NsbenchError(f"--limit must be positive, got {args.limit}")
    out = Path(args.out or f"reports/eval-{Path(args.suite).stem}")
    loaded = [load_eval_model(m) for m in models]
    labels = [e.label for e in loaded]
    for e in loaded:
        if labels.count(e.label) > 1:
            e.label = f"{e.label}-{e.sha256[:8]}"
    folders = []
    for em in loaded:
        df = evaluate(em, args.suite, out / em.label, overrides=overrides, limit=args.limit, device=args.device,
                      cache_dir=args.cache, normaliser=args.normaliser, workers=args.workers)
        folders.append(out / em.label)
        if D.is_main():
            _headline(em.label, df)
    if args.report and D.is_main():
        from ..report.render import render_report

        html = render_report(folders, out / "report", baseline=args.baseline or loaded[0].label)
        print(html)
    return 0


def _headline(label: str, df) -> None:
    log = logging.getLogger("nsbench")

    def get(task, metric, condition=None):
        m = (df.task == task) & (df.metric == metric)
        if condition:
            m &= df.condition == condition
        return df[m].value.iloc[0] if m.any() else float("nan")

    log.info("%s: clean top-1 %.2f%%, -A top-1 %.2f%%, mCE %.1f (mean err %.1f%%), mFR %.1f, mT5D %.1f, FGSM@%s %.1f%%",
             label, get("clean", "top1_acc"), get("natural_adversarial", "top1_acc"), get("corruptions", "mce", "all"),
             get("corruptions", "mean_err", "all"), get("perturbations", "mfr", "all"), get("perturbations", "mt5d", "all"),
             "8/255", df[(df.task == "fgsm") & (df.eps_255 == 8)].value.mean() if (df.task == "fgsm").any() else float("nan"))
