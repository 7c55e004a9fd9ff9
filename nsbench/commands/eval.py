"""`nsbench eval`: score models on a robustness suite; a thin shim over nsbench.evaluate."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

EXAMPLES = """examples:
  nsbench eval --suite robustness runs/default/iter3.pt
  nsbench eval --suite quick runs/a/iter3.pt runs/b/iter3.pt --out reports/ab --limit 200   # labels a-iter3, b-iter3
  nsbench eval --suite imagenet timm:tf_efficientnet_b0.ns_jft_in1k corruptions.root=/data/ImageNet-C
  nsbench eval --suite robustness timm:resnet18 --checkpoint my_resnet.safetensors --classes classes.txt \\
      --input-size 32 data.source=folder:/data/mine                   # label my_resnet; 32 px images at 32 px
  nsbench eval --suite quick timm:resnet18 --checkpoint a.safetensors torchvision:resnet18 --checkpoint b.pth \\
      --num-classes 10 --input-size 32 data.source=folder:/data/mine  # two models: labels a and b
  nsbench eval --suite robustness runs/default/iter*.pt --out reports/fmnist --report --baseline default-iter0
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
                        "the weights' file name for --checkpoint, else the model name)")
    p.add_argument("--checkpoint", action="append", default=[], metavar="WEIGHTS",
                   help="weights for a timm:/torchvision: model: .safetensors or a torch state dict; repeat it for "
                        "several, the k-th going with the k-th timm:/torchvision: model (or all with one)")
    p.add_argument("--input-size", type=int, metavar="PX",
                   help="side of the model's input (default: a checkpoint's training size, a timm model's pretrained "
                        "config, 224 for torchvision); give it for models trained on small images (e.g. 32), "
                        "since images far smaller than an unchosen default are refused")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--num-classes", type=int, metavar="N",
                   help="classes a timm:/torchvision: model predicts (default 1000); output k is the dataset's k-th "
                        "class in its own order, for class folders the sorted folder names as torchvision's "
                        "ImageFolder maps them (the dataset must have N classes; else use --classes)")
    g.add_argument("--classes", metavar="FILE", help="file of class names, one per line, in the model's output order")
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
    p.add_argument("--overwrite", action="store_true",
                   help="replace another model's results already in --out/LABEL (refused otherwise)")
    p.add_argument("--json", action="store_true",
                   help="print each model's numbers by measure name (clean_top1, mce, fgsm@8, ...; `measures` says "
                        "which results row holds each) and its results folder, as one JSON object on stdout")
    p.set_defaults(handler=run, overrides_dest="models", positional_extras=True)


def _check_args(args, models: list[str]) -> None:
    from ..utils import DEVICE, NsbenchError, check_name

    if not models:
        raise NsbenchError("no model given: pass a checkpoint path, timm:NAME or torchvision:NAME")
    for name, v in (("--limit", args.limit), ("--batch-size", args.batch_size), ("--num-classes", args.num_classes)):
        if v is not None and v <= 0:
            raise NsbenchError(f"{name} must be positive, got {v}")
    if args.workers is not None and args.workers < 0:
        raise NsbenchError(f"--workers must be >= 0, got {args.workers}")
    if args.label and len(args.label) != len(models):
        raise NsbenchError(f"--label given {len(args.label)} time(s) for {len(models)} model(s): give one per model")
    for label in args.label:
        check_name(label, "--label")
    if args.device is not None and not DEVICE.match(args.device):
        raise NsbenchError(f"--device {args.device!r}: unknown; valid: auto, cpu, cuda, cuda:N, mps")
    from ..bench.inputs import check_side

    check_side(args.input_size, "--input-size")
    hub = [m for m in models if m.startswith(("timm:", "torchvision:"))]
    if (args.num_classes or args.classes) and not hub:
        raise NsbenchError("--num-classes and --classes describe timm:/torchvision: models; none given")
    if args.checkpoint and len(args.checkpoint) != len(hub) and len(hub) != 1:
        raise NsbenchError(f"--checkpoint given {len(args.checkpoint)} time(s) for {len(hub)} timm:/torchvision: "
                           f"models: give one per such model, in order (or several for one model)")
    for m in models:
        if not m.startswith(("timm:", "torchvision:")) and not Path(m).is_file():
            raise NsbenchError(f"{m}: checkpoint not found")
    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not out.is_dir():
        raise NsbenchError(f"{out}: --out exists and is not a folder")


