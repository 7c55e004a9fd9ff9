"""`nsbench eval`: score models on a robustness suite; a thin shim over nsbench.evaluate."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

EXAMPLES = """examples:
  nsbench eval --suite robustness runs/default/iter3.pt
  nsbench eval --suite quick runs/a/iter3.pt runs/b/iter3.pt --out reports/ab --limit 200   # labels a-iter3, b-iter3
  nsbench eval --suite imagenet timm:tf_efficientnet_b0.ns_jft_in1k corruptions.root=/data/ImageNet-C
  nsbench eval --suite robustness timm:resnet18 --checkpoint my_resnet.safetensors --classes classes.txt \\
      data.source=folder:/data/mine --label mine
  nsbench eval --suite robustness runs/default/iter*.pt --out reports/fmnist --report
"""


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="robustness suites: clean, -A, -C, -P, FGSM", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="nsbench checkpoint, timm:NAME or torchvision:NAME; KEY=VALUE items override the suite")
    p.add_argument("--suite", default="robustness", help="suite name (see `nsbench ls`) or YAML path")
    p.add_argument("--out", help="output folder (default reports/eval-SUITE); one subfolder per model label")
    p.add_argument("--label", action="append", default=[],
                   help="a model's label (once per model, in order; default: RUN-iterK for a run's checkpoint, "
                        "else the file or model name)")
    p.add_argument("--checkpoint", help="weights for a timm:/torchvision: model: .safetensors or a torch state dict")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--num-classes", type=int, help="classes a timm:/torchvision: model predicts (default 1000)")
    g.add_argument("--classes", help="file of class names, one per line, in the model's output order")
    p.add_argument("--limit", type=int, help="at most N images per task (quick runs)")
    p.add_argument("--batch-size", type=int, help="images per forward pass (default: the suite's)")
    p.add_argument("--workers", type=int,
                   help="processes for loading images and building -C/-P sets (default: by the machine's cores)")
    p.add_argument("--device", default="auto")
    p.add_argument("--cache", help="cache folder for built sets and per-cell results (default $NSBENCH_CACHE or ~/.cache/nsbench)")
    p.add_argument("--normaliser", help="auto | alexnet | none | CHECKPOINT (overrides the suite's)")
    p.add_argument("--precision", choices=("fp32", "bf16"),
                   help="scoring precision (default: the suite's, fp32); bf16 autocast is faster on GPUs and moves "
                        "the numbers a little (recorded in meta.json and every row's note)")
    p.add_argument("--report", action="store_true", help="render an HTML report of the evaluated models")
    p.add_argument("--baseline", help="baseline model label for --report (default: the first model)")
    p.set_defaults(handler=run, overrides_dest="models")


def _check_args(args, models: list[str]) -> None:
    from ..utils import NsbenchError

    if not models:
        raise NsbenchError("no model given: pass a checkpoint path, timm:NAME or torchvision:NAME")
    for name, v in (("--limit", args.limit), ("--batch-size", args.batch_size), ("--num-classes", args.num_classes)):
        if v is not None and v <= 0:
            raise NsbenchError(f"{name} must be positive, got {v}")
    if args.workers is not None and args.workers < 0:
        raise NsbenchError(f"--workers must be >= 0, got {args.workers}")
    if args.label and len(args.label) != len(models):
        raise NsbenchError(f"--label given {len(args.label)} time(s) for {len(models)} model(s): give one per model")
    hub = [m for m in models if m.startswith(("timm:", "torchvision:"))]
    if (args.checkpoint or args.num_classes or args.classes) and len(hub) != 1:
        raise NsbenchError("--checkpoint, --num-classes and --classes describe one timm:/torchvision: model; "
                           f"{len(hub)} given")
    for m in models:
        if not m.startswith(("timm:", "torchvision:")) and not Path(m).is_file():
            raise NsbenchError(f"{m}: checkpoint not found")
    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not out.is_dir():
        raise NsbenchError(f"{out}: --out exists and is not a folder")


def run(args) -> int:
    from .. import distributed as D
    from ..bench.api import as_eval_model, check_data
    from ..bench.models import read_class_file
    from ..utils import setup_logging
    from ..api import evaluate

    setup_logging()
    overrides = [m for m in args.models if "=" in m and not Path(m).exists()]
    models = [m for m in args.models if m not in overrides]
    _check_args(args, models)
    classes = read_class_file(args.classes) if args.classes else args.num_classes
    out = Path(args.out or f"reports/eval-{Path(args.suite).stem}")
    loaded = []
    for k, m in enumerate(models):
        hub = m.startswith(("timm:", "torchvision:"))
        loaded.append(as_eval_model(m, label=args.label[k] if args.label else None,
                                    checkpoint=args.checkpoint if hub else None, classes=classes if hub else None))
    labels = [e.label for e in loaded]
    for e in loaded:
        if labels.count(e.label) > 1:
            e.label = f"{e.label}-{e.sha256[:8]}"
    for em in loaded:  # every model's data opened and matched before the first is scored: exit 2, nothing written
        check_data(em, args.suite, overrides=overrides)
    folders, failed = [], []
    for em in loaded:
        df = evaluate(em, args.suite, out / em.label, overrides=overrides, limit=args.limit, device=args.device,
                      cache_dir=args.cache, normaliser=args.normaliser, workers=args.workers, batch_size=args.batch_size,
                      precision=args.precision)
        folders.append(out / em.label)
        failed += [f"{em.label}: {r.task}" for r in df[df.metric == "failed"].itertuples()]
        if D.is_main():
            _headline(em.label, df, out / em.label)
    if args.report and D.is_main():
        from ..report.render import render_report

        html = render_report(folders, out / "report", baseline=args.baseline or loaded[0].label)
        print(html)
    if failed:  # the rows are written (failed rows say why); the exit status lets `eval && report` stop here
        if D.is_main():
            print(f"nsbench: error: {len(failed)} task(s) failed ({'; '.join(failed)}); results with their reasons "
                  f"in {out}", file=sys.stderr)
        return 1
    return 0


def _headline(label: str, df, folder: Path) -> None:
    """One log line of headline numbers, each under the name it was computed as (mCE or mCE_partial, ...)."""
    log = logging.getLogger("nsbench")
    parts = []
    for task, metric, condition, fmt in (("clean", "top1_acc", "clean", "clean top-1 {:.2f}%"),
                                         ("natural_adversarial", "top1_acc", None, "-A top-1 {:.2f}%"),
                                         ("corruptions", "mce", "all", "{name} {:.1f}"),
                                         ("corruptions", "mean_err", "all", "-C mean err {:.1f}%"),
                                         ("perturbations", "mfr", "all", "{name} {:.1f}"),
                                         ("perturbations", "mt5d", "all", "{name} {:.1f}")):
        for name in (metric, f"{metric}_partial"):
            m = (df.task == task) & (df.metric == name) & ((df.condition == condition) if condition else True)
            if m.any():
                v = df[m].value.iloc[0]
                parts.append(fmt.replace("{name}", name).format(v) if v == v and v is not None
                             else f"{name} undefined")
                break
    from ..schema import ATTACKS

    for attack in ATTACKS:
        m = (df.task == attack) & (df.eps_255 == 8)
        if m.any():
            parts.append(f"{attack.upper()}@8/255 {df[m].value.iloc[0]:.1f}%")
    log.info("%s: %s", label, ", ".join(parts) or "no headline numbers")
    for _, r in df[df.metric == "failed"].iterrows():
        log.warning("%s: task %s failed: %s", label, r.task, r.note)
    log.info("%s: results in %s", label, folder)
