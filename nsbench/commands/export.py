"""`nsbench export`: a checkpoint as files another library loads (today: timm's model.safetensors + config.json)."""
from __future__ import annotations

import argparse
from pathlib import Path

EXAMPLES = """examples:
  nsbench export runs/default/iter3.pt --to timm --out exported/iter3
  python -c "import timm; m = timm.create_model('local-dir:exported/iter3', pretrained=True)"
"""


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="write a checkpoint in a format other libraries load", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="an nsbench checkpoint (iterK.pt)")
    p.add_argument("--to", choices=["timm"], default="timm", help="target format (default: timm)")
    p.add_argument("--out", help="output folder (default: exports/LABEL, LABEL as eval names the checkpoint: RUN-iterK "
                                 "for a run's checkpoint, else its file name; never inside a run folder)")
    p.set_defaults(handler=run)


def run(args) -> int:
    import logging

    from ..runs import model_label
    from ..timm_export import export_timm
    from ..utils import setup_logging

    setup_logging()
    ckpt = Path(args.checkpoint)
    out = Path(args.out) if args.out else Path("exports") / model_label(ckpt)
    export_timm(ckpt, out)
    logging.getLogger("nsbench").info("%s: exported for timm to %s", ckpt, out)
    cfg = (out / "config.json")
    print(f"{out / 'model.safetensors'}\n{cfg}")
    return 0
