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
    p.add_argument("--out", help="output folder (default: CHECKPOINT without .pt, plus -timm)")
    p.set_defaults(handler=run)


def run(args) -> int:
    from ..timm_export import export_timm

    ckpt = Path(args.checkpoint)
    out = Path(args.out) if args.out else ckpt.with_name(f"{ckpt.stem}-timm")
    export_timm(ckpt, out)
    cfg = (out / "config.json")
    print(f"{out / 'model.safetensors'}\n{cfg}")
    return 0