def run(args) -> int:
    from .. import distributed
    from ..api import eval_root, evaluate
    from ..bench.harness import ModelInfo, ScoreSettings, as_eval_model, check_data
    from ..bench.inputs import check_out_folder
    from ..bench.eval_model import read_class_file
    from ..schema import FAILED
    from ..utils import NsbenchError, setup_logging

    setup_logging()
    overrides = [m for m in args.models if "=" in m and not Path(m).exists()]
    models = [m for m in args.models if m not in overrides]
    _check_args(args, models)
    classes = read_class_file(args.classes) if args.classes else args.num_classes
    out = eval_root(args.suite, args.out)
    loaded, given = [], []
    for k, (m, weights) in enumerate(_paired(models, args.checkpoint)):
        given.append(m + (f" --checkpoint {weights}" if weights else ""))
        hub = m.startswith(("timm:", "torchvision:"))
        loaded.append(as_eval_model(m, ModelInfo(label=args.label[k] if args.label else None, checkpoint=weights,
                                                 classes=classes if hub else None, input_size=args.input_size)))
    labels = [e.label for e in loaded]
    for e in loaded:
        if labels.count(e.label) > 1:
            e.label = f"{e.label}-{e.sha256[:8]}"
    seen = {}
    for e, m in zip(loaded, given):
        if e.label in seen:  # the same weights under the same name: one folder would hold both
            raise NsbenchError(f"{m}: the same model given twice ({seen[e.label]} already scores it as {e.label}); "
                               f"give each model once")
        seen[e.label] = m
    for em in loaded:  # before any long work: no model's results may replace another's
        check_out_folder(out / em.label, em.sha256, em.label, overwrite=args.overwrite, path=em.path)
    if args.report and args.baseline and args.baseline not in [e.label for e in loaded]:
        raise NsbenchError(f"--baseline {args.baseline}: not among the models' labels ({', '.join(e.label for e in loaded)})")
    settings = ScoreSettings(overrides=overrides, limit=args.limit, device=args.device, cache_dir=args.cache,
                             normaliser=args.normaliser, workers=args.workers, batch_size=args.batch_size,
                             precision=args.precision, overwrite=args.overwrite)
    for em in loaded:  # every model's data opened and matched before the first is scored: exit 2, nothing written
        check_data(em, args.suite, settings)
    headlines, failed = [], []
    for em in loaded:
        df = evaluate(em, args.suite, out, settings=settings)
        failed += [f"{em.label}: {r.task}" for r in df[df.metric == FAILED].itertuples()]
        if distributed.is_main():
            headlines.append({"label": em.label, "folder": str(out / em.label), **_headline(em.label, df, out / em.label)})
    html = None
    if args.report and distributed.is_main():
        from ..report.render import render_report

        html = render_report([out / e.label for e in loaded], out / "report", baseline=args.baseline or loaded[0].label)
        if not args.json:
            print(html)
    if args.json and distributed.is_main():
        print(json.dumps({"suite": args.suite, "out": str(out), "report": str(html) if html else None,
                          "measures": _measures(headlines), "models": headlines},
                         indent=2, allow_nan=False, default=_json_number))
    if failed:  # the rows are written (failed rows say why); the exit status lets `eval && report` stop here
        if distributed.is_main():
            print(f"nsbench: error: {len(failed)} task(s) failed ({'; '.join(failed)}); results with their reasons "
                  f"in {out}", file=sys.stderr)
        return 1
    return 0


def _paired(models: list[str], weights: list[str]) -> list[tuple[str, str | None]]:
    """Each model with its --checkpoint: the k-th timm:/torchvision: model takes the k-th; one such model given
    several checkpoints is scored once with each."""
    hub = [m for m in models if m.startswith(("timm:", "torchvision:"))]
    if len(hub) == 1 and len(weights) > 1:
        at = models.index(hub[0])
        return [(m, None) for m in models[:at]] + [(hub[0], w) for w in weights] + [(m, None) for m in models[at + 1:]]
    it = iter(weights)
    return [(m, next(it, None) if m.startswith(("timm:", "torchvision:")) else None) for m in models]


def _json_number(v):
    return None if v is None else float(v)


def _headline(label: str, df, folder: Path) -> dict:
    """Every measure the rows hold (schema.measures_in: mCE or mCE (partial), each attack at each eps, the official
    sets, ...) by measure name for --json (an undefined one is null; nsbench.evaluate logs them as one line), and
    the failed tasks, each with a warning."""
    from .. import schema

    log = logging.getLogger("nsbench")
    numbers = schema.headline_numbers(df)  # the line and the results path: logged by nsbench.evaluate
    failed = df[df.metric == schema.FAILED]
    for r in failed.itertuples():
        log.warning("%s: task %s failed: %s", label, r.task, r.note)
    return {"headline": numbers, schema.FAILED: {str(r.task): str(r.note) for r in failed.itertuples()}}


def _measures(headlines: list[dict]) -> dict:
    """What each --json headline name is: the results row that holds it, its label, unit and direction."""
    from .. import schema

    names = dict.fromkeys(k for h in headlines for k in h["headline"])
    return {k: {"label": m.label, "task": m.task, "metric": m.metric, "condition": m.condition, "eps_255": m.eps_255,
                "unit": m.unit, "higher_is_better": m.higher_is_better}
            for k in names for m in [schema.measure(k)]}
