"""fgsm: accuracy under a white-box attack (FGSM, or PGD) at each eps, in grey levels, on [0, 1] images. Rows carry
the attack's name as their task and condition (schema.ATTACKS), so PGD results are never labelled FGSM."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from ...config import check_range
from ...schema import ATTACKS, FGSM
from ...utils import NsbenchError
from .. import calibration_rows
from ..attacks import adversarial
from ..metrics import accuracy
from ..registry import TaskResult, register


@dataclass
class FGSMTask:
    enabled: bool = True
    limit: int | None = 1000
    eps_255: list[float] = field(default_factory=lambda: [0.0, 1.0, 2.0, 4.0, 8.0, 16.0])
    attack: str = FGSM  # fgsm | pgd (schema.ATTACKS)
    pgd_steps: int = 10
    pgd_alpha_255: float = 1.0


def validate(t: FGSMTask) -> None:
    if t.attack not in ATTACKS:
        raise NsbenchError(f"fgsm.attack must be one of {', '.join(ATTACKS)}, got {t.attack!r}")
    check_range("fgsm.limit", t.limit, lo=1, optional=True)
    if not t.eps_255:
        raise NsbenchError("fgsm.eps_255: must list at least one epsilon (or set fgsm.enabled=false)")
    for e in t.eps_255:
        check_range("fgsm.eps_255", e, lo=0, hi=255)
    check_range("fgsm.pgd_steps", t.pgd_steps, lo=1)
    check_range("fgsm.pgd_alpha_255", t.pgd_alpha_255, lo=0, lo_open=True)


@register(FGSM, config=FGSMTask, order=4, validate=validate)
def run(ctx, t: FGSMTask, norm) -> TaskResult:
    src = ctx.source
    idx = ctx.pick(len(src), t.limit)
    model = ctx.model  # attacks take gradients in float32, in eval mode
    rows, per = [], []
    for eps in t.eps_255:
        def local(part, eps=eps):
            out = {"correct": [np.zeros(0, bool)], "index": [np.zeros(0, np.int64)],
                   **{k: [np.zeros(0)] for k in calibration_rows.PER_IMAGE}}
            for x, y, i, _ in ctx.batches(src, part, batch_size=min(ctx.bs, 250)):
                if len(y) == 0:
                    continue
                x, y = x.to(ctx.device), y.to(ctx.device)
                adv = adversarial(model, x, y, eps, t.attack, t.pgd_steps, t.pgd_alpha_255, ctx.suite.seed)
                with torch.no_grad():
                    z = calibration_rows.per_image(ctx.finite(model(adv)).float().cpu().numpy(), y.cpu().numpy())
                for k, v in {"correct": z["correct"], "index": i.numpy(), **calibration_rows.columns(z)}.items():
                    out[k].append(v)
            return {k: np.concatenate(v) for k, v in out.items()}

        key = f"{src.name}|{src.fingerprint()}|{t.attack}|{t.pgd_steps}|{t.pgd_alpha_255}|{eps}|{idx.tolist()}"
        z = ctx.cell(FGSM, f"{key}|calibration", lambda local=local: ctx.sharded(idx, local))
        rows.append(ctx.row(t.attack, t.attack, "top1_acc", 100 * accuracy(z["correct"]), len(z["correct"]),
                            eps_255=float(eps), precision="fp32"))
        rows += calibration_rows.rows(ctx, t.attack, t.attack, z, eps_255=float(eps), precision="fp32")
        per.append(pd.DataFrame({"task": t.attack, "condition": t.attack, "severity": 0, "eps_255": float(eps),
                                 "image": z["index"], "correct": z["correct"], **calibration_rows.columns(z)}))
    return TaskResult(rows, per, {"attack": {"name": t.attack, "n": int(len(idx)), "precision": "fp32"}})
